"""Atomic file output and path-safety helpers shared by every writer."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError, MoodsicError


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
        # The pid in the name lets a later run tell a dead writer's leftover from live work.
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.stem}.p{os.getpid()}-",
            suffix=f".part{target.suffix}",
            dir=target.parent,
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


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def regular_file(
    path: str | os.PathLike[str],
    what: str,
    *,
    max_bytes: int | None = None,
    error: type[MoodsicError] = InputError,
) -> Path:
    """`path` if it is a regular file (links followed) that may be opened; else `error`.

    Checked with stat before anything opens it: opening a FIFO blocks until a writer comes,
    a device may never end, so wherever a file is expected these are refused at once. With
    `max_bytes`, a larger file is refused before it is read. `what` names the input in
    the one-line message ("config file", "cue sheet", ...).
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{what} not found: {p}") from None
    except OSError as exc:  # ELOOP, EACCES on a parent, ENAMETOOLONG, ...
        reason = "a symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
        raise error(f"cannot read {what} {p}: {reason}") from None
    except ValueError:  # an embedded NUL byte
        raise error(f"{what} path {str(path)!r} is not a valid file name") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        if kind == "a folder":
            raise error(f"{what} {p} is a directory, not a file")
        raise error(f"{what} {p} is {kind}, not a regular file")
    if not os.access(p, os.R_OK):
        raise error(f"cannot read {what} {p}: permission denied")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{what} {p} is too large ({st.st_size} bytes; the limit is {max_bytes})")
    return p


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


# ----------------------------------------------------------------------------- leftovers
# What `atomic_path` (and `part_file`) name their temp files: `.STEM.pPID-XXXXXXXX.part.EXT`
# (older versions wrote `.STEM.XXXXXXXX.part.EXT`); mkstemp's random part is 8 of [a-z0-9_].
_PART_TAIL = r"\.(?:p(?P<pid>\d+)-)?[a-z0-9_]{8}\.part(?:\.[^/]*)?$"
_PART_RE = re.compile(r"^\..+" + _PART_TAIL)
# Work folders made by `work_dir`: `moodsic-KIND-pPID-XXXXXXXX` in the temp folder.
_WORK_RE = re.compile(r"^moodsic-[a-z]+-p(?P<pid>\d+)-[a-z0-9_]{8}$")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _owner_gone(match: re.Match[str], owner: int | None) -> bool:
    pid = match.group("pid")
    if pid is None:  # an older name without a pid: only a sweep that owns the folder gets here
        return owner is None
    return int(pid) == owner if owner is not None else not pid_alive(int(pid))


def part_file(beside: str | os.PathLike[str], suffix: str) -> Path:
    """An empty temp file beside `beside`, named like `atomic_path`'s so sweeps find it."""
    target = Path(beside)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.stem}.p{os.getpid()}-", suffix=f".part{suffix}", dir=target.parent
    )
    os.close(fd)
    return Path(name)


def sweep_parts(target: str | os.PathLike[str], *, owner: int | None = None) -> list[Path]:
    """Remove temp files left beside `target` by writers that are gone.

    `owner`: the pid of a writer the caller knows is dead (a killed worker): its files go
    whatever this machine says about the pid. Without it, files of pids not alive here go.
    """
    target = Path(target)
    pattern = re.compile(r"^\." + re.escape(target.stem) + _PART_TAIL)
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            m = pattern.match(entry.name)
            if m and _owner_gone(m, owner) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def sweep_tree_parts(root: str | os.PathLike[str], *, everything: bool = False) -> list[Path]:
    """Remove every stale temp file under `root` (a batch's OUTDIR, under its lock).

    Files of a pid alive on this machine are kept unless `everything`; hidden folders are
    walked too (the batch keeps its state there), symlinked ones are not.
    """
    removed: list[Path] = []
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            m = _PART_RE.match(name)
            if m is None:
                continue
            pid = m.group("pid")
            if not everything and pid is not None and pid_alive(int(pid)):
                continue
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(Path(path))
    return removed


@contextlib.contextmanager
def work_dir(kind: str) -> Iterator[Path]:
    """A private temp folder `moodsic-KIND-pPID-XXXXXXXX`, removed when the block ends.

    The pid in the name lets a parent remove a killed worker's folders and a later run
    remove those of a process that died (`sweep_work_dirs`); folders of dead owners are
    swept first, so a crash's leftovers do not pile up.
    """
    if not re.fullmatch(r"[a-z]+", kind):
        raise ValueError(f"work folder kind must be lowercase letters: {kind!r}")
    sweep_work_dirs()
    with tempfile.TemporaryDirectory(prefix=f"moodsic-{kind}-p{os.getpid()}-") as folder:
        yield Path(folder)


def sweep_work_dirs(
    *, owner: int | None = None, root: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Remove `work_dir` folders in the temp folder whose process is gone (or is `owner`)."""
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    uid = os.getuid() if hasattr(os, "getuid") else None
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            m = _WORK_RE.match(entry.name)
            if m is None or not _owner_gone(m, owner):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if not entry.is_dir(follow_symlinks=False) or (
                    uid is not None and st.st_uid != uid
                ):
                    continue
                shutil.rmtree(entry.path)
                removed.append(Path(entry.path))
    return removed
