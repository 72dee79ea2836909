"""Score an existing edit: analyse the used source range of every clip on the main video track,
join the V/A series in record time, stabilize and segment across the whole edit (boundaries
snap to the edit's own cuts), match tracks, and add the music tracks and mood markers to a
copy of the timeline. The input timeline is never modified.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import opentimelineio as otio

from moodsic_engine.config import Config
from moodsic_engine.cue import CueSheet
from moodsic_engine.errors import InputError
from moodsic_engine.progress import ProgressFn, no_progress

from .edit_track import EditClip, edit_clips, edit_rate, main_video_track
from .media import bundle_media, media_path

# The edit's picture (edit_track) and its media (media) were split out of this module;
# their public names stay importable from here.
__all__ = [
    "EditClip",
    "ScoreReport",
    "add_score",
    "bundle_media",
    "edit_clips",
    "edit_rate",
    "main_video_track",
    "media_path",
    "score_timeline",
    "score_timeline_report",
]
from .timeline import (
    LAYOUTS,
    META,
    cue_to_timeline,
    is_moodsic_music,
    moodsic_meta,
)

if TYPE_CHECKING:
    from moodsic_engine.experts import LoadedExperts
    from moodsic_engine.library import Library


@dataclass(frozen=True)
class ScoreReport:
    """What scoring did: the edit's cue sheet (record time) and the clips it could not read."""

    cue: CueSheet
    clips: tuple[EditClip, ...]
    missing: tuple[EditClip, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def missing_lines(self) -> list[str]:
        return [f"{c.name} (item {c.index}): {c.problem}" for c in self.missing]


# ----------------------------------------------------------------------------- scoring
def score_timeline_report(
    timeline: otio.schema.Timeline,
    library: Library | str | os.PathLike[str] | None = None,
    config: Config | None = None,
    *,
    experts: LoadedExperts | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    strict: bool = False,
    base_dir: str | os.PathLike[str] | None = None,
    bundle: str | os.PathLike[str] | None = None,
    layout: str = "alternate",
    progress: ProgressFn = no_progress,
) -> tuple[otio.schema.Timeline, ScoreReport]:
    """Score `timeline`; return the scored copy and a report (missing media listed there).

    With `strict`, any clip that cannot be read is an error instead. Relative media paths
    resolve inside `bundle` (an .otioz/.otiod; default: the one `read_edit` read the
    timeline from), then against `base_dir`.
    """
    from .edit_io import bundle_of

    source = Path(bundle) if bundle is not None else bundle_of(timeline)
    with bundle_media(source, timeline) as bundle_dir:
        return _score_report(
            timeline,
            library,
            config,
            experts=experts,
            weights_dir=weights_dir,
            strict=strict,
            base_dir=base_dir,
            bundle_dir=bundle_dir,
            layout=layout,
            progress=progress,
        )


def _score_report(
    timeline: otio.schema.Timeline,
    library: Library | str | os.PathLike[str] | None,
    config: Config | None,
    *,
    experts: LoadedExperts | None,
    weights_dir: str | os.PathLike[str] | None,
    strict: bool,
    base_dir: str | os.PathLike[str] | None,
    bundle_dir: Path | None,
    layout: str,
    progress: ProgressFn,
) -> tuple[otio.schema.Timeline, ScoreReport]:
    from moodsic_engine.experts import load_experts
    from moodsic_engine.library import Library, load_library
    from moodsic_engine.pipeline import build_cue
    from moodsic_engine.spans import NoSpansAnalysed, SourceSpan, analyze_spans
    from moodsic_engine.weights import resolve_weights_dir

    config = config or Config()
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r} (choose {' or '.join(LAYOUTS)})")
    base = Path(base_dir) if base_dir is not None else None
    try:
        clips, fps, frames = edit_clips(timeline, base_dir=base, bundle_dir=bundle_dir)
    except (ValueError, OverflowError, ZeroDivisionError) as exc:  # rate 0, NaN or inf
        raise InputError(f"timeline {timeline.name!r}: unusable times or rates ({exc})") from None
    if not clips:
        raise InputError(f"timeline {timeline.name!r}: the main video track has no clips")
    usable = [c for c in clips if not c.problem]
    missing = [c for c in clips if c.problem]
    if strict and missing:
        raise InputError(
            f"{len(missing)} clip(s) cannot be read: "
            + "; ".join(f"{c.name}: {c.problem}" for c in missing)
        )
    if not isinstance(library, Library):
        library = load_library(
            str(library) if library is not None else "builtin", match_config=config.match
        )
    if experts is None and usable:
        experts = load_experts(config, resolve_weights_dir(weights_dir))

    sources = [c for c in usable if c.path is not None]  # every usable clip has a path
    spans = [
        SourceSpan(
            path=c.path,
            src_start_s=c.src_start_s,
            src_end_s=c.src_end_s,
            rec_start_s=float(Fraction(c.rec_start) / fps),
            rec_end_s=float(Fraction(c.rec_end) / fps),
            speed=c.speed,
            name=c.name,
        )
        for c in sources
    ]
    cuts = sorted(
        {float(Fraction(c.rec_start) / fps) for c in clips if c.rec_start > 0}
        | {float(Fraction(c.rec_end) / fps) for c in clips if c.rec_end < frames}
    )
    try:
        result = analyze_spans(
            spans,
            experts,
            config,
            duration_s=float(Fraction(frames) / fps),
            fps=fps,
            cuts=cuts,
            name=timeline.name or "edit",
            progress=progress,
            on_error="raise" if strict else "skip",
        )
    except NoSpansAnalysed as exc:
        failed = exc.failed
        result = None
    else:
        failed = result.failed
    missing += [dataclasses.replace(sources[f.index], problem=f.reason) for f in failed]
    missing.sort(key=lambda c: c.index)
    if result is None:
        raise InputError(
            f"timeline {timeline.name!r}: no clip could be scored ("
            + "; ".join(f"{c.name}: {c.problem}" for c in missing)
            + ")"
        )
    scored = [sources[i] for i in result.analysed]
    joined = result.analysis
    progress("segment", 0, 1)
    cue = build_cue(joined, library, config)
    progress("segment", 1, 1)
    summary = dict(cue.summary)
    summary["edit"] = {
        "clips": len(clips),
        "scored": [c.name for c in scored],
        "missing": [{"name": c.name, "item": c.index, "problem": c.problem} for c in missing],
    }
    cue = dataclasses.replace(cue, summary=summary)

    scored_tl = add_score(timeline, cue, layout=layout)
    notes = tuple(f"{c.name}: {c.problem}" for c in missing)
    return scored_tl, ScoreReport(cue=cue, clips=tuple(clips), missing=tuple(missing), notes=notes)


def add_score(
    timeline: otio.schema.Timeline, cue: CueSheet, *, layout: str = "alternate"
) -> otio.schema.Timeline:
    """A deep copy of `timeline` with the cue's music tracks and mood markers added.

    Music tracks and mood markers of an earlier Moodsic run are replaced, not stacked up;
    everything else in the timeline is kept as it is.
    """
    from .edit_io import BUNDLE_ATTR

    scored = copy.deepcopy(timeline)
    if hasattr(timeline, BUNDLE_ATTR):  # its media paths are still relative to that bundle
        setattr(scored, BUNDLE_ATTR, getattr(timeline, BUNDLE_ATTR))
    for i in reversed(range(len(scored.tracks))):
        if is_moodsic_music(scored.tracks[i]):
            del scored.tracks[i]
    for i in reversed(range(len(scored.tracks.markers))):
        if moodsic_meta(scored.tracks.markers[i]):
            del scored.tracks.markers[i]
    music = cue_to_timeline(cue, layout=layout)
    for track in list(music.tracks)[1:]:  # the first is the cue's own video track
        scored.tracks.append(copy.deepcopy(track))
    for marker in list(music.tracks.markers):
        scored.tracks.markers.append(copy.deepcopy(marker))
    scored.metadata[META] = copy.deepcopy(music.metadata[META])
    return scored


def score_timeline(
    timeline: otio.schema.Timeline,
    library: Library | str | os.PathLike[str] | None = None,
    config: Config | None = None,
    **kwargs: Any,
) -> otio.schema.Timeline:
    """The scored copy of `timeline` (see `score_timeline_report` for the keyword arguments)."""
    scored, _ = score_timeline_report(timeline, library, config, **kwargs)
    return scored
