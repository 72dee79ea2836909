"""PERCEIVE / scene: the whole frame through an open_clip image encoder, then V/A.

Two modes:
- "trained": a small MLP head (file made by `moodsic train scene`) regresses V/A from the
  image embedding. Uncertainty comes from Monte-Carlo dropout over the HEAD ONLY: the
  encoder runs once per frame, the head's passes are one batched tensor op
  ([passes, batch, dim]), and the MC variance is multiplied by a per-dimension scale fitted
  on validation data (shipped inside the head file) so it predicts the squared error.
- "zero-shot" (the fallback when no head is installed): V and A from CLIP text prompts,
  softmax-weighted graded scene descriptions; the variance is the spread of the prompt
  scores under that softmax. Marked as such in the cue sheet.

Weights never come from the network at scoring time: a pretrained tag is resolved to a
file already in the open_clip / Hugging Face cache (`moodsic weights fetch scene` puts
it there), or `pretrained` is a local checkpoint path. Offline with nothing cached, the
expert is unavailable with one line that says what is missing and how to get it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config, SceneConfig
from ..errors import ExpertUnavailable, ResourceError
from ..weights import WeightsError, file_fingerprint, why_unloadable
from .base import Availability, ClipContext, Estimates, ExpertSeries, FrameBatch
from .scene_gate import SkipGate

if TYPE_CHECKING:
    from ..runtime.prompts import PromptEmbeddings

NAME = "scene"
HEAD_FORMAT = "moodsic.scene-head/1"
META_KEY = "moodsic"  # safetensors metadata key / torch-file entry holding the JSON block


def __getattr__(name: str) -> Any:
    # SceneHead is a torch module: importing it here would make every scene import (and
    # the ONNX Runtime path, which needs no torch) pay for torch.
    if name == "SceneHead":
        from .scene_head import SceneHead

        return SceneHead
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Graded prompt sets for zero-shot mode: (score on the reference scale, descriptions).
VALENCE_PROMPTS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (1.0, ("a photo of a joyful, happy scene", "a photo of people celebrating and laughing",
           "a beautiful, delightful and uplifting scene")),
    (0.5, ("a photo of a pleasant, peaceful place", "a photo of friendly people smiling")),
    (0.0, ("a photo of an ordinary everyday scene", "a neutral photo of a plain room")),
    (-0.5, ("a photo of a gloomy, dreary scene", "a photo of a sad, lonely person")),
    (-1.0, ("a photo of a frightening, violent scene", "a photo of people crying in grief",
            "a disturbing, horrible scene")),
)  # fmt: skip
AROUSAL_PROMPTS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (1.0, ("a photo of an intense, chaotic, action-packed scene",
           "a photo of an explosion and people running", "a crowded, loud, wild party")),
    (0.5, ("a photo of a busy street full of movement", "a photo of people playing sports")),
    (0.0, ("a photo of an ordinary everyday scene", "a photo of people talking at a table")),
    (-0.5, ("a photo of a quiet, calm room", "a photo of a person reading quietly")),
    (-1.0, ("a photo of a still, sleepy, tranquil landscape",
            "a photo of a person sleeping peacefully")),
)  # fmt: skip


# ----------------------------------------------------------------------------- encoder refs
@dataclass(frozen=True)
class EncoderRef:
    """Which CLIP weights the scene expert would use, resolved without loading anything."""

    model: str
    pretrained: str  # as configured: a tag or a path
    checkpoint: Path | None  # the local file holding the weights (None: random, bench only)
    is_tag: bool
    pretrained_cfg: dict[str, Any]  # open_clip's tag config (mean/std/quick_gelu), {} for paths

    def describe(self) -> str:
        return (
            f"{self.model}/{self.pretrained}"
            if self.is_tag
            else f"{self.model} ({self.pretrained})"
        )


def _looks_like_path(value: str) -> bool:
    return (
        os.sep in value
        or "/" in value
        or value.startswith("~")
        or value.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz"))
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached_checkpoint(pretrained_cfg: dict[str, Any], cache_dir: str | None = None) -> Path | None:
    """The file open_clip would load for a tag, if it is already on disk (never downloads)."""
    if pretrained_cfg.get("file"):
        p = Path(pretrained_cfg["file"])
        return p if p.is_file() else None
    hub = pretrained_cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub ships with open_clip here
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo, filename = os.path.split(hub)
            names = [filename] if filename else ["open_clip_pytorch_model.bin"]
            first = names[0]
            # open_clip prefers a .safetensors sibling; look for it first, as it does.
            if first == "open_clip_pytorch_model.bin":
                names.insert(0, "open_clip_model.safetensors")
            elif first.endswith((".bin", ".pth")):
                names.insert(0, first[:-4] + ".safetensors")
            for name in names:
                found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
                if isinstance(found, str) and Path(found).is_file():
                    return Path(found)
    url = pretrained_cfg.get("url", "")
    if url:
        folder = Path(cache_dir) if cache_dir else Path("~/.cache/clip").expanduser()
        p = folder / os.path.basename(url)
        if p.is_file():
            return p
    return None


def resolve_encoder(
    cfg: SceneConfig, weights_dir: Path | None, *, need_weights: bool = True
) -> EncoderRef:
    """Resolve model name + pretrained tag/path to a local file, or say in one line why not."""
    import open_clip

    model = cfg.model.strip()
    if not model:
        raise ExpertUnavailable("scene: no open_clip model configured (scene.model is empty)")
    if (
        not model.startswith(("hf-hub:", "local-dir:"))
        and model.replace("/", "-") not in open_clip.list_models()
    ):
        raise ExpertUnavailable(
            f"scene: unknown open_clip model {model!r} (see open_clip.list_models(), e.g. ViT-B-32, MobileCLIP2-S0)"
        )
    pre = cfg.pretrained.strip()
    if model.startswith("hf-hub:"):
        # Would reach the hub at load time; the engine loads only local files.
        raise ExpertUnavailable(
            "scene: hf-hub: model names are not loaded directly; download the repo and use "
            "--scene-model local-dir:/path/to/it, or a model name with --scene-pretrained TAG|PATH"
        )
    if model.startswith("local-dir:"):
        # open_clip reads config and weights from the folder (`pretrained` is ignored); we
        # only need the checkpoint file to fingerprint the weights.
        folder = Path(model[len("local-dir:") :]).expanduser()
        files = [
            f for ext in ("safetensors", "bin", "pth") for f in sorted(folder.glob(f"*.{ext}"))
        ]
        if not (folder / "open_clip_config.json").is_file() or not files:
            raise ExpertUnavailable(
                f"scene: open_clip model folder {folder} needs open_clip_config.json and a checkpoint"
            )
        return EncoderRef(model, str(folder), files[0], False, {})
    if not pre:
        if need_weights:
            raise ExpertUnavailable(
                "scene: no CLIP weights configured (set --scene-pretrained to an open_clip tag or a checkpoint file)"
            )
        return EncoderRef(model, "", None, False, {})

    tag_cfg = (
        {} if _looks_like_path(pre) else open_clip.get_pretrained_cfg(model.replace("/", "-"), pre)
    )
    if tag_cfg:
        found = cached_checkpoint(tag_cfg)
        if found is None and need_weights:
            why = " (offline: HF_HUB_OFFLINE=1)" if _offline() else ""
            raise ExpertUnavailable(
                f"scene: CLIP weights {model}/{pre} are not downloaded{why}; run `moodsic weights fetch scene` "
                "while online, or pass --scene-pretrained /path/to/checkpoint"
            )
        return EncoderRef(model, pre, found, True, dict(tag_cfg))

    path = Path(pre).expanduser()
    if not path.is_absolute() and not path.is_file() and weights_dir is not None:
        path = Path(weights_dir) / path
    if path.is_file():
        return EncoderRef(model, pre, path, False, {})
    if _looks_like_path(pre):  # a file the user named: its absence stops the run
        raise WeightsError(f"scene: CLIP checkpoint not found: {pre}")
    known = ", ".join(open_clip.list_pretrained_tags_by_model(model.replace("/", "-"))) or "none"
    raise ExpertUnavailable(
        f"scene: {pre!r} is neither a pretrained tag of {model} (known: {known}) nor a checkpoint file"
    )


# ----------------------------------------------------------------------------- encoder
class ClipEncoder:
    """An open_clip model wrapped for batched uint8 frames; the encoder runs once per frame."""

    backend = "torch"

    def __init__(self, model: Any, ref: EncoderRef, tokenizer: Any | None = None) -> None:
        import torch

        self.model = model.eval()
        self.ref = ref
        self.tokenizer = tokenizer
        pcfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        size = pcfg.get("size", getattr(model.visual, "image_size", 224))
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)  # type: ignore[assignment]
        self.mean = torch.tensor(
            pcfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), dtype=torch.float32
        )
        self.std = torch.tensor(
            pcfg.get("std", (0.26862954, 0.26130258, 0.27577711)), dtype=torch.float32
        )
        self.interpolation = str(pcfg.get("interpolation", "bicubic"))
        self.resize_mode = str(pcfg.get("resize_mode", "shortest"))
        self.dtype = next(model.parameters()).dtype
        with torch.inference_mode():
            probe = torch.zeros(1, 3, *self.image_size, dtype=self.dtype)
            self.embed_dim = int(model.encode_image(probe).shape[-1])

    def preprocess(self, frames: np.ndarray) -> Any:
        """uint8 [B,H,W,3] -> normalised float [B,3,S,S]: short side to S, centre crop
        (open_clip's 'shortest' mode) or a plain resize ('squash')."""
        import torch
        import torch.nn.functional as F

        arr = np.ascontiguousarray(frames)
        if not arr.flags.writeable:  # e.g. np.asarray of a PIL image; torch wants writable memory
            arr = arr.copy()
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)
        th, tw = self.image_size
        h, w = x.shape[-2:]
        if self.resize_mode == "squash":
            size = (th, tw)
        else:
            scale = max(th / h, tw / w)
            size = (max(th, round(h * scale)), max(tw, round(w * scale)))
        mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
        if (h, w) != size:
            x = F.interpolate(x, size=size, mode=mode, antialias=True, align_corners=False).clamp_(
                0, 1
            )
        top = (x.shape[-2] - th) // 2
        left = (x.shape[-1] - tw) // 2
        x = x[..., top : top + th, left : left + tw]
        x = (x - self.mean[:, None, None]) / self.std[:, None, None]
        return x.to(self.dtype)

    def encode(self, frames: np.ndarray, batch_size: int = 0) -> Any:
        """Unit-norm float32 embeddings [B, D] for uint8 frames [B,H,W,3]."""
        import torch

        n = int(frames.shape[0])
        step = batch_size if batch_size > 0 else max(n, 1)
        out = []
        with torch.inference_mode():
            for i in range(0, n, step):
                x = self.preprocess(frames[i : i + step])
                out.append(self.model.encode_image(x, normalize=True).float())
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim)

    def encode_images(self, images: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """Images of different sizes (training data): preprocess each, encode in batches."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                x = torch.cat([self.preprocess(img[None]) for img in images[i : i + batch_size]])
                out.append(self.model.encode_image(x, normalize=True).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    def encode_text(self, prompts: Sequence[str]) -> Any:
        import torch

        if self.tokenizer is None:
            raise ResourceError("scene: this encoder was built without a tokenizer")
        with torch.inference_mode():
            tokens = self.tokenizer(list(prompts))
            return self.model.encode_text(tokens, normalize=True).float()


def reparameterize(visual: Any) -> Any:
    """Fold MobileOne/FastViT training branches into single convolutions (MobileCLIP):
    same outputs, ~1.6x faster on CPU. A no-op for towers without such blocks."""
    if not any(hasattr(m, "reparameterize") for m in visual.modules()):
        return visual
    from timm.utils import reparameterize_model

    return reparameterize_model(visual)


def build_encoder(
    ref: EncoderRef, precision: str = "fp32", *, with_text: bool = True
) -> ClipEncoder:
    """Build the open_clip model from a resolved ref (a local file: no network)."""
    import open_clip

    kwargs: dict[str, Any] = {"precision": precision, "device": "cpu"}
    pcfg = ref.pretrained_cfg
    if pcfg:
        kwargs["force_quick_gelu"] = bool(pcfg.get("quick_gelu", False))
        kwargs["force_preprocess_cfg"] = {
            k: pcfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in pcfg
        }
    pretrained = None
    if ref.checkpoint is not None and not ref.model.startswith("local-dir:"):
        pretrained = str(ref.checkpoint)
    try:
        model = open_clip.create_model(ref.model, pretrained=pretrained, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure means unusable weights
        if ref.checkpoint is not None:  # a file is there but unusable: stop, say why
            why = why_unloadable(ref.checkpoint, exc)
            raise WeightsError(f"scene: cannot load CLIP weights {ref.checkpoint}: {why}") from None
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExpertUnavailable(
            f"scene: cannot load CLIP weights {ref.describe()}: {text[:200]}"
        ) from None
    model.visual = reparameterize(model.visual.eval())
    tokenizer = None
    if with_text:
        try:
            tokenizer = open_clip.get_tokenizer(ref.model)
        except Exception as exc:  # noqa: BLE001
            raise ExpertUnavailable(
                f"scene: cannot build the tokenizer for {ref.model}: {exc}"
            ) from None
    else:
        # Trained mode needs only the image tower; drop the text weights to save memory.
        import torch

        for attr in ("transformer", "token_embedding", "text"):
            if hasattr(model, attr) and isinstance(getattr(model, attr), torch.nn.Module):
                setattr(model, attr, torch.nn.Identity())
    return ClipEncoder(model, ref, tokenizer)


# ----------------------------------------------------------------------------- head
def fit_calibration(pred_var: np.ndarray, sq_err: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """Per-dimension scale s with mean(s * predicted variance) == mean(squared error): the
    head file's built-in scale, fitted on validation data at training time. It is the
    `scale` fit of moodsic_engine.calibration, which a calibration file can refine further."""
    from ..calibration import fit_scale

    pv = np.asarray(pred_var, dtype=np.float64).reshape(-1, 2)
    se = np.asarray(sq_err, dtype=np.float64).reshape(-1, 2)
    return np.array([fit_scale(pv[:, j], se[:, j], eps=floor).scale for j in range(2)])


@dataclass(frozen=True)
class HeadFile:
    head: Any  # SceneHead
    meta: dict[str, Any]
    path: Path


def save_head(path: str | os.PathLike[str], head: Any, meta: dict[str, Any]) -> Path:
    """safetensors with the JSON metadata block under the `moodsic` key, written atomically."""
    from safetensors.torch import save_file

    from ..fileio import atomic_path

    block = dict(meta)
    block["format"] = HEAD_FORMAT
    block["head"] = {"embed_dim": head.embed_dim, "hidden": head.hidden, "dropout": head.dropout}
    block["calibration"] = [float(c) for c in head.calibration.tolist()]
    tensors = {k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(block, allow_nan=False)})
    return Path(path)


def read_head_meta(path: Path) -> dict[str, Any]:
    """The JSON block of a head file, read without unpickling anything."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                raw = (f.metadata() or {}).get(META_KEY)
        except Exception as exc:  # noqa: BLE001 - corrupt / truncated file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ResourceError(f"scene head {path.name} is unreadable: {first[:200]}") from None
    else:
        from ..weights import load_state_dict

        raw = load_state_dict(path).get(META_KEY)
    if not isinstance(raw, str):
        raise ResourceError(
            f"scene head {path.name} has no moodsic metadata block (not a scene head file)"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise ResourceError(f"scene head {path.name} has a corrupt metadata block") from None
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise ResourceError(f"scene head {path.name} is not a {HEAD_FORMAT} file")
    return meta


def load_head(path: str | os.PathLike[str]) -> HeadFile:
    """Read a head file (safetensors, or a weights-only torch file with a `moodsic` entry)."""
    from ..weights import load_state_dict
    from .scene_head import SceneHead

    p = Path(path)
    meta = read_head_meta(p)
    state = {k: v for k, v in load_state_dict(p).items() if k != META_KEY}
    h = meta.get("head", {})
    try:
        head = SceneHead(int(h["embed_dim"]), int(h["hidden"]), float(h["dropout"]))
        head.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ResourceError(
            f"scene head {p.name} does not match its own metadata: {first[:200]}"
        ) from None
    return HeadFile(head.eval(), meta, p)


def encoder_meta(ref: EncoderRef, embed_dim: int) -> dict[str, Any]:
    return {
        "model": ref.model,
        "pretrained": ref.pretrained if ref.is_tag else Path(ref.pretrained).name,
        "pretrained_is_tag": ref.is_tag,
        "fingerprint": file_fingerprint(ref.checkpoint)
        if ref.checkpoint and ref.checkpoint.is_file()
        else "",
        "embed_dim": int(embed_dim),
    }


def check_head_matches(
    meta: dict[str, Any], ref: EncoderRef, embed_dim: int | None, where: str
) -> None:
    """Refuse a head trained on another encoder (model, weights or embedding size)."""
    enc = meta.get("encoder", {})
    theirs = f"{enc.get('model', '?')}/{enc.get('pretrained', '?')}"
    hint = (
        f"scene head {where} was trained on {theirs} but the encoder is {ref.describe()}; "
        f"pass --scene-model {enc.get('model', '?')} --scene-pretrained {enc.get('pretrained', '?')} "
        "or use a head trained for this encoder"
    )
    if str(enc.get("model", "")).replace("/", "-") != ref.model.replace("/", "-"):
        raise ExpertUnavailable(hint)
    if embed_dim is not None and int(enc.get("embed_dim", -1)) != int(embed_dim):
        raise ExpertUnavailable(hint + f" (embedding size {enc.get('embed_dim')} vs {embed_dim})")
    if enc.get("pretrained_is_tag") and ref.is_tag:
        if enc.get("pretrained") != ref.pretrained:
            raise ExpertUnavailable(hint)
        return
    # At least one side is a file: only the weights' fingerprint can tell.
    mine = file_fingerprint(ref.checkpoint) if ref.checkpoint and ref.checkpoint.is_file() else ""
    if not mine or enc.get("fingerprint") != mine:
        raise ExpertUnavailable(hint)


def head_candidates(cfg: SceneConfig) -> list[str]:
    slug = f"{cfg.model}_{Path(cfg.pretrained).stem if _looks_like_path(cfg.pretrained) else cfg.pretrained}"
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in slug)
    return [f"scene_head_{slug}.safetensors"]


def find_head(cfg: SceneConfig, weights_dir: Path | None) -> Path | None:
    from ..weights import find_weight

    try:
        return find_weight(cfg.head or None, weights_dir, head_candidates(cfg))
    except ResourceError as exc:  # --scene-head names no usable file: the run stops
        raise WeightsError(f"scene: {exc}") from None


# ----------------------------------------------------------------------------- the expert
def compute_prompts(encoder: Any) -> PromptEmbeddings:
    """The zero-shot prompts through a torch encoder's text tower (see scene_runtime)."""
    from .scene_runtime import compute_prompts as compute

    return compute(encoder)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class SceneExpert:
    """The loaded scene expert: one encoder, and a head (trained) or prompt embeddings (zero-shot)."""

    name = NAME

    def __init__(
        self,
        encoder: Any,
        cfg: SceneConfig,
        head: HeadFile | None = None,
        prompts: PromptEmbeddings | None = None,
    ) -> None:
        """`encoder`: a ClipEncoder (torch) or a runtime OrtImageEncoder; `prompts`: the
        zero-shot prompt embeddings when already known (cached), else computed here."""
        self.encoder = encoder
        self.cfg = cfg
        self.head = head
        self.mode = "trained" if head is not None else "zero-shot"
        self._prompts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._logit_scale = 100.0
        if head is None:
            prompts = prompts if prompts is not None else compute_prompts(encoder)
            self._logit_scale = prompts.logit_scale
            self._prompts = {a: (prompts.text[a], prompts.scores[a]) for a in ("v", "a")}
        self.gate = SkipGate(cfg.skip_change, cfg.skip_max_gap_s)

    def uses(self) -> str:
        base = self.encoder.ref.describe()
        if self.head is None:
            return f"{base}, zero-shot prompts"
        return f"{base}, head {self.head.path.name}, MC dropout x{self.cfg.mc_passes}"

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """Unit-norm float32 embeddings [B, D] (numpy, whichever runtime the encoder uses)."""
        emb = self.encoder.encode(frames, self.cfg.batch_size)
        return emb if isinstance(emb, np.ndarray) else emb.numpy()

    def predict_embeddings(self, emb: Any) -> tuple[np.ndarray, np.ndarray]:
        """[B, D] embeddings -> (va [B, 2], var [B, 2]) on the reference scale."""

        if self.head is not None:
            import torch

            t = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
            mean, var = self.head.head.mc_predict(t, self.cfg.mc_passes)
            return mean.numpy().astype(np.float64), var.numpy().astype(np.float64)
        emb = np.asarray(emb, dtype=np.float32)
        from ..calibration import entropy_variance

        cfg = self.cfg
        bounds = {
            "v": (cfg.zero_shot_var_min_v, cfg.zero_shot_var_max_v),
            "a": (cfg.zero_shot_var_min_a, cfg.zero_shot_var_max_a),
        }
        va, var = [], []
        for axis in ("v", "a"):
            text, scores = self._prompts[axis]
            sims = emb @ text.T  # [B, P] cosine similarities
            w = _softmax(np.float32(self._logit_scale) * sims)
            va.append(w @ scores)
            # The variance: entropy of a softmax at a set temperature. At CLIP's own logit
            # scale (100) the softmax is near one-hot for almost every image, so its spread
            # sat at a floor whatever the image (issue 18).
            soft = _softmax(sims / np.float32(max(cfg.zero_shot_temperature, 1e-6)))
            var.append(entropy_variance(soft, scores, *bounds[axis]))
        out_va = np.stack(va, -1).astype(np.float64)
        return out_va, np.stack(var, -1).astype(np.float64)

    def predict(self, batch: FrameBatch) -> Estimates:
        n = len(batch)
        if n == 0:
            return Estimates.absent(0)
        # Samples whose picture barely changed reuse the last encoded embedding (the gate);
        # only the others go through the encoder, in one batch.
        source, todo = self.gate.plan(batch)
        fresh = self.embed(batch.frames[todo]) if todo else None
        emb = self.gate.assemble(source, todo, fresh)
        va, var = self.predict_embeddings(emb)
        va = np.clip(np.nan_to_num(va), -1.0, 1.0)
        return Estimates(
            v=va[:, 0], a=va[:, 1], var_v=var[:, 0], var_a=var[:, 1], present=np.ones(n, dtype=bool)
        )

    def finalize(self, series: ExpertSeries, context: ClipContext) -> ExpertSeries:  # noqa: ARG002
        info = dict(series.info)
        info.update(
            {
                "uses": self.uses(),
                "runtime": getattr(self.encoder, "backend", "torch"),
                "encoded": self.gate.encoded,
                "samples": self.gate.samples,
            }
        )
        return dataclasses.replace(series, mode=self.mode, info=info)


def _availability_uses(ref: EncoderRef, head: Path | None) -> str:
    return f"{ref.describe()}, " + (f"head {head.name} (trained)" if head else "zero-shot prompts")


def probe(config: Config, weights_dir: Path | None = None) -> Availability:
    """Whether the scene expert could run: weights on disk, head metadata matches. Loads no model."""
    cfg = config.scene
    try:
        ref = resolve_encoder(cfg, weights_dir)
        head = find_head(cfg, weights_dir)
        if head is not None:
            try:
                meta = read_head_meta(head)
            except ResourceError as exc:
                raise ExpertUnavailable(str(exc)) from None
            check_head_matches(meta, ref, None, head.name)
    except ResourceError as exc:  # ExpertUnavailable, or a named file that is not there
        return Availability(NAME, False, str(exc), f"{cfg.model}/{cfg.pretrained}")
    return Availability(NAME, True, "", _availability_uses(ref, head))


def verify(config: Config, weights_dir: Path | None = None) -> Availability:
    """`probe`, and what it reports is loaded: the CLIP checkpoint into the configured
    open_clip model (built with random weights, then every key and shape checked by
    open_clip's strict load) and the head file into a SceneHead, with checksums where known."""
    from ..weights import check_sha256

    av = probe(config, weights_dir)
    cfg = config.scene
    try:
        ref = resolve_encoder(cfg, weights_dir)
        head_path = find_head(cfg, weights_dir)
    except ResourceError:
        return av  # nothing on disk to check: probe's answer stands
    what = f"{cfg.model}/{cfg.pretrained}"
    notes = []
    try:
        if ref.checkpoint is not None:
            encoder = build_encoder(ref, cfg.precision, with_text=False)
            notes.append(check_sha256(ref.checkpoint) or "no checksum known")
            if head_path is not None:
                head = _load_head_checked(head_path)
                check_head_matches(head.meta, ref, encoder.embed_dim, head_path.name)
                notes.append(check_sha256(head_path) or "no checksum known")
        elif head_path is not None:
            _load_head_checked(head_path)
    except WeightsError as exc:
        return Availability(NAME, False, str(exc), what, invalid=True)
    except ResourceError as exc:  # the head was trained for another encoder
        return Availability(NAME, False, str(exc), what)
    if not av.ready:
        return av
    return Availability(NAME, True, "", f"{av.uses}; loads, {', '.join(notes) or 'checked'}")


def _load_head_checked(path: Path) -> HeadFile:
    try:
        return load_head(path)
    except WeightsError as exc:
        raise WeightsError(f"scene: {exc}") from None
    except ResourceError as exc:  # it loads, but not as a scene head
        raise WeightsError(f"scene: cannot use head {path}: {exc}") from None


def load(config: Config, weights_dir: Path | None = None) -> SceneExpert:
    """Load the encoder once (and the head, if any); raise ExpertUnavailable with one line."""
    from .scene_runtime import load_encoder, resolve_cached

    cfg = config.scene
    ref = resolve_cached(cfg, weights_dir)
    head_path = find_head(cfg, weights_dir)
    head: HeadFile | None = None
    if head_path is not None:
        head = _load_head_checked(head_path)  # there but unusable: the run stops
        _head_matches(head.meta, ref, None, head_path, named=bool(cfg.head))
    # Cached prompt embeddings and ONNX export where possible (see scene_runtime).
    encoder, prompts = load_encoder(ref, cfg, config.runtime, zero_shot=head is None)
    if head is not None and head_path is not None:
        _head_matches(head.meta, ref, encoder.embed_dim, head_path, named=bool(cfg.head))
    return SceneExpert(encoder, cfg, head, prompts)


def _head_matches(
    meta: dict[str, Any], ref: EncoderRef, embed_dim: int | None, path: Path, *, named: bool
) -> None:
    """check_head_matches; a head the user named (--scene-head) that does not fit stops the
    run, one found in the weights folder only makes the expert unavailable."""
    try:
        check_head_matches(meta, ref, embed_dim, path.name)
    except ExpertUnavailable as exc:
        if named:
            raise WeightsError(str(exc)) from None
        raise
