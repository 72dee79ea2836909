"""Where weights are found, and the only ways they are read (safetensors, weights-only torch)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import MoodsicError, ResourceError
from .fileio import regular_file

ENV_VAR = "MOODSIC_WEIGHTS"


class WeightsError(ResourceError):
    """A weights file that exists (named by the user or found in the weights folder) but
    cannot be used. Unlike ExpertUnavailable it is never skipped quietly: the run stops."""


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
        # Named by the user: it must be there and be a file (a FIFO would block the loader).
        return regular_file(Path(explicit).expanduser(), "weights file", error=WeightsError)
    folder = weights_dir or resolve_weights_dir()
    for name in candidates:
        path = folder / name
        if path.is_file():
            return path
    return None


MAX_WEIGHTS_BYTES = 16 << 30  # larger than any checkpoint Moodsic can use
_SAFE_ADVICE = "only plain tensors are loaded, so a pickle cannot run code"


def why_unloadable(p: Path, exc: BaseException) -> str:
    """Why a weights file failed to load, in our words: PyTorch's own message suggests
    turning weights_only off, which would let a hostile file run code, so it is not passed on."""
    text = str(exc)
    if p.suffix == ".safetensors" and "Safetensor" in type(exc).__name__:
        first = (text.strip().splitlines() or [type(exc).__name__])[0]
        return f"not a valid safetensors file ({first[:160]})"
    if isinstance(exc, EOFError) or "unexpected EOF" in text:
        return "the file is empty or truncated"
    if "Weights only load failed" in text or type(exc).__name__ == "UnpicklingError":
        m = re.search(r"GLOBAL ([\w.]+)", text)
        if m:
            return f"it holds Python objects ({m.group(1)}), not only tensors; {_SAFE_ADVICE}"
        with contextlib.suppress(OSError), p.open("rb") as f:
            head = f.read(2)
            if head[:1] == b"\x80" or head == b"PK":
                return f"it holds Python objects, not only tensors; {_SAFE_ADVICE}"
        return "not a PyTorch or safetensors weights file"
    if "zip archive" in text or "central directory" in text:
        return "a damaged or truncated PyTorch file"
    # e.g. "Error(s) in loading state_dict for CLIP: size mismatch for visual.proj: ...":
    # the lines after the first name the keys, so they are joined, not dropped
    flat = " ".join(text.split()) or type(exc).__name__
    return (flat if "weights_only" not in flat else type(exc).__name__)[:300]


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state dict without ever unpickling code.

    `.safetensors` goes through safetensors; anything else through
    `torch.load(weights_only=True)`, which refuses pickles that reference arbitrary callables.
    Any failure is a WeightsError naming the file and why.
    """
    p = regular_file(path, "weights file", max_bytes=MAX_WEIGHTS_BYTES, error=WeightsError)
    import torch  # after the check: a refusal costs no torch import

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols: not news
            if p.suffix == ".safetensors":
                from safetensors.torch import load_file

                return dict(load_file(str(p), device="cpu"))
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable file
        raise WeightsError(f"cannot load weights {p}: {why_unloadable(p, exc)}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"cannot load weights {p}: it does not hold a state dict of tensors")
    return obj


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# sha256 of published weights by file name. None is pinned yet: the authors publish no
# checksums, and a hash taken from one download would only say that download was the same.
KNOWN_SHA256: dict[str, str] = {}


def expected_sha256(path: str | os.PathLike[str]) -> str | None:
    """The checksum a weights file should have: KNOWN_SHA256 by name, else a `NAME.sha256`
    file beside it (sha256sum's format), else None."""
    p = Path(path)
    if p.name in KNOWN_SHA256:
        return KNOWN_SHA256[p.name]
    side = p.with_name(p.name + ".sha256")
    with contextlib.suppress(OSError, MoodsicError):
        text = regular_file(side, "checksum file", max_bytes=4096).read_text("ascii", "replace")
        m = re.match(r"\s*([0-9a-fA-F]{64})\b", text)
        if m:
            return m.group(1).lower()
    return None


def check_sha256(path: str | os.PathLike[str]) -> str:
    """'' when no checksum is known; 'sha256 ok' when it matches; else WeightsError."""
    want = expected_sha256(path)
    if want is None:
        return ""
    got = sha256_file(path)
    if got != want:
        raise WeightsError(
            f"weights {Path(path)} have sha256 {got[:16]}..., expected {want[:16]}... "
            "(a damaged or different file)"
        )
    return "sha256 ok"


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
