"""The catalogue index cache: a library's tracks and fitted clusters saved as
`.moodsic-index.json` next to it (or in the user cache when that folder is not writable), and
reused while the fingerprint of the files it came from (names, sizes, modification times) and
the clustering settings are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fileio import regular_file, write_text_atomic
from . import Library, Track, TrackTable, library_from_tracks
from .clusters import MoodClusters

INDEX_VERSION = 2
INDEX_NAME = ".moodsic-index.json"


def _fingerprint(files: list[Path], extra: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": INDEX_VERSION, **extra}, sort_keys=True).encode())
    for f in sorted(files):
        try:
            st = f.stat()
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0missing\n".encode())
    return h.hexdigest()


def index_paths(index_path: Path, cache_dir: Path | None) -> list[Path]:
    """Where a library's index may live: next to it, then in the user cache (keyed by path)."""
    from ..weights import default_cache_dir

    base = cache_dir if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(str(index_path.resolve()).encode()).hexdigest()[:16]
    return [index_path, Path(base) / "library" / "index" / f"{key}.json"]


def _vetted(tracks: list[Track] | TrackTable, files: list[Path]) -> bool:
    """True if every track's audio is one of the files the loader found and checked this time
    (an index file in a shared library folder is as untrusted as its manifest)."""
    known = set()
    for f in files:
        try:
            known.add(str(f.resolve()))
        except (OSError, RuntimeError):
            continue
    paths = tracks.paths() if isinstance(tracks, TrackTable) else (t.path for t in tracks)
    return all(not path or path in known for path in paths)


def cached_library(
    *,
    name: str,
    root: Path,
    kind: str,
    index_path: Path,
    files: list[Path],
    cfg: Any,
    build: Callable[[], tuple[list[Track] | TrackTable, list[str]]],
    cache_dir: Path | None,
    payload_extra: Callable[[], dict[str, Any]] | None = None,
) -> Library:
    """The library `build` makes (tracks, warnings), or the cached index of it while the
    fingerprint of `files` and the clustering settings are unchanged; a new index is written
    to the first writable place of `index_paths`."""
    extra = {
        "kind": kind,
        "root": str(root.resolve()),
        "kmin": cfg.min_clusters,
        "kmax": cfg.max_clusters,
    }
    fp = _fingerprint(files, extra)
    candidates = index_paths(index_path, cache_dir)
    for cand in candidates:
        cached = _read_index(cand, fp, name=name, root=root, kind=kind, files=files)
        if cached is not None:
            # The files behind its warnings are as they were: tell the user on every load.
            _warn(cached.warnings)
            return cached
    tracks, warns = build()
    _warn(warns)
    lib = library_from_tracks(
        tracks, name=name, root=root, kind=kind, match_config=cfg, warnings=tuple(warns)
    )
    payload = json.dumps(
        {
            "fingerprint": fp,
            "version": INDEX_VERSION,
            "kind": kind,
            **(
                {"table": lib.tracks.to_dict()}
                if isinstance(lib.tracks, TrackTable)
                else {"tracks": [t.to_dict() for t in lib.tracks]}
            ),
            "clusters": lib.clusters.to_dict(),
            "warnings": list(warns),
            **(payload_extra() if payload_extra is not None else {}),
        }
    )
    for cand in candidates:
        if not _writable_dir(cand.parent):
            continue
        try:
            write_text_atomic(cand, payload)
            break
        except (OSError, InputError):  # atomic_path reports an uncreatable folder as InputError
            continue  # the index is a cache: without a writable place, the library still loads
    return lib


def _read_index(
    path: Path, fp: str, *, name: str, root: Path, kind: str, files: list[Path]
) -> Library | None:
    """The library a cached index at `path` holds, if it was built from these very files."""
    try:
        data = json.loads(regular_file(path, "library index").read_text(encoding="utf-8"))
        if data.get("fingerprint") != fp:
            return None
        tracks: tuple[Track, ...] | TrackTable = (
            TrackTable.from_dict(data["table"])
            if "table" in data
            else tuple(Track.from_dict(t) for t in data["tracks"])
        )
        if kind != "builtin" and not _vetted(tracks, files):
            return None  # an index may not smuggle in paths its loader would refuse
        return Library(
            name=name,
            root=root,
            tracks=tracks,
            clusters=MoodClusters.from_dict(data["clusters"]),
            kind=kind,
            warnings=tuple(str(w) for w in data.get("warnings", ())),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, InputError):
        return None  # a stale, corrupt or hostile index (a FIFO too) is rebuilt


def _warn(messages: tuple[str, ...] | list[str]) -> None:
    for w in messages:
        warnings.warn(w, stacklevel=4)  # the caller of load_library


def _writable_dir(folder: Path) -> bool:
    """Missing (will be created) or writable, judged by mode bits too: root may write into a
    folder marked read-only, but a read-only data folder should stay untouched."""
    try:
        st = folder.stat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return bool(st.st_mode & 0o200) and os.access(folder, os.W_OK)
