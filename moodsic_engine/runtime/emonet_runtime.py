"""EmoNet on ONNX Runtime, exported once per checkpoint fingerprint; PyTorch otherwise.

`load_emonet_fast` returns either an `OrtEmoNet` or the torch `EmoNet`; `run_views` runs
test-time views through whichever it is, so the face expert never needs to know. The first
load of a checkpoint always goes through `experts.emonet.load_emonet` (strict key and shape
checks), so a cached export exists only for a file that passed them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import cache

KIND = "emonet"
MODEL_FILE = "emonet.onnx"
INPUT = "faces"
OUTPUTS = ("valence", "arousal")


class OrtEmoNet:
    """EmoNet's valence and arousal heads on ONNX Runtime (the expression head is not run)."""

    backend = "onnxruntime"

    def __init__(self, sess: Any, n_expression: int) -> None:
        self.session = sess
        self.n_expression = int(n_expression)

    def infer(self, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, 256, 256, 3] float in [0, 1] -> (valence [N], arousal [N]) in [-1, 1]."""
        x = np.ascontiguousarray(np.asarray(views, dtype=np.float32).transpose(0, 3, 1, 2))
        v, a = self.session.run(list(OUTPUTS), {INPUT: x})
        return v.astype(np.float32), a.astype(np.float32)


def run_views(model: Any, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valence and arousal [N] for test-time views [N, S, S, 3] (float in [0, 1]) through an
    OrtEmoNet or a torch EmoNet (the same numbers within 1e-4)."""
    if isinstance(model, OrtEmoNet):
        return model.infer(views)
    import torch

    from ..experts.emonet import run_emonet

    x = torch.from_numpy(np.ascontiguousarray(views, dtype=np.float32)).permute(0, 3, 1, 2)
    out = run_emonet(model, x)
    return out.valence.float().numpy(), out.arousal.float().numpy()


def _key(path: Path, n_expression: int | None) -> str:
    from ..weights import file_fingerprint

    return cache.cache_key(KIND, file_fingerprint(path), n_expression)


def load_emonet_fast(
    path: str | os.PathLike[str], n_expression: int | None = None, *, threads: int = 0
) -> Any:
    """An EmoNet for `path`: the cached ONNX export when there is one, else the checkpoint
    loaded (and checked) by PyTorch, exported for the next run where ONNX Runtime works."""
    from .ort import ExportFailed, default_threads, ort_available, session

    p = Path(path)
    threads = default_threads(threads)
    use_ort = ort_available()
    key = _key(p, n_expression) if use_ort else ""
    if use_ort:
        found = _load_cached(key, threads)
        if found is not None:
            return found
    from ..experts.emonet import load_emonet

    model = load_emonet(p, n_expression)
    if not use_ort or not ort_available(for_export=True):
        return model
    folder = cache.entry(KIND, key)
    try:
        with cache.locked(folder):
            found = _load_cached(key, threads)
            if found is not None:
                return found
            model_path = _export(model, folder, threads)
            cache.write_json(folder / "meta.json", {"n_expression": int(model.n_expression)})
        return OrtEmoNet(session(model_path, threads), model.n_expression)
    except (ExportFailed, OSError):
        return model  # PyTorch it is; the next run tries again


def _load_cached(key: str, threads: int) -> OrtEmoNet | None:
    from .ort import session

    folder = cache.entry(KIND, key)
    meta = cache.read_json(folder / "meta.json")
    if meta is None or not (folder / MODEL_FILE).is_file():
        return None
    try:
        return OrtEmoNet(session(folder / MODEL_FILE, threads), int(meta["n_expression"]))
    except Exception:  # noqa: BLE001 - a damaged entry: export again
        return None


def _export(model: Any, folder: Path, threads: int) -> Path:
    import torch

    from .ort import export_checked

    class _VA(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> tuple[Any, Any]:
            out = self.net(x)
            return out["valence"].clamp(-1.0, 1.0), out["arousal"].clamp(-1.0, 1.0)

    wrapped = _VA(model).eval()
    probe = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    return export_checked(
        wrapped, probe, folder, MODEL_FILE, input_name=INPUT, output_names=OUTPUTS,
        reference=lambda x: list(wrapped(x)), threads=threads,
    )  # fmt: skip
