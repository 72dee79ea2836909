"""Atomic file output and path-safety helpers shared by every writer."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temp name keeps the extension so tools that choose a format by suffix (ffmpeg,
    soundfile, matplotlib) still work. On any exception, Ctrl-C included, the temp file is
    removed and `path` keeps its previous content (or stays absent).
    """
    target = Path(path)
    if target.exists() and not target.is_file():
        # a rename would replace a device (/dev/null), FIFO or socket with a plain file
        raise InputError(f"output {target} exists and is not a regular file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent
        )
    except OSError as exc:  # parent is a file, read-only or missing filesystem, ...
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"nothing was written for {target}")
        # mkstemp makes the file private (0600); give it the permissions a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def resolve_inside(
    base: str | os.PathLike[str], relative: str | os.PathLike[str], *, allow_outside: bool = False
) -> Path:
    """Resolve `relative` against `base`; refuse results outside `base` unless allowed.

    Symlinks are resolved first, so a link pointing out of the folder is refused too.
    """
    try:
        base_path = Path(base).resolve()
        candidate = Path(relative)
        resolved = (candidate if candidate.is_absolute() else base_path / candidate).resolve()
    except (OSError, RuntimeError, ValueError):  # symlink loop (RuntimeError < 3.13), NUL byte
        raise InputError(
            f"path {str(relative)!r} cannot be resolved (symlink loop or invalid name)"
        ) from None
    if not allow_outside and not resolved.is_relative_to(base_path):
        raise InputError(
            f"path {str(relative)!r} points outside {base_path} (allow it explicitly to use it)"
        )
    return resolved
