"""Where weights are found, and the only ways they are read (safetensors, weights-only torch)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ResourceError

ENV_VAR = "MOODSIC_WEIGHTS"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "moodsic"


def resolve_weights_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--weights-dir, else $MOODSIC_WEIGHTS, else ~/.cache/moodsic/weights."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return default_cache_dir() / "weights"


def find_weight(
    explicit: str | os.PathLike[str] | None, weights_dir: Path | None, candidates: Iterable[str]
) -> Path | None:
    """An explicit path if given (must exist), else the first candidate name in the weights dir."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ResourceError(f"weights file not found: {path}")
        return path
    folder = weights_dir or resolve_weights_dir()
    for name in candidates:
        path = folder / name
        if path.is_file():
            return path
    return None


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state dict without ever unpickling code.

    `.safetensors` goes through safetensors; anything else through
    `torch.load(weights_only=True)`, which refuses pickles that reference arbitrary callables.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise ResourceError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(p), device="cpu"))
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResourceError(f"cannot load weights {p.name}: {first[:200]}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ResourceError(f"weights file {p.name} does not hold a state dict")
    return obj


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """Cheap identity of a large file (weights, videos): size plus a hash of its first and
    last MiB, so multi-GB files are identified without reading them whole."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with p.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return f"{size}:{h.hexdigest()[:32]}"
