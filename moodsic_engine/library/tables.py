"""Reading manifest and table files (CSV/TSV, JSON, Parquet) into rows or columns with
lower-cased keys, the column aliases they may use, and the V/A scales they state."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import scales
from ..errors import LibraryError
from ..fileio import regular_file

ALIASES = {
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
TRACK_KEYS = ("tracks", "songs", "items", "library", "entries", "data")
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


def axis_scales(
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


def parse_number(v: Any, axis: str) -> float:
    """A V/A cell as a float (a decimal comma too); ValueError naming `axis` otherwise."""
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


def _read_parquet(path: Path) -> Any:
    """A Parquet table as a pandas DataFrame; an id kept as the table's index is a column too."""
    import pandas as pd

    df = pd.read_parquet(path)
    if any(name is not None for name in df.index.names):
        df = df.reset_index()
    return df


def read_rows(path: Path) -> tuple[list[dict[str, Any]], FileScale]:
    """Rows of a manifest/table with lower-cased, stripped keys; plus file-level scales
    ({"scale": .., "valence_scale": .., "arousal_scale": ..}, any of them absent)."""
    suffix = path.suffix.lower()
    regular_file(path, "manifest", error=LibraryError)  # a FIFO would block the read
    try:
        if suffix == ".parquet":
            df = _read_parquet(path)
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
                for alias in ALIASES[k]
                if alias in low
            }
            key = next((k for k in TRACK_KEYS if k in low), None)
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
    return body, file_scale, "\t" if suffix == ".tsv" else sniff_delimiter(body)


def table_header(path: Path) -> list[str] | None:
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


def read_columns(path: Path) -> tuple[dict[str, Column], int, FileScale] | None:
    """A Parquet/CSV table as columns (lower-cased names), for the vectorised loader; None when
    it is not a plain rectangular table (the row-by-row reader handles and reports those)."""
    suffix = path.suffix.lower()
    cols: dict[str, Column] = {}
    try:
        if suffix == ".parquet":
            df = _read_parquet(path)
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


def pick(row: dict[str, Any], field: str) -> Any:
    """The first non-missing value of `field` under any of its column aliases, else None."""
    for alias in ALIASES[field]:
        if alias in row and not _is_missing(row[alias]):
            return row[alias]
    return None


def sniff_delimiter(text: str, default: str = ",") -> str:
    """The header line's delimiter: the default unless it is absent and ';' or a tab is there."""
    header = next((ln for ln in text.splitlines() if ln.strip()), "")
    if default in header:
        return default
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else default
