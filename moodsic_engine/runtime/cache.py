"""The runtime cache: derived files (ONNX exports, prompt embeddings, resolved weights)
under `<cache>/moodsic/runtime`, each named by a hash of everything it depends on.

A key always holds the weights file's fingerprint (`weights.file_fingerprint`: size plus
a hash of its first and last MiB), so a different file gets a different entry and a stale
entry is never read. Entries are written atomically; an export that two processes start at
once is done by one of them while the other waits on a lock file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..weights import default_cache_dir

CACHE_ENV = "MOODSIC_RUNTIME_CACHE"  # tests and the bench point this at a folder of their own
FORMAT = 1  # bump when what is stored changes meaning: old entries are then never read


def cache_root() -> Path:
    """$MOODSIC_RUNTIME_CACHE, else <XDG cache or ~/.cache>/moodsic/runtime."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else default_cache_dir() / "runtime"


def cache_key(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (the format version is always one of them)."""
    text = json.dumps([FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def entry(kind: str, key: str) -> Path:
    """The folder of one cache entry (not created)."""
    return cache_root() / kind / key


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder/.lock` (created, with the folder, private to the
    user): one process exports, the others wait and then find the finished files."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_json(path: Path) -> dict[str, Any] | None:
    """A cached JSON object, or None when it is absent or damaged (then it is rebuilt)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def write_json(path: Path, obj: dict[str, Any]) -> None:
    from ..fileio import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_text_atomic(path, json.dumps(obj, sort_keys=True))


def file_stamp(path: Path) -> list[Any]:
    """What says a file is unchanged without reading it: size, mtime and inode."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def remembered(kind: str, key_parts: list[Any], compute: Any) -> Any:
    """`compute()`'s JSON-able value, stored under a key of `key_parts` (which must identify
    everything it depends on, a file's fingerprint included) and read back next time."""
    path = entry(kind, cache_key(kind, key_parts)) / "value.json"
    memo = read_json(path)
    if memo is not None and "value" in memo:
        return memo["value"]
    value = compute()
    with contextlib.suppress(OSError, TypeError, ValueError):
        write_json(path, {"value": value})
    return value


def remembered_for_file(kind: str, path: Any, extra: list[Any], compute: Any) -> Any:
    """`remembered` keyed by a file's fingerprint plus `extra`; computed afresh (and not
    stored) when `path` is not a readable file."""
    from ..weights import file_fingerprint

    try:
        fingerprint = file_fingerprint(path)
    except (OSError, TypeError):
        return compute()
    return remembered(kind, [fingerprint, *extra], compute)
