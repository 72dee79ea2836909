"""The audio-folder loader: unlabelled audio files (or one file) with V/A estimated from the
audio, re-estimating only the files changed since the last index."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from ..errors import InputError, LibraryError
from ..fileio import regular_file, resolve_inside
from . import Library, Track
from .common import AUDIO_EXTS, skipped_warning
from .index import INDEX_NAME, cached_library, index_paths


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
        previous = _previous_estimates(index_paths(index_path, cache_dir))
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
            warns.append(skipped_warning("unreadable audio file(s)", bad))
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

    return cached_library(
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
