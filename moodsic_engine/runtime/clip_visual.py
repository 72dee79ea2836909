"""The CLIP image encoder on ONNX Runtime, and its preprocessing in numpy.

`preprocess` is `experts.scene.ClipEncoder.preprocess` without torch: short side to the
model's size with the same antialiased filters as `torch.nn.functional.interpolate`
(`antialias=True`), centre crop, normalise. At the default working resolution (224 px
short side) and a 224 px model it is only a crop and a normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import cache

KIND = "clip-visual"
MODEL_FILE = "visual.onnx"


@dataclass(frozen=True)
class Preprocess:
    """What the image tower expects (read from open_clip's preprocess config)."""

    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # "bicubic" or "bilinear"
    resize_mode: str  # "shortest" (short side + centre crop) or "squash"


def _filter(kind: str, x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    if kind == "bilinear":
        return np.maximum(0.0, 1.0 - x)
    a = -0.5  # torch's antialiased bicubic uses Keys' a = -0.5 (PIL's), not -0.75
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def aa_weights(n_in: int, n_out: int, kind: str) -> np.ndarray:
    """[n_out, n_in] resampling matrix of torch's antialiased interpolate (align_corners
    False): each output pixel's normalised filter taps over the input."""
    scale = n_in / n_out
    support = (2.0 if kind == "bicubic" else 1.0) * max(scale, 1.0)
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        taps = _filter(kind, (j - center + 0.5) * inv)
        total = taps.sum()
        w[i, lo:hi] = taps / total if total != 0 else 0.0
    return w


def preprocess(frames: np.ndarray, p: Preprocess) -> np.ndarray:
    """uint8 [B,H,W,3] -> float32 [B,3,S,S], as ClipEncoder.preprocess."""
    x = np.asarray(frames, dtype=np.float32) / np.float32(255.0)  # [B,H,W,3]
    th, tw = p.image_size
    h, w = x.shape[1:3]
    if p.resize_mode == "squash":
        size = (th, tw)
    else:
        scale = max(th / h, tw / w)
        size = (max(th, round(h * scale)), max(tw, round(w * scale)))
    if (h, w) != size:
        kind = "bicubic" if p.interpolation == "bicubic" else "bilinear"
        wy = aa_weights(h, size[0], kind).astype(np.float32)
        wx = aa_weights(w, size[1], kind).astype(np.float32)
        x = np.einsum("oh,bhwc->bowc", wy, x)
        x = np.einsum("pw,bowc->bopc", wx, x)
        np.clip(x, 0.0, 1.0, out=x)
    top = (x.shape[1] - th) // 2
    left = (x.shape[2] - tw) // 2
    x = x[:, top : top + th, left : left + tw]
    mean = np.asarray(p.mean, dtype=np.float32)
    std = np.asarray(p.std, dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


class OrtImageEncoder:
    """CLIP's image tower on ONNX Runtime: uint8 frames -> unit-norm float32 embeddings.

    Same interface as `experts.scene.ClipEncoder` for what the scene expert needs
    (`ref`, `image_size`, `embed_dim`, `encode`), with numpy in and out.
    """

    backend = "onnxruntime"

    def __init__(self, sess: Any, prep: Preprocess, embed_dim: int, ref: Any) -> None:
        self.session = sess
        self.prep = prep
        self.image_size = prep.image_size
        self.embed_dim = int(embed_dim)
        self.ref = ref
        self.tokenizer = None
        self._input = sess.get_inputs()[0].name

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        return preprocess(frames, self.prep)

    def encode(self, frames: np.ndarray, batch_size: int = 0) -> np.ndarray:
        """Unit-norm float32 embeddings [B, D] for uint8 frames [B,H,W,3]."""
        n = int(frames.shape[0])
        step = batch_size if batch_size > 0 else max(n, 1)
        out = [
            self.session.run(None, {self._input: self.preprocess(frames[i : i + step])})[0]
            for i in range(0, n, step)
        ]
        return (
            np.concatenate(out).astype(np.float32)
            if out
            else np.zeros((0, self.embed_dim), np.float32)
        )


def visual_key(weights_id: list[Any]) -> str:
    return cache.cache_key(KIND, weights_id)


def load_cached(key: str, ref: Any, threads: int) -> OrtImageEncoder | None:
    """The cached export for `key` as an encoder, or None (not exported yet, or unusable)."""
    folder = cache.entry(KIND, key)
    meta = cache.read_json(folder / "meta.json")
    model = folder / MODEL_FILE
    if meta is None or not model.is_file():
        return None
    try:
        from .ort import session

        sess = session(model, threads)
        prep = Preprocess(
            tuple(meta["image_size"]), tuple(meta["mean"]), tuple(meta["std"]),
            str(meta["interpolation"]), str(meta["resize_mode"]),
        )  # fmt: skip
        return OrtImageEncoder(sess, prep, int(meta["embed_dim"]), ref)
    except Exception:  # noqa: BLE001 - a damaged entry: export again
        return None


def preprocess_of(encoder: Any) -> Preprocess:
    """The preprocessing a torch ClipEncoder applies, as plain data."""
    return Preprocess(
        tuple(int(s) for s in encoder.image_size),  # type: ignore[arg-type]
        tuple(float(m) for m in encoder.mean.tolist()),  # type: ignore[arg-type]
        tuple(float(s) for s in encoder.std.tolist()),  # type: ignore[arg-type]
        encoder.interpolation,
        encoder.resize_mode,
    )


def export(key: str, encoder: Any, threads: int) -> OrtImageEncoder:
    """Export a torch ClipEncoder's image tower under `key`, checked against PyTorch.
    Raises ort.ExportFailed (the caller keeps the torch encoder)."""
    import torch

    from .ort import export_checked, session

    class _Visual(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any) -> Any:
            return self.model.encode_image(x, normalize=True).float()

    if encoder.dtype != torch.float32:
        from .ort import ExportFailed

        raise ExportFailed("only fp32 encoders are exported")
    prep = preprocess_of(encoder)
    folder = cache.entry(KIND, key)
    with cache.locked(folder):
        found = load_cached(key, encoder.ref, threads)
        if found is not None:  # another process exported it while we waited
            return found
        gen = torch.Generator().manual_seed(0)
        probe = torch.rand(2, 3, *prep.image_size, generator=gen) * 4.0 - 2.0
        wrapped = _Visual(encoder.model).eval()
        model = export_checked(
            wrapped, probe, folder, MODEL_FILE, input_name="pixels", output_names=["embedding"],
            reference=lambda x: [wrapped(x)], threads=threads,
        )  # fmt: skip
        cache.write_json(
            folder / "meta.json",
            {
                "image_size": list(prep.image_size), "mean": list(prep.mean), "std": list(prep.std),
                "interpolation": prep.interpolation, "resize_mode": prep.resize_mode,
                "embed_dim": int(encoder.embed_dim), "model": encoder.ref.model,
            },
        )  # fmt: skip
    return OrtImageEncoder(session(model, threads), prep, encoder.embed_dim, encoder.ref)
