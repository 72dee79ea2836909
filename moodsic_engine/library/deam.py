"""The DEAM loader: the dataset in its published layout (static song-level CSVs with
leading-space headers on the 1..9 scale, optional metadata, 2 Hz dynamic curves, MEMD_audio)."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any

from .. import scales
from ..errors import LibraryError
from ..fileio import regular_file
from . import Library, Track
from .common import AUDIO_EXTS, shown_names, skipped_warning, track_duration
from .index import INDEX_NAME, cached_library
from .tables import sniff_delimiter

STATIC_GLOB = "static_annotations_averaged_songs_*.csv"


def find_static_csvs(folder: Path) -> list[Path]:
    """DEAM's static annotation CSVs at the shallowest depth (up to 4 folders down) they are."""
    found: list[Path] = []
    for depth in range(0, 5):
        pattern = "/".join(["*"] * depth + [STATIC_GLOB])
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


def _read_csv_stripped(path: Path) -> list[dict[str, str]]:
    text = _read_text(path)
    reader = csv.DictReader(
        io.StringIO(text), delimiter=sniff_delimiter(text), skipinitialspace=True
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
    statics = find_static_csvs(folder)
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
            shown = shown_names(bad, limit=5, sep="; ")
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
                duration = track_duration(audio)
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
            warns.append(skipped_warning("DEAM song(s) whose audio is missing", missing))
        if unreadable:
            warns.append(skipped_warning("unreadable audio file(s)", unreadable))
        if not tracks:
            raise LibraryError(
                f"DEAM folder {folder}: no song has both annotations and audio"
                f" ({len(static)} annotated, {len(missing)} missing audio,"
                f" {len(unreadable)} unreadable)"
            )
        return tracks, warns

    files = [*statics, *metas, *(p for p in (dyn_v, dyn_a) if p), *audio_files]
    return cached_library(
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
