"""Library loading: `load` tells what kind of library a spec names and hands it to its loader
(builtin here; DEAM in deam.py, manifest/table in manifest.py, audio folder in
audio_folder.py). Each loader turns its source into `Track` rows with V/A on the reference
scale; the catalogue index cache they share is index.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LibraryError
from ..fileio import regular_file
from . import Library, Track
from .audio_folder import load_audio_folder
from .common import AUDIO_EXTS
from .deam import find_static_csvs, load_deam
from .index import INDEX_NAME, INDEX_VERSION, cached_library
from .manifest import load_manifest
from .tables import ALIASES, TRACK_KEYS, parse_scale, table_header

__all__ = [
    "AUDIO_EXTS",
    "INDEX_NAME",
    "INDEX_VERSION",
    "as_array",
    "load",
    "load_audio_folder",
    "load_builtin",
    "load_deam",
    "load_manifest",
    "parse_scale",
]


def load(
    spec: str | os.PathLike[str],
    *,
    match_config: Any = None,
    allow_outside: bool = False,
    cache_dir: Path | None = None,
) -> Library:
    """The library `spec` names ("builtin", a DEAM folder, a manifest or table, an audio
    folder or one audio file), each handed to its loader."""
    from ..config import MatchConfig

    cfg = match_config or MatchConfig()
    if str(spec) == "builtin":
        return load_builtin(cfg, cache_dir=cache_dir)
    path = Path(spec).expanduser()
    if not path.exists():
        raise LibraryError(f"library not found: {path}")
    if path.is_dir():
        if find_static_csvs(path):
            return load_deam(path, cfg, cache_dir=cache_dir)
        for name in (
            "manifest.json",
            "manifest.csv",
            "moodsic-manifest.json",
            "moodsic-manifest.csv",
        ):
            if (path / name).is_file():
                return load_manifest(
                    path / name, cfg, allow_outside=allow_outside, cache_dir=cache_dir
                )
        found = _folder_manifest(path)
        if found is not None:  # its one V/A table, whatever it is called: labels beat estimates
            return load_manifest(found, cfg, allow_outside=allow_outside, cache_dir=cache_dir)
        return load_audio_folder(path, cfg, allow_outside=allow_outside, cache_dir=cache_dir)
    # Not a folder, so it must be a regular file: a FIFO or device would block the reader.
    regular_file(path, "library", error=LibraryError)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".json", ".parquet", ".tsv"):
        return load_manifest(path, cfg, allow_outside=allow_outside, cache_dir=cache_dir)
    if suffix in AUDIO_EXTS:  # one track: a library of that file alone (V/A estimated)
        return load_audio_folder(
            path.parent, cfg, allow_outside=allow_outside, cache_dir=cache_dir, only=path
        )
    raise LibraryError(
        f"cannot tell what kind of library {path} is (expected a folder, .csv, .json or .parquet)"
    )


def _folder_manifest(folder: Path) -> Path | None:
    """The folder's only top-level CSV/TSV/JSON/Parquet file with valence and arousal columns,
    if exactly one has them (a folder of music with its `tracks.csv` is a manifest library)."""
    found = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return None
    for p in entries:
        if p.name.startswith(".") or p.suffix.lower() not in (".csv", ".tsv", ".json", ".parquet"):
            continue
        try:
            if not p.is_file():
                continue
            cols = table_header(p)
            if cols is None and p.suffix.lower() == ".json" and p.stat().st_size < 32 << 20:
                data = json.loads(p.read_text(encoding="utf-8-sig"))
                if isinstance(data, dict):
                    low = {str(k).strip().lower(): v for k, v in data.items()}
                    data = next((low[k] for k in TRACK_KEYS if k in low), None)
                    if isinstance(data, dict):
                        data = list(data.values())
                first = data[0] if isinstance(data, list) and data else None
                cols = [str(k).strip().lower() for k in first] if isinstance(first, dict) else []
        except (OSError, ValueError, RecursionError):
            continue
        if cols and all(any(a in cols for a in ALIASES[f]) for f in ("valence", "arousal")):
            found.append(p)
    return found[0] if len(found) == 1 else None


def load_builtin(cfg: Any, *, cache_dir: Path | None = None) -> Library:
    """The built-in library (rendered into the cache on first use), as its six mood groups."""
    import dataclasses

    from .builtin import BUILTIN_CLUSTERS, ensure_builtin

    # Sixteen points are too few for BIC to tell six designed groups from eight pairs, so the
    # built-in library uses the six mood groups its pieces were written as (within the bounds).
    k = min(BUILTIN_CLUSTERS, cfg.max_clusters)
    cfg = dataclasses.replace(cfg, min_clusters=k, max_clusters=k)
    folder = ensure_builtin(cache_dir)
    catalogue = folder / "catalogue.json"

    def build() -> tuple[list[Track], list[str]]:
        rows = json.loads(catalogue.read_text(encoding="utf-8"))["tracks"]
        tracks = [
            Track(**{**r, "path": str(folder / r["path"]), "va_source": "builtin"})
            for r in rows
            if (folder / r["path"]).is_file()
        ]
        return tracks, []

    return cached_library(
        name="builtin",
        root=folder,
        kind="builtin",
        index_path=folder / INDEX_NAME,
        files=[catalogue],
        cfg=cfg,
        build=build,
        cache_dir=cache_dir,
    )


def as_array(tracks: list[Track]) -> np.ndarray:
    """(n, 2) float64 array of the tracks' (valence, arousal)."""
    return np.array([[t.valence, t.arousal] for t in tracks], dtype=np.float64).reshape(-1, 2)
