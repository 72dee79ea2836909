"""The manifest/table loader: rows of V/A (with or without audio paths) become tracks on
the reference scale; a large V/A-only table is held as columns (`TrackTable`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import scales
from ..errors import InputError, LibraryError
from ..fileio import regular_file, resolve_inside
from . import Library, Track, TrackTable
from .common import shown_names, skipped_warning, track_duration
from .index import INDEX_NAME, cached_library
from .tables import (
    ALIASES,
    Column,
    FileScale,
    axis_scales,
    parse_number,
    pick,
    read_columns,
    read_rows,
    table_header,
)


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


TABLE_ROWS = 1000  # from this many rows, a V/A table without audio is held as columns


def _fast_table(
    cols: dict[str, Column], n: int, file_scale: FileScale, row_offset: int
) -> TrackTable | None:
    """A V/A-only table as columns, vectorised; None when any row needs the row-by-row loader
    (a bad or missing value, a per-row scale, a duplicate id), which then reports it. Gives
    the same tracks the row-by-row loader would."""
    if n == 0 or any(
        alias in cols for f in ("scale", "valence_scale", "arousal_scale") for alias in ALIASES[f]
    ):
        return None
    present = {f: [a for a in ALIASES[f] if a in cols] for f in ALIASES}
    if present["path"] or len(present["valence"]) != 1 or len(present["arousal"]) != 1:
        return None
    if len(present["id"]) > 1:
        return None
    try:
        (v_lo, v_hi), (a_lo, a_hi) = axis_scales(
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
        for name in reversed(names):  # the first alias with a value wins, as in pick
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
    """A CSV/TSV/JSON/Parquet manifest or V/A table; audio paths resolve inside its folder
    unless `allow_outside`. Raises LibraryError naming the bad rows."""
    regular_file(path, "manifest", error=LibraryError)  # before the header is read
    base = path.parent
    header = table_header(path)
    rows: list[dict[str, Any]] = []
    file_scale: FileScale = {}
    if header is not None and not any(a in header for a in ALIASES["path"]):
        has_paths = False  # a V/A table: read only when its index has to be (re)built
    else:
        rows, file_scale = read_rows(path)
        if not rows:
            raise LibraryError(f"manifest {path} lists no tracks")
        has_paths = any(pick(r, "path") is not None for r in rows)
        header = None
    # The referenced files are part of the fingerprint, so adding or replacing audio rebuilds.
    referenced: list[Path] = []
    if has_paths:
        for r in rows:
            p = pick(r, "path")
            if p is None:
                continue
            try:
                referenced.append(_manifest_path(base, p, allow_outside=allow_outside))
            except InputError:
                pass  # reported with its row number by build()

    def build() -> tuple[list[Track] | TrackTable, list[str]]:
        nonlocal rows, file_scale
        if header is not None:
            table = read_columns(path)
            if table is not None and table[1] >= TABLE_ROWS:
                cols, n, scale = table
                row_offset = 1 if path.suffix.lower() in (".csv", ".tsv") else 0
                fast = _fast_table(cols, n, scale, row_offset)
                if fast is not None:
                    return fast, []
            rows, file_scale = read_rows(path)
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
                (v_lo, v_hi), (a_lo, a_hi) = axis_scales(
                    pick(r, "scale") if pick(r, "scale") is not None
                    else file_scale.get("scale"),
                    pick(r, "valence_scale") if pick(r, "valence_scale") is not None
                    else file_scale.get("valence_scale"),
                    pick(r, "arousal_scale") if pick(r, "arousal_scale") is not None
                    else file_scale.get("arousal_scale"),
                )  # fmt: skip
                v_raw, a_raw = pick(r, "valence"), pick(r, "arousal")
                if v_raw is None or a_raw is None:
                    gone = [n for n, x in (("valence", v_raw), ("arousal", a_raw)) if x is None]
                    raise ValueError(f"{' and '.join(gone)} missing or empty")
                v, a = parse_number(v_raw, "valence"), parse_number(a_raw, "arousal")
                values.extend(x for x in (v, a) if math.isfinite(x))
                if not (math.isfinite(v) and math.isfinite(a)):
                    raise ValueError("valence/arousal must be finite numbers")
                for axis, x, lo, hi in (("valence", v, v_lo, v_hi), ("arousal", a, a_lo, a_hi)):
                    if not lo - 1e-9 <= x <= hi + 1e-9:
                        n_out += 1
                        raise ValueError(f"{axis} {x:g} outside its scale {lo:g}..{hi:g}")
                v_ref = float(scales.range_to_ref(v, v_lo, v_hi))
                a_ref = float(scales.range_to_ref(a, a_lo, a_hi))
                p = pick(r, "path")
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
                    duration = track_duration(audio)
                    if not duration:
                        unreadable.append(str(p))
                        continue
                elif has_paths:
                    raise ValueError("path is empty")
                raw_id = pick(r, "id")
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
                        title=str(pick(r, "title") or (Path(audio).stem if audio else tid)),
                        artist=str(pick(r, "artist") or ""),
                        path=audio,
                        duration_s=duration if audio else None,
                        valence=v_ref,
                        arousal=a_ref,
                        va_source="manifest",
                        genre=str(pick(r, "genre") or ""),
                    )
                )
            except (ValueError, TypeError) as exc:  # TypeError: a list/object for a number
                bad.append(f"row {row_no} ({exc})")
        if bad:
            shown = shown_names(bad, limit=5, sep="; ")
            hint = _scale_hint(values) if n_out == len(bad) else ""
            raise LibraryError(f"manifest {path.name} has bad rows: {shown}{hint}")
        warns = []
        if missing:
            warns.append(skipped_warning("track(s) whose audio is missing", missing))
        if unreadable:
            warns.append(skipped_warning("unreadable audio file(s)", unreadable))
        if duplicates:
            shown = shown_names(duplicates)
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

    return cached_library(
        name=path.stem,
        root=base,
        kind="manifest",
        index_path=base / f".{path.name}{INDEX_NAME}",
        files=[path, *referenced],
        cfg=cfg,
        build=build,
        cache_dir=cache_dir,
    )
