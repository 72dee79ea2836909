"""How the scene expert's encoder is loaded fast: cached prompt embeddings and, where
ONNX Runtime is installed, the image tower exported once per weights fingerprint.

The first run with given weights builds the open_clip model (PyTorch), embeds the prompts
and exports the image tower; later runs load neither torch nor open_clip (when the scene
expert runs zero-shot, or the head is all that needs torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import RuntimeConfig, SceneConfig
from ..runtime.prompts import PromptEmbeddings


def prompt_sets() -> dict[str, Any]:
    """The zero-shot prompt sets by axis, as plain data (part of the cache key)."""
    from .scene import AROUSAL_PROMPTS, VALENCE_PROMPTS

    return {"v": VALENCE_PROMPTS, "a": AROUSAL_PROMPTS}


def compute_prompts(encoder: Any) -> PromptEmbeddings:
    """Run the text tower of a torch ClipEncoder over every prompt (seconds on CPU)."""
    import torch

    scale = 100.0
    with torch.inference_mode():
        param = getattr(getattr(encoder, "model", None), "logit_scale", None)
        if param is not None:
            scale = float(param.exp().clamp(max=100.0))
    text, scores = {}, {}
    for axis, sets in prompt_sets().items():
        scores[axis] = np.asarray([s for s, texts in sets for _ in texts], dtype=np.float32)
        texts = [t for _, ts in sets for t in ts]
        text[axis] = encoder.encode_text(texts).numpy().astype(np.float32)
    return PromptEmbeddings(text, scores, scale)


def encoder_id(ref: Any, precision: str) -> list[Any] | None:
    """What identifies an encoder's weights for the caches; None for random weights."""
    from ..weights import file_fingerprint

    if ref.checkpoint is None or not ref.checkpoint.is_file():
        return None
    pcfg = {k: ref.pretrained_cfg[k] for k in sorted(ref.pretrained_cfg) if k != "hf_hub"}
    return [ref.model, file_fingerprint(ref.checkpoint), pcfg, precision]


def load_encoder(
    ref: Any, cfg: SceneConfig, runtime: RuntimeConfig, *, zero_shot: bool
) -> tuple[Any, PromptEmbeddings | None]:
    """(encoder, prompt embeddings or None): the cached ONNX export and prompts when both
    are there, else the open_clip model (exporting and caching what was missing)."""
    from ..runtime import clip_visual
    from ..runtime import prompts as cached
    from ..runtime.ort import ExportFailed, default_threads, ort_available
    from .scene import build_encoder

    wid = encoder_id(ref, cfg.precision)
    pkey = cached.prompts_key(wid, prompt_sets()) if wid is not None and zero_shot else None
    prompts = cached.load_prompts(pkey) if pkey else None
    threads = default_threads(runtime.torch_threads)
    use_ort = (
        wid is not None
        and cfg.precision == "fp32"
        and getattr(runtime, "onnx", True)
        and ort_available()
    )
    vkey = clip_visual.visual_key(wid) if use_ort and wid is not None else ""
    if use_ort and (prompts is not None or not zero_shot):
        found = clip_visual.load_cached(vkey, ref, threads)
        if found is not None:
            return found, prompts
    encoder = build_encoder(ref, cfg.precision, with_text=zero_shot)
    if zero_shot and prompts is None:
        prompts = compute_prompts(encoder)
        if pkey:
            try:
                cached.save_prompts(pkey, prompts)
            except OSError:  # a read-only cache: computed again next time
                pass
    if use_ort and ort_available(for_export=True):
        try:
            return clip_visual.export(vkey, encoder, threads), prompts
        except (ExportFailed, OSError):
            pass  # PyTorch it is
    return encoder, prompts


def _snapshot_current(path: Any) -> bool:
    """For a file in a Hugging Face cache snapshot: whether the repo's `refs/main` still
    names that snapshot (a newer download would otherwise be missed)."""
    parts = path.parts
    if "snapshots" not in parts:
        return True
    i = len(parts) - 1 - parts[::-1].index("snapshots")
    if i + 1 >= len(parts):
        return False
    repo = type(path)(*parts[:i])
    try:
        return (repo / "refs" / "main").read_text().strip() == parts[i + 1]
    except OSError:
        return True  # no refs file (a hand-made cache): the file itself is what counts


def resolve_cached(cfg: SceneConfig, weights_dir: Any) -> Any:
    """scene.resolve_encoder, remembered: open_clip (and with it torch) is imported only to
    resolve a model name and tag the first time, or when the file it named has changed."""
    from pathlib import Path

    from ..runtime import cache
    from .scene import EncoderRef, resolve_encoder

    key = cache.cache_key("resolve", cfg.model, cfg.pretrained, str(weights_dir or ""))
    path = cache.entry("resolve", key) / "ref.json"
    memo = cache.read_json(path)
    if memo is not None:
        try:
            ckpt = Path(memo["checkpoint"])
            if memo["stamp"] == cache.file_stamp(ckpt) and _snapshot_current(ckpt):
                return EncoderRef(
                    memo["model"], memo["pretrained"], ckpt, bool(memo["is_tag"]),
                    dict(memo["pretrained_cfg"]),
                )  # fmt: skip
        except (KeyError, TypeError, OSError):
            pass
    ref = resolve_encoder(cfg, weights_dir)
    if ref.checkpoint is not None and not ref.model.startswith("local-dir:"):
        try:
            cache.write_json(
                path,
                {
                    "model": ref.model, "pretrained": ref.pretrained,
                    "checkpoint": str(ref.checkpoint), "is_tag": ref.is_tag,
                    "pretrained_cfg": ref.pretrained_cfg, "stamp": cache.file_stamp(ref.checkpoint),
                },
            )  # fmt: skip
        except (OSError, TypeError, ValueError):
            pass  # not JSON-able or not writable: resolved again next time
    return ref
