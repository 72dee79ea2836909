"""Library loaders (builtin, DEAM, manifest/table, audio folder) and the catalogue index cache.

Each loader turns its source into `Track` rows with V/A on the reference scale; `load`
dispatches on the spec. The index (tracks + fitted clusters) is cached next to the library
as `.moodsic-index.json` and reused while the fingerprint of the files it came from (names,
sizes, modification times) and the clustering settings are unchanged. When the library folder
is not writable the index goes to the user cache instead.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import scales
from ..errors import InputError, LibraryError
from ..fileio import regular_file, resolve_inside, write_text_atomic
from . import Library, Track, TrackTable, library_from_tracks
from .clusters import MoodClusters

INDEX_VERSION = 2
INDEX_NAME = ".moodsic-index.json"
AUDIO_EXTS = {
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif", ".aifc", ".m4a", ".opus", ".aac",
    ".wma", ".mka", ".caf",
}  # fmt: skip
_STATIC_GLOB = "static_annotations_averaged_songs_*.csv"


def load(
    spec: str | os.PathLike[str],
    *,
    match_config: Any = None,
    allow_outside: bool = False,
    cache_dir: Path | None = None,
) -> Library:
    from ..config import MatchConfig

    cfg = match_config or MatchConfig()
    if str(spec) == "builtin":
        return load_builtin(cfg, cache_dir=cache_dir)
    path = Path(spec).expanduser()
    if not path.exists():
        raise LibraryError(f"library not found: {path}")
    if path.is_dir():
        if _find_static_csvs(path):
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
            cols = _table_header(p)
            if cols is None and p.suffix.lower() == ".json" and p.stat().st_size < 32 << 20:
                data = json.loads(p.read_text(encoding="utf-8-sig"))
                if isinstance(data, dict):
                    low = {str(k).strip().lower(): v for k, v in data.items()}
                    data = next((low[k] for k in _TRACK_KEYS if k in low), None)
                    if isinstance(data, dict):
                        data = list(data.values())
                first = data[0] if isinstance(data, list) and data else None
                cols = [str(k).strip().lower() for k in first] if isinstance(first, dict) else []
        except (OSError, ValueError, RecursionError):
            continue
        if cols and all(any(a in cols for a in _ALIASES[f]) for f in ("valence", "arousal")):
            found.append(p)
    return found[0] if len(found) == 1 else None


# ----------------------------------------------------------------------------- index cache
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


def _index_paths(index_path: Path, cache_dir: Path | None) -> list[Path]:
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


def _cached(
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
    extra = {
        "kind": kind,
        "root": str(root.resolve()),
        "kmin": cfg.min_clusters,
        "kmax": cfg.max_clusters,
    }
    fp = _fingerprint(files, extra)
    candidates = _index_paths(index_path, cache_dir)
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


def _shown(names: list[str], limit: int = 10, sep: str = ", ") -> str:
    """The first `limit` names, then how many more ("a, b and 3 more"; "a; b; and 3 more")."""
    more = len(names) - limit
    if more <= 0:
        return sep.join(names)
    return sep.join(names[:limit]) + ("; and" if sep == "; " else " and") + f" {more} more"


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


# ----------------------------------------------------------------------------- builtin
def load_builtin(cfg: Any, *, cache_dir: Path | None = None) -> Library:
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

    return _cached(
        name="builtin",
        root=folder,
        kind="builtin",
        index_path=folder / INDEX_NAME,
        files=[catalogue],
        cfg=cfg,
        build=build,
        cache_dir=cache_dir,
    )


# ----------------------------------------------------------------------------- manifest / table
_ALIASES = {
    "path": ("path", "file", "filename", "file_name", "filepath", "file_path", "audio",
             "audio_path", "audio_file", "audiofile", "location"),
    "id": ("id", "song_id", "track_id", "musicid", "music_id", "songid", "song id"),
    "title": ("title", "song_title", "song title", "track", "name"),
    "artist": ("artist",),
    "genre": ("genre",),
    "valence": ("valence", "valence_ref", "valence_mean", "mean_valence", "v", "val"),
    "arousal": ("arousal", "arousal_ref", "arousal_mean", "mean_arousal", "a", "aro"),
    "scale": ("scale", "va_scale"),
    "valence_scale": ("valence_scale", "v_scale"),
    "arousal_scale": ("arousal_scale", "a_scale"),
}  # fmt: skip
# Keys a JSON manifest may keep its track list under.
_TRACK_KEYS = ("tracks", "songs", "items", "library", "entries", "data")
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"


def parse_scale(text: Any, *, default: str = "ref") -> tuple[float, float]:
    """A scale name from scales.NAMED_SCALES ('ref', 'deam', '1-9', ...), 'lo..hi' (also
    'lo-hi', 'lo to hi', '[lo, hi]'), a [lo, hi] pair or {"min": lo, "max": hi}."""
    if isinstance(text, dict):
        d = {str(k).strip().lower(): v for k, v in text.items()}
        for lo_key, hi_key in (("min", "max"), ("lo", "hi"), ("low", "high"), ("from", "to")):
            if lo_key in d and hi_key in d:
                return parse_scale([d[lo_key], d[hi_key]])
        raise ValueError(f"unknown scale {text!r} (use {{'min': lo, 'max': hi}})")
    if isinstance(text, list | tuple):
        if len(text) == 2 and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in text
        ):
            lo, hi = float(text[0]), float(text[1])
            if math.isfinite(lo) and math.isfinite(hi) and lo < hi:
                return lo, hi
        raise ValueError(f"unknown scale {text!r} (a scale pair is [lo, hi] with lo < hi)")
    s = str(default if text is None else text).strip().lower()
    if s in ("reference", "ref", ""):
        return scales.NAMED_SCALES["ref"]
    if s in scales.NAMED_SCALES:
        return scales.NAMED_SCALES[s]
    m = re.fullmatch(rf"[\[(]?\s*({_NUM})\s*(?:\.\.\.?|to|,|:|;|-|–|/)\s*({_NUM})\s*[\])]?", s)
    if m and float(m.group(1)) < float(m.group(2)):
        return float(m.group(1)), float(m.group(2))
    raise ValueError(
        f"unknown scale {text!r} (use ref, deam, 1-9, 1-5, 1-7, 0-10, unit, percent or lo..hi)"
    )


def _axis_scales(
    spec: Any, v_spec: Any = None, a_spec: Any = None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(valence scale, arousal scale): one scale for both, {"valence": .., "arousal": ..}, or
    separate valence_scale / arousal_scale values (which win over the shared one)."""
    if isinstance(spec, dict):
        d = {str(k).strip().lower(): v for k, v in spec.items()}
        if "valence" in d or "arousal" in d or "v" in d or "a" in d:
            v_spec = v_spec if v_spec is not None else d.get("valence", d.get("v"))
            a_spec = a_spec if a_spec is not None else d.get("arousal", d.get("a"))
            spec = None
    v = parse_scale(v_spec if v_spec is not None else spec)
    a = parse_scale(a_spec if a_spec is not None else spec)
    return v, a


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() == ""
    if isinstance(v, float):
        return math.isnan(v)
    return type(v).__name__ in ("NAType", "NaTType")  # pandas' missing markers


def _number(v: Any, axis: str) -> float:
    if isinstance(v, bool):
        raise ValueError(f"{axis} {v!r} is not a number")
    if isinstance(v, str):
        s = v.strip()
        try:
            return float(s)
        except ValueError:
            if re.fullmatch(r"[-+]?\d+,\d+", s):  # a decimal comma (European spreadsheets)
                return float(s.replace(",", "."))
            raise ValueError(f"{axis} {v!r} is not a number") from None
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{axis} {v!r} is not a number") from None


FileScale = dict[str, Any]


def _read_rows(path: Path) -> tuple[list[dict[str, Any]], FileScale]:
    """Rows of a manifest/table with lower-cased, stripped keys; plus file-level scales
    ({"scale": .., "valence_scale": .., "arousal_scale": ..}, any of them absent)."""
    suffix = path.suffix.lower()
    regular_file(path, "manifest", error=LibraryError)  # a FIFO would block the read
    try:
        if suffix == ".parquet":
            import pandas as pd

            df = pd.read_parquet(path)
            if any(name is not None for name in df.index.names):
                df = df.reset_index()  # an id kept as the table's index is a column too
            return [
                {str(k).strip().lower(): v for k, v in r.items()} for r in df.to_dict("records")
            ], {}
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LibraryError(f"manifest {path} is not UTF-8 text") from None
    except OSError as exc:
        raise LibraryError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise LibraryError(f"cannot read table {path}: {str(exc).splitlines()[0][:160]}") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # also: absurd nesting, huge ints
            raise LibraryError(f"manifest {path} is not valid JSON: {exc}") from None
        file_scale: FileScale = {}
        if isinstance(data, dict):
            low = {str(k).strip().lower(): v for k, v in data.items()}
            file_scale = {
                k: low[alias]
                for k in ("scale", "valence_scale", "arousal_scale")
                for alias in _ALIASES[k]
                if alias in low
            }
            key = next((k for k in _TRACK_KEYS if k in low), None)
            data = low.get(key) if key else None
            if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
                # {"tracks": {"id1": {...}, "id2": {...}}}: the keys are the ids
                data = [{"id": k, **v} for k, v in data.items()]
        if not isinstance(data, list):
            raise LibraryError(f"manifest {path}: expected a list of tracks or {{'tracks': [...]}}")
        rows = []
        for i, r in enumerate(data, start=1):
            if not isinstance(r, dict):
                raise LibraryError(f"manifest {path}: track {i} is not an object")
            rows.append({str(k).strip().lower(): v for k, v in r.items()})
        return rows, file_scale
    # CSV/TSV; first lines "# scale: deam" (or valence_scale / arousal_scale) state the scales.
    body, file_scale, delimiter = _csv_body(text, suffix)
    try:
        reader = csv.DictReader(io.StringIO(body), delimiter=delimiter, skipinitialspace=True)
        rows = [
            {
                str(k).strip().lower(): (v.strip() if isinstance(v, str) else v)
                for k, v in r.items()
                if k
            }
            for r in reader
        ]
    except csv.Error as exc:
        raise LibraryError(f"manifest {path} is not a readable CSV: {exc}") from None
    return rows, file_scale


def _csv_body(text: str, suffix: str) -> tuple[str, FileScale, str]:
    """A CSV's text without its leading comment lines, the scales those state, the delimiter."""
    file_scale: FileScale = {}
    lines = text.splitlines(keepends=True)
    while lines and (lines[0].lstrip().startswith("#") or not lines[0].strip()):
        m = re.match(r"#\s*((?:valence_|arousal_)?scale)\s*[:=]\s*(.+?)\s*$", lines[0].strip())
        if m:
            file_scale[m.group(1).lower()] = m.group(2)
        lines = lines[1:]
    sep = re.fullmatch(r"\s*sep=(.)\s*", lines[0]) if lines else None
    if sep:  # Excel's "sep=;" first line names the delimiter
        return "".join(lines[1:]), file_scale, sep.group(1)
    body = "".join(lines)
    return body, file_scale, "\t" if suffix == ".tsv" else _sniff_delimiter(body)


def _table_header(path: Path) -> list[str] | None:
    """A Parquet/CSV table's column names (lower-cased) without reading its rows; None for
    JSON or anything unreadable (the row reader then reports it)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return [str(n).strip().lower() for n in pq.read_schema(path).names]
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8-sig") as fh:
                head = fh.read(1 << 16)
            body, _, delimiter = _csv_body(head, suffix)
            first = next(csv.reader(io.StringIO(body), delimiter=delimiter), [])
            return [c.strip().lower() for c in first]
    except Exception:  # noqa: BLE001 - any failure: the full reader reports it
        return None
    return None


Column = tuple[Any, np.ndarray]  # values (list or array) and a boolean "missing" mask


def _read_columns(path: Path) -> tuple[dict[str, Column], int, FileScale] | None:
    """A Parquet/CSV table as columns (lower-cased names), for the vectorised loader; None when
    it is not a plain rectangular table (the row-by-row reader handles and reports those)."""
    suffix = path.suffix.lower()
    cols: dict[str, Column] = {}
    try:
        if suffix == ".parquet":
            import pandas as pd

            df = pd.read_parquet(path)
            if any(name is not None for name in df.index.names):
                df = df.reset_index()
            names = [str(c).strip().lower() for c in df.columns]
            if len(set(names)) != len(names):
                return None
            for name, c in zip(names, df.columns, strict=True):
                series = df[c]
                missing = series.isna().to_numpy(dtype=bool)
                if series.dtype.kind in "fiub":
                    values: Any = series.to_numpy()
                else:
                    values = series.tolist()
                    blank = [isinstance(x, str) and not x.strip() for x in values]
                    missing = missing | np.asarray(blank, dtype=bool)
                cols[name] = (values, missing)
            return cols, len(df), {}
        if suffix not in (".csv", ".tsv"):
            return None
        body, file_scale, delimiter = _csv_body(path.read_text(encoding="utf-8-sig"), suffix)
        reader = csv.reader(io.StringIO(body), delimiter=delimiter, skipinitialspace=True)
        header = [h.strip().lower() for h in next(reader, [])]
        rows = list(reader)
    except Exception:  # noqa: BLE001 - the row reader reports what is wrong
        return None
    rows = [r for r in rows if r]  # DictReader skips blank lines too
    width = len(header)
    if not rows or any(len(r) != width for r in rows) or len(set(header)) != width:
        return None
    for j, name in enumerate(header):
        if not name:
            continue
        values = [r[j].strip() for r in rows]
        cols[name] = (values, np.fromiter((not v for v in values), dtype=bool, count=len(values)))
    return cols, len(rows), file_scale


def _pick(row: dict[str, Any], field: str) -> Any:
    for alias in _ALIASES[field]:
        if alias in row and not _is_missing(row[alias]):
            return row[alias]
    return None


def _manifest_path(base: Path, raw: Any, *, allow_outside: bool) -> Path:
    """A manifest cell -> the audio file it names, inside `base` unless allowed.

    `file://` URLs are paths; when the cell does not name an existing file as written, a
    Windows-style `sub\\name.wav` and the other Unicode normalisation of the name (macOS
    writes decomposed accents) are tried too. Raises InputError for a path outside `base`.
    """
    import unicodedata
    from urllib.parse import unquote, urlparse

    text = str(raw).strip()
    if text.lower().startswith("file:"):
        url = urlparse(text)
        if url.netloc not in ("", "localhost"):
            raise InputError(f"path {text!r} is on another host")
        text = unquote(url.path)
    first = resolve_inside(base, text, allow_outside=allow_outside)
    if first.exists():
        return first
    variants = [text.replace("\\", "/")] if "\\" in text else []
    for form in ("NFC", "NFD"):
        variants.extend(unicodedata.normalize(form, v) for v in [text, *variants[:1]])
    for v in dict.fromkeys(variants):
        if v == text:
            continue
        cand = resolve_inside(base, v, allow_outside=allow_outside)
        if cand.exists():
            return cand
    return first


def _scale_hint(values: list[float]) -> str:
    """' (the values fit 1..9: state the scale, ...)' when a named scale would hold them all."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    for name in ("unit", "1-5", "1-7", "1-9", "0-10", "percent"):
        s_lo, s_hi = scales.NAMED_SCALES[name]
        if s_lo <= lo and hi <= s_hi:
            return (
                f" (all values fit {s_lo:g}..{s_hi:g}: state it with a scale column,"
                f" a '# scale: {name}' first line or a JSON \"scale\")"
            )
    return ""


_TABLE_ROWS = 1000  # from this many rows, a V/A table without audio is held as columns


def _fast_table(
    cols: dict[str, Column], n: int, file_scale: FileScale, row_offset: int
) -> TrackTable | None:
    """A V/A-only table as columns, vectorised; None when any row needs the row-by-row loader
    (a bad or missing value, a per-row scale, a duplicate id), which then reports it. Gives
    the same tracks the row-by-row loader would."""
    if n == 0 or any(
        alias in cols for f in ("scale", "valence_scale", "arousal_scale") for alias in _ALIASES[f]
    ):
        return None
    present = {f: [a for a in _ALIASES[f] if a in cols] for f in _ALIASES}
    if present["path"] or len(present["valence"]) != 1 or len(present["arousal"]) != 1:
        return None
    if len(present["id"]) > 1:
        return None
    try:
        (v_lo, v_hi), (a_lo, a_hi) = _axis_scales(
            file_scale.get("scale"), file_scale.get("valence_scale"),
            file_scale.get("arousal_scale"),
        )  # fmt: skip
    except ValueError:
        return None
    va = []
    for field, lo, hi in (("valence", v_lo, v_hi), ("arousal", a_lo, a_hi)):
        values, missing = cols[present[field][0]]
        if missing.any():
            return None
        if isinstance(values, np.ndarray):
            if values.dtype.kind not in "fiu":
                return None
            x = values.astype(np.float64)
        else:
            if any(isinstance(v, bool) for v in values):
                return None
            try:
                x = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                return None
        if x.ndim != 1 or not np.all(np.isfinite(x)) or np.any((x < lo - 1e-9) | (x > hi + 1e-9)):
            return None
        va.append(scales.range_to_ref(x, lo, hi))
    if present["id"]:
        values, missing = cols[present["id"][0]]
        if missing.any():
            return None
        if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
            ids = [str(v) for v in values.tolist()]
        else:
            raw = values.tolist() if isinstance(values, np.ndarray) else values
            ids = [
                str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip()
                for v in raw
            ]
        if len(set(ids)) != n or not all(ids):
            return None
    else:
        ids = [f"row{i + row_offset}" for i in range(1, n + 1)]  # as the row-by-row loader
    text: dict[str, list[str] | None] = {}
    for field in ("title", "artist", "genre"):
        names = present[field]
        if not names:
            continue
        picked: list[Any] = [None] * n
        for name in reversed(names):  # the first alias with a value wins, as in _pick
            values, missing = cols[name]
            raw = values.tolist() if isinstance(values, np.ndarray) else values
            for i in np.flatnonzero(~missing).tolist():
                picked[i] = raw[i]
        default = ids if field == "title" else [""] * n
        text[field] = [str(x) if x else d for x, d in zip(picked, default, strict=True)]
    return TrackTable(ids, va[0], va[1], va_source="manifest", **text)


def load_manifest(
    path: Path, cfg: Any, *, allow_outside: bool = False, cache_dir: Path | None = None
) -> Library:
    regular_file(path, "manifest", error=LibraryError)  # before the header is read
    base = path.parent
    header = _table_header(path)
    rows: list[dict[str, Any]] = []
    file_scale: FileScale = {}
    if header is not None and not any(a in header for a in _ALIASES["path"]):
        has_paths = False  # a V/A table: read only when its index has to be (re)built
    else:
        rows, file_scale = _read_rows(path)
        if not rows:
            raise LibraryError(f"manifest {path} lists no tracks")
        has_paths = any(_pick(r, "path") is not None for r in rows)
        header = None
    # The referenced files are part of the fingerprint, so adding or replacing audio rebuilds.
    referenced: list[Path] = []
    if has_paths:
        for r in rows:
            p = _pick(r, "path")
            if p is None:
                continue
            try:
                referenced.append(_manifest_path(base, p, allow_outside=allow_outside))
            except InputError:
                pass  # reported with its row number by build()

    def build() -> tuple[list[Track] | TrackTable, list[str]]:
        nonlocal rows, file_scale
        if header is not None:
            table = _read_columns(path)
            if table is not None and table[1] >= _TABLE_ROWS:
                cols, n, scale = table
                row_offset = 1 if path.suffix.lower() in (".csv", ".tsv") else 0
                fast = _fast_table(cols, n, scale, row_offset)
                if fast is not None:
                    return fast, []
            rows, file_scale = _read_rows(path)
            if not rows:
                raise LibraryError(f"manifest {path} lists no tracks")
        bad: list[str] = []
        values: list[float] = []  # every finite V/A value, for the hint on a wrong scale
        n_out = 0
        missing: list[str] = []
        unreadable: list[str] = []
        duplicates: list[str] = []
        tracks: list[Track] = []
        seen: set[str] = set()
        seen_audio: dict[str, int] = {}
        for i, r in enumerate(rows, start=1):
            row_no = (
                i + 1 if path.suffix.lower() in (".csv", ".tsv") else i
            )  # CSV: count the header
            try:
                (v_lo, v_hi), (a_lo, a_hi) = _axis_scales(
                    _pick(r, "scale") if _pick(r, "scale") is not None
                    else file_scale.get("scale"),
                    _pick(r, "valence_scale") if _pick(r, "valence_scale") is not None
                    else file_scale.get("valence_scale"),
                    _pick(r, "arousal_scale") if _pick(r, "arousal_scale") is not None
                    else file_scale.get("arousal_scale"),
                )  # fmt: skip
                v_raw, a_raw = _pick(r, "valence"), _pick(r, "arousal")
                if v_raw is None or a_raw is None:
                    gone = [n for n, x in (("valence", v_raw), ("arousal", a_raw)) if x is None]
                    raise ValueError(f"{' and '.join(gone)} missing or empty")
                v, a = _number(v_raw, "valence"), _number(a_raw, "arousal")
                values.extend(x for x in (v, a) if math.isfinite(x))
                if not (math.isfinite(v) and math.isfinite(a)):
                    raise ValueError("valence/arousal must be finite numbers")
                for axis, x, lo, hi in (("valence", v, v_lo, v_hi), ("arousal", a, a_lo, a_hi)):
                    if not lo - 1e-9 <= x <= hi + 1e-9:
                        n_out += 1
                        raise ValueError(f"{axis} {x:g} outside its scale {lo:g}..{hi:g}")
                v_ref = float(scales.range_to_ref(v, v_lo, v_hi))
                a_ref = float(scales.range_to_ref(a, a_lo, a_hi))
                p = _pick(r, "path")
                audio = ""
                duration = None
                if p is not None:
                    try:
                        resolved = _manifest_path(base, p, allow_outside=allow_outside)
                    except InputError as exc:
                        raise ValueError(str(exc)) from None
                    if not resolved.is_file():
                        missing.append(str(p))
                        continue
                    audio = str(resolved)
                    if audio in seen_audio:  # kept; matching treats them as one track
                        duplicates.append(f"row {row_no} (as row {seen_audio[audio]})")
                    seen_audio.setdefault(audio, row_no)
                    duration = _duration(audio)
                    if not duration:
                        unreadable.append(str(p))
                        continue
                elif has_paths:
                    raise ValueError("path is empty")
                raw_id = _pick(r, "id")
                if isinstance(raw_id, float) and raw_id.is_integer():
                    raw_id = int(raw_id)
                tid = str(raw_id).strip() if raw_id is not None else ""
                tid = tid or (Path(audio).stem if audio else f"row{row_no}")
                if tid in seen:
                    if raw_id is not None:
                        raise ValueError(f"duplicate id {tid!r}")
                    base_id, n = tid, 2  # derived from a file name: make it unique
                    while tid in seen:
                        tid, n = f"{base_id}-{n}", n + 1
                seen.add(tid)
                tracks.append(
                    Track(
                        id=tid,
                        title=str(_pick(r, "title") or (Path(audio).stem if audio else tid)),
                        artist=str(_pick(r, "artist") or ""),
                        path=audio,
                        duration_s=duration if audio else None,
                        valence=v_ref,
                        arousal=a_ref,
                        va_source="manifest",
                        genre=str(_pick(r, "genre") or ""),
                    )
                )
            except (ValueError, TypeError) as exc:  # TypeError: a list/object for a number
                bad.append(f"row {row_no} ({exc})")
        if bad:
            shown = _shown(bad, limit=5, sep="; ")
            hint = _scale_hint(values) if n_out == len(bad) else ""
            raise LibraryError(f"manifest {path.name} has bad rows: {shown}{hint}")
        warns = []
        if missing:
            shown = _shown(missing)
            warns.append(f"skipped {len(missing)} track(s) whose audio is missing: {shown}")
        if unreadable:
            shown = _shown(unreadable)
            warns.append(f"skipped {len(unreadable)} unreadable audio file(s): {shown}")
        if duplicates:
            shown = _shown(duplicates)
            warns.append(
                f"{len(duplicates)} row(s) list an audio file another row lists too"
                f" (never played back to back): {shown}"
            )
        if not tracks:
            raise LibraryError(
                f"manifest {path.name}: no track has a readable audio file"
                f" ({len(missing)} missing, {len(unreadable)} unreadable)"
            )
        return tracks, warns

    return _cached(
        name=path.stem,
        root=base,
        kind="manifest",
        index_path=base / f".{path.name}{INDEX_NAME}",
        files=[path, *referenced],
        cfg=cfg,
        build=build,
        cache_dir=cache_dir,
    )


def _duration(path: str) -> float | None:
    try:
        import soundfile as sf

        from ..ffmpeg import quiet_native_stderr

        with quiet_native_stderr(path):
            return float(sf.info(path).duration)
    except Exception:  # noqa: BLE001 - formats libsndfile cannot read fall back to ffprobe
        from ..ffmpeg import audio_duration

        return audio_duration(path)


# ----------------------------------------------------------------------------- DEAM
def _find_static_csvs(folder: Path) -> list[Path]:
    found: list[Path] = []
    for depth in range(0, 5):
        pattern = "/".join(["*"] * depth + [_STATIC_GLOB])
        found.extend(folder.glob(pattern))
        if found:
            break
    return sorted(found)


def _read_text(path: Path) -> str:
    """A CSV's text: UTF-8 (a BOM is dropped), else Windows-1252, else Latin-1 (never fails on
    bytes; DEAM's own metadata files are not all UTF-8)."""
    data = regular_file(path, "DEAM file", error=LibraryError).read_bytes()
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _sniff_delimiter(text: str, default: str = ",") -> str:
    """The header line's delimiter: the default unless it is absent and ';' or a tab is there."""
    header = next((ln for ln in text.splitlines() if ln.strip()), "")
    if default in header:
        return default
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else default


def _read_csv_stripped(path: Path) -> list[dict[str, str]]:
    text = _read_text(path)
    reader = csv.DictReader(
        io.StringIO(text), delimiter=_sniff_delimiter(text), skipinitialspace=True
    )
    return [
        {
            str(k).strip().strip("\ufeff").lower(): (v if isinstance(v, str) else "").strip()
            for k, v in r.items()
            if k is not None
        }
        for r in reader
    ]


# Column names DEAM's files (and re-exports of them) use for the song id and the static means.
_DEAM_ID = ("song_id", "musicid", "music_id", "songid", "song id", "id", "track_id")
_DEAM_V = ("valence_mean", "valence", "mean_valence")
_DEAM_A = ("arousal_mean", "arousal", "mean_arousal")


def _first(r: dict[str, str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in r:
            return r[n]
    return None


def _deam_id(raw: str | None) -> str | None:
    """'2', ' 2 ', '2.0' -> '2'; anything else -> None."""
    try:
        x = float(str(raw).strip())
        return str(int(x)) if x.is_integer() and x >= 0 else None
    except (ValueError, OverflowError):
        return None


def load_deam(folder: Path, cfg: Any, *, cache_dir: Path | None = None) -> Library:
    """DEAM in its published layout (static song-level CSVs with leading-space headers, 1..9)."""
    statics = _find_static_csvs(folder)
    metas = sorted(p for p in folder.rglob("metadata*.csv") if p.is_file())
    dyn_v = next(iter(sorted(folder.rglob("valence.csv"))), None)
    dyn_a = next(iter(sorted(folder.rglob("arousal.csv"))), None)
    audio_dir = next((p for p in sorted(folder.rglob("MEMD_audio")) if p.is_dir()), None)
    audio_files = (
        sorted(p for p in audio_dir.iterdir() if p.suffix.lower() in AUDIO_EXTS and p.is_file())
        if audio_dir
        else []
    )

    def build() -> tuple[list[Track], list[str]]:
        static: dict[str, tuple[float, float]] = {}
        bad: list[str] = []
        for csv_path in statics:
            try:
                rows = _read_csv_stripped(csv_path)
            except (OSError, csv.Error) as exc:
                raise LibraryError(f"cannot read DEAM {csv_path.name}: {exc}") from None
            if rows:
                for names, what in ((_DEAM_ID, "song_id"), (_DEAM_V, "valence_mean"),
                                    (_DEAM_A, "arousal_mean")):  # fmt: skip
                    if _first(rows[0], names) is None:
                        cols = ", ".join(k for k in rows[0] if k) or "none"
                        raise LibraryError(
                            f"DEAM {csv_path.name} has no {what} column (columns: {cols[:200]})"
                        )
            for n, r in enumerate(rows, start=2):
                sid = _deam_id(_first(r, _DEAM_ID))
                try:
                    if sid is None:
                        raise ValueError(f"song id {_first(r, _DEAM_ID)!r} is not a number")
                    v = float(_first(r, _DEAM_V) or "nan")
                    a = float(_first(r, _DEAM_A) or "nan")
                    if not (math.isfinite(v) and math.isfinite(a)):
                        raise ValueError("valence_mean and arousal_mean must be numbers")
                    if not (1.0 <= v <= 9.0 and 1.0 <= a <= 9.0):
                        raise ValueError("outside the 1..9 scale")
                except ValueError as exc:
                    bad.append(f"{csv_path.name} row {n} {exc}")
                    continue
                static[sid] = (
                    float(scales.deam_static_to_ref(v)),
                    float(scales.deam_static_to_ref(a)),
                )
        if bad:
            shown = _shown(bad, limit=5, sep="; ")
            raise LibraryError(f"DEAM annotations have bad rows: {shown}")
        meta: dict[str, dict[str, str]] = {}
        for m in metas:
            try:
                meta_rows = _read_csv_stripped(m)
            except (OSError, csv.Error, LibraryError):
                continue  # titles are a nicety: an unreadable metadata file is not fatal
            for r in meta_rows:
                sid = _deam_id(_first(r, _DEAM_ID))
                if sid is None:
                    continue
                meta[sid] = {
                    "artist": r.get("artist", ""),
                    "title": r.get("song title") or r.get("title") or r.get("track") or "",
                    "genre": r.get("genre", ""),
                }
        curves = _deam_curves(dyn_v, dyn_a)
        by_id: dict[str, Path] = {}
        for p in audio_files:
            sid = _deam_id(p.stem)
            if sid is not None and (sid not in by_id or p.suffix.lower() == ".mp3"):
                by_id[sid] = p  # {id}.mp3 as published; another format when that is all there is
        tracks, missing, unreadable = [], [], []
        for sid in sorted(static, key=int):
            v, a = static[sid]
            audio = ""
            duration = None
            if audio_dir is not None:
                if sid not in by_id:
                    missing.append(sid)
                    continue
                audio = str(by_id[sid].resolve())
                duration = _duration(audio)
                if not duration:
                    unreadable.append(by_id[sid].name)
                    continue
            md = meta.get(sid, {})
            tracks.append(
                Track(
                    id=f"deam-{sid}",
                    title=md.get("title") or f"DEAM {sid}",
                    artist=md.get("artist", ""),
                    path=audio,
                    duration_s=duration,
                    valence=v,
                    arousal=a,
                    va_source="annotated",
                    genre=md.get("genre", ""),
                    curve=curves.get(sid),
                )
            )
        warns = []
        if audio_dir is None:
            warns.append("DEAM folder has no MEMD_audio: tracks can be matched but not mixed")
        elif missing:
            shown = _shown(missing)
            warns.append(f"skipped {len(missing)} DEAM song(s) whose audio is missing: {shown}")
        if unreadable:
            shown = _shown(unreadable)
            warns.append(f"skipped {len(unreadable)} unreadable audio file(s): {shown}")
        if not tracks:
            raise LibraryError(
                f"DEAM folder {folder}: no song has both annotations and audio"
                f" ({len(static)} annotated, {len(missing)} missing audio,"
                f" {len(unreadable)} unreadable)"
            )
        return tracks, warns

    files = [*statics, *metas, *(p for p in (dyn_v, dyn_a) if p), *audio_files]
    return _cached(
        name=folder.name or "deam",
        root=folder,
        kind="deam",
        index_path=folder / INDEX_NAME,
        files=files,
        cfg=cfg,
        build=build,
        cache_dir=cache_dir,
    )


def _deam_curves(
    v_path: Path | None, a_path: Path | None
) -> dict[str, tuple[tuple[float, float, float], ...]]:
    """2 Hz dynamic annotations: columns song_id, sample_15000ms, sample_15500ms, ... (-1..1)."""
    if v_path is None or a_path is None:
        return {}

    def read(p: Path) -> dict[str, dict[float, float]]:
        out: dict[str, dict[float, float]] = {}
        try:
            rows = _read_csv_stripped(p)
        except (OSError, csv.Error, LibraryError):
            return out  # curves are optional: songs keep their static V/A
        for r in rows:
            sid = _deam_id(_first(r, _DEAM_ID))
            if sid is None:
                continue
            series = {}
            for k, val in r.items():
                m = re.fullmatch(r"sample_(\d+)ms", k)
                if not m:
                    continue
                try:
                    x = float(val)
                except ValueError:
                    continue  # blank cells past a song's end
                if math.isfinite(x):
                    series[int(m.group(1)) / 1000.0] = min(1.0, max(-1.0, x))
            out[sid] = series
        return out

    vv, aa = read(v_path), read(a_path)
    curves = {}
    for sid in vv.keys() & aa.keys():
        ts = sorted(vv[sid].keys() & aa[sid].keys())
        if ts:
            curves[sid] = tuple(
                (
                    t,
                    float(scales.deam_dynamic_to_ref(vv[sid][t])),
                    float(scales.deam_dynamic_to_ref(aa[sid][t])),
                )
                for t in ts
            )
    return curves


# ----------------------------------------------------------------------------- audio folder
def load_audio_folder(
    folder: Path,
    cfg: Any,
    *,
    allow_outside: bool = False,
    cache_dir: Path | None = None,
    only: Path | None = None,
) -> Library:
    """Unlabelled audio: V/A estimated from the audio (marked `va_source="estimated"`).

    `only`: one file of the folder is the whole library (`load_library("song.mp3")`)."""
    if only is not None:
        files = [folder / only.name] if (folder / only.name).is_file() else []
    else:
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTS
        )
        files = [
            p
            for p in files
            if not any(part.startswith(".") for part in p.relative_to(folder).parts)
        ]
    outside: list[str] = []  # symlinks leading out of the folder, refused like manifest paths
    if not allow_outside:
        kept = []
        for p in files:
            try:
                resolve_inside(folder, p.relative_to(folder))
                kept.append(p)
            except InputError:
                outside.append(p.name)
        files = kept
    if not files and outside:
        raise LibraryError(
            f"{folder}: its {len(outside)} audio file(s) link outside the folder "
            "(allow it explicitly to use them)"
        )
    if not files:
        raise LibraryError(f"{folder} holds no annotations, manifest or audio files")

    index_path = folder / (f".{only.name}{INDEX_NAME}" if only is not None else INDEX_NAME)
    stamps: dict[str, list[int]] = {}  # path -> [size, mtime_ns] of what was estimated

    def build() -> tuple[list[Track], list[str]]:
        from .estimate import estimate_va

        # Estimates from the last index for files unchanged since: adding one song to a big
        # folder re-estimates that song, not the whole folder.
        previous = _previous_estimates(_index_paths(index_path, cache_dir))
        tracks, bad = [], []
        for p in files:
            resolved = str(p.resolve())
            try:
                st = p.stat()
            except OSError:
                bad.append(p.name)
                continue
            stamp = [st.st_size, st.st_mtime_ns]
            tid = f"file-{hashlib.sha1(str(p.relative_to(folder)).encode()).hexdigest()[:10]}"
            old = previous.get(resolved)
            if old is not None and old[0] == stamp:
                tracks.append(dataclasses.replace(old[1], id=tid, title=p.stem, path=resolved))
                stamps[resolved] = stamp
                continue
            try:
                est = estimate_va(p)
            except LibraryError as exc:
                reason = str(exc)
                why = next((w for w in ("silent", "shorter than one second") if w in reason), "")
                bad.append(f"{p.name} ({why})" if why else p.name)
                continue
            stamps[resolved] = stamp
            tracks.append(
                Track(
                    id=tid,
                    title=p.stem,
                    artist="",
                    path=resolved,
                    duration_s=est.duration_s,
                    valence=est.valence,
                    arousal=est.arousal,
                    va_source="estimated",
                    tempo_bpm=est.tempo_bpm,
                )
            )
        warns = []
        if bad:
            shown = _shown(bad)
            warns.append(f"skipped {len(bad)} unreadable audio file(s): {shown}")
        if outside:
            warns.append(
                f"skipped {len(outside)} file(s) linking outside the folder (allow it explicitly"
                f" to use them): {', '.join(outside[:10])}"
            )
        if not tracks:
            raise LibraryError(
                f"{folder}: none of its {len(files)} audio file(s) could be used"
                f" ({', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''})"
            )
        return tracks, warns

    return _cached(
        name=(only.stem if only is not None else folder.name) or "audio",
        root=folder,
        kind="audio",
        index_path=index_path,
        files=files,
        cfg=cfg,
        build=build,
        cache_dir=cache_dir,
        payload_extra=lambda: {"stamps": stamps},
    )


def _previous_estimates(candidates: list[Path]) -> dict[str, tuple[list[int], Track]]:
    """path -> ([size, mtime_ns], estimated Track) from an earlier audio-folder index."""
    for cand in candidates:
        try:
            data = json.loads(regular_file(cand, "library index").read_text(encoding="utf-8"))
            if data.get("kind") != "audio" or not isinstance(data.get("stamps"), dict):
                continue
            out = {}
            for t in data["tracks"]:
                track = Track.from_dict(t)
                stamp = data["stamps"].get(track.path)
                if (
                    track.va_source == "estimated"
                    and isinstance(stamp, list)
                    and len(stamp) == 2
                    and all(isinstance(x, int) for x in stamp)
                    and all(math.isfinite(x) and -1 <= x <= 1 for x in (track.valence,
                                                                        track.arousal))
                ):  # fmt: skip
                    out[track.path] = (stamp, track)
            return out
        except (
            OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, InputError
        ):  # fmt: skip
            continue
    return {}


def as_array(tracks: list[Track]) -> np.ndarray:
    return np.array([[t.valence, t.arousal] for t in tracks], dtype=np.float64).reshape(-1, 2)
