"""Score an existing edit: analyse the used source range of every clip on the main video track,
join the V/A series in record time, stabilize and segment across the whole edit (boundaries
snap to the edit's own cuts), match tracks, and add the music tracks and mood markers to a
copy of the timeline. The input timeline is never modified.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import opentimelineio as otio

from moodsic_engine.config import Config
from moodsic_engine.cue import CueSheet
from moodsic_engine.errors import InputError
from moodsic_engine.progress import ProgressFn, no_progress
from moodsic_engine.spans import media_duration_s  # noqa: F401 - moved there; kept importable

from .timeline import (
    LAYOUTS,
    META,
    cue_to_timeline,
    fps_from_rate,
    is_moodsic_music,
    is_video,
    moodsic_meta,
    rate_of,
    to_frames,
)

if TYPE_CHECKING:
    from moodsic_engine.experts import LoadedExperts
    from moodsic_engine.library import Library


@dataclass(frozen=True)
class EditClip:
    """One clip of the main video track: where it sits in the edit and what it shows."""

    index: int  # position among the track's children
    name: str
    rec_start: int  # record frames at the edit rate
    rec_end: int
    src_start_s: float  # seconds inside the media file
    src_end_s: float
    path: Path | None  # None: no usable media reference
    problem: str = ""  # why it cannot be scored ("" when it can)
    speed: float = 1.0  # source seconds per record second (time warps); 0: a freeze frame


@dataclass(frozen=True)
class ScoreReport:
    """What scoring did: the edit's cue sheet (record time) and the clips it could not read."""

    cue: CueSheet
    clips: tuple[EditClip, ...]
    missing: tuple[EditClip, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def missing_lines(self) -> list[str]:
        return [f"{c.name} (item {c.index}): {c.problem}" for c in self.missing]


# ----------------------------------------------------------------------------- reading the edit
def _timecode(frames: int, rate: float) -> str:
    try:
        return otio.opentime.to_timecode(otio.opentime.RationalTime(frames, rate), rate)
    except Exception:  # rates without a timecode form
        return f"frame {frames}"


def _url_candidates(url: str) -> list[str]:
    """Local paths a target URL may mean, most likely first.

    A file:// URL is percent-decoded (RFC 8089), but editors also write unencoded paths
    after file:// (a literal '%', '#' or '?' in a file name); a plain path is taken as it
    is, then percent-decoded (OTIO's own bundle code decodes plain paths too).
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        raw = url[len("file:") :]
        if raw.startswith("//"):
            raw = raw[2:]
            host, slash, rest = raw.partition("/")
            raw = slash + rest if host in ("", "localhost") else "//" + raw
        path = unquote(parsed.path)
        if parsed.netloc not in ("", "localhost"):
            path = "//" + parsed.netloc + path  # a UNC share
        return [path, raw]
    if parsed.scheme and len(parsed.scheme) > 1:
        return [url]  # http:// and friends, or a plain name holding a colon
    return [url, unquote(url)]


def media_path(ref: Any, base_dir: Path | None, bundle_dir: Path | None = None) -> Path | None:
    """The local file a media reference points at (file:// URL or plain path), if any.

    Relative paths resolve against `bundle_dir` (the media of an .otiod/.otioz bundle)
    first, then `base_dir`; of several readings of the URL, the first that exists wins.
    """
    url = getattr(ref, "target_url", None)
    if not url:
        return None
    parsed = urlparse(url)
    local = parsed.scheme in ("", "file") or len(parsed.scheme) == 1
    found: list[Path] = []
    for text in dict.fromkeys(_url_candidates(url)):
        path = Path(text)
        if path.is_absolute():
            found.append(path)
            continue
        found.extend(d / path for d in (bundle_dir, base_dir) if d is not None)
        found.append(path)
    for path in found:
        if path.is_file():
            return path
    if not local:
        return None  # not a local file (and no file of that name either)
    return found[0]


@contextmanager
def bundle_media(bundle: Path | None, timeline: otio.schema.Timeline) -> Iterator[Path | None]:
    """The folder a bundle's relative media paths resolve against: an .otiod itself; for an
    .otioz, a temporary folder holding the media its clips reference, extracted for the
    duration of the block (the archive is only read)."""
    if bundle is None:
        yield None
        return
    if bundle.is_dir():
        yield bundle
        return
    import shutil
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory(prefix="moodsic-otioz-") as tmp:
        root = Path(tmp).resolve()
        try:
            with zipfile.ZipFile(bundle) as z:
                names = set(z.namelist())
                for clip in timeline.find_clips():
                    url = getattr(clip.media_reference, "target_url", None)
                    for rel in _url_candidates(url) if url else ():
                        rel = rel.removeprefix("./")
                        target = (root / rel).resolve()
                        if rel not in names or target.exists() or not target.is_relative_to(root):
                            continue
                        size = z.getinfo(rel).file_size
                        if size > shutil.disk_usage(root).free:
                            raise InputError(
                                f"{bundle.name}: no room to extract {rel} ({size} bytes) "
                                f"in {root.parent}"
                            )
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with z.open(rel) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst, 2**20)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise InputError(f"{bundle.name}: cannot extract its media ({exc})") from None
        yield root


def media_timecode_s(path: Path) -> float:
    """The start timecode a media file carries (tmcd track or tag), in seconds; 0 if none."""
    try:
        import av

        with av.open(str(path)) as container:
            tags = [dict(container.metadata)] + [dict(s.metadata) for s in container.streams]
            video = container.streams.video[0] if container.streams.video else None
            rate = float(video.average_rate) if video is not None and video.average_rate else 0.0
    except Exception:  # unreadable files are reported when they are analysed
        return 0.0
    for tag in tags:
        tc = tag.get("timecode")
        if tc and rate > 0:
            try:
                return otio.opentime.from_timecode(tc, rate).to_seconds()
            except Exception:  # a malformed tag: treat as no timecode
                return 0.0
    return 0.0


_MAX_VIDEO_FPS = 300  # a rate above this is an audio sample rate, not a picture's


def edit_rate(timeline: otio.schema.Timeline, track: otio.schema.Track) -> Fraction:
    """The edit's frame rate: its global start time's, else its first clip's. A rate that
    is no picture rate (a global start time at 48 kHz, as some tools write it) is passed over
    while another item tells a picture rate."""
    rates = []
    if timeline.global_start_time is not None and timeline.global_start_time.rate > 1:
        rates.append(timeline.global_start_time.rate)
    for item in track:
        if isinstance(item, otio.core.Item) and item.source_range is not None:
            rates.append(item.source_range.duration.rate)
        elif isinstance(item, otio.schema.Clip):
            rates.append(item.trimmed_range().duration.rate)
    for rate in rates:
        if 1 < rate <= _MAX_VIDEO_FPS:
            return fps_from_rate(rate)
    if rates:
        return fps_from_rate(rates[0])
    raise InputError(f"timeline {timeline.name!r}: cannot tell its frame rate (empty main track)")


def _shows(item: Any) -> bool:
    """An item that puts a picture on screen: not a gap, transition or disabled item."""
    return not isinstance(item, otio.schema.Gap | otio.schema.Transition) and item.enabled


def _fcpxml_spine(timeline: otio.schema.Timeline) -> otio.schema.Track | None:
    """FCPXML's primary storyline: the FCPXML reader names tracks by lane ("-1", "0", "1"),
    and connected clips below the spine (lane -1) come first in its track order."""
    tracks = [t for t in timeline.tracks if isinstance(t, otio.schema.Track)]
    names = [t.name for t in tracks]
    if len(tracks) < 2 or len(tracks) != len(timeline.tracks):
        return None
    if not all(n.lstrip("-").isdigit() for n in names):
        return None
    for track in tracks:
        if (
            track.name == "0"
            and is_video(track)
            and track.enabled
            and any(_shows(item) for item in track)
        ):
            return track
    return None


def main_video_track(timeline: otio.schema.Timeline) -> otio.schema.Track:
    """The edit's picture: the first (lowest) enabled video track that holds an enabled clip;
    an empty V1 under the cut (a track of gaps, a disabled track) is passed over. In a
    timeline read from FCPXML (tracks named by lane) it is the primary storyline, lane 0.
    Only when no video track holds a clip is the first video track returned (its emptiness
    is reported by the caller)."""
    if not isinstance(timeline, otio.schema.Timeline):
        raise InputError(f"expected an OTIO Timeline, got {type(timeline).__name__}")
    spine = _fcpxml_spine(timeline)
    if spine is not None:
        return spine
    videos: list[otio.schema.Track] = []
    for track in timeline.tracks:
        if is_video(track) and track.enabled:  # a hidden track is not the picture
            if any(_shows(item) for item in track):
                return track
            videos.append(track)
        elif isinstance(track, otio.schema.Stack):
            raise InputError(
                f"timeline {timeline.name!r}: a nested stack ({track.name or 'unnamed'}) sits "
                "among the tracks; flatten the edit first"
            )
    if videos:
        return videos[0]
    raise InputError(f"timeline {timeline.name!r} has no video track")


def edit_clips(
    timeline: otio.schema.Timeline,
    *,
    base_dir: Path | None = None,
    bundle_dir: Path | None = None,
) -> tuple[list[EditClip], Fraction, int]:
    """The main track's clips, its rate, and its duration in frames.

    Gaps stay silent gaps (no pictures to score); transitions are allowed (each clip is scored
    over its own trimmed range, the cut being the transition's centre); nested stacks or tracks
    are refused.
    """
    track = main_video_track(timeline)
    for i, item in enumerate(track):
        if isinstance(item, otio.schema.Transition):
            continue
        try:
            item.trimmed_range()
        except Exception as exc:  # neither a source range nor an available range
            raise InputError(
                f"timeline {timeline.name!r}: item {item.name or i!r} on the main track has no "
                f"usable range ({' '.join(str(exc).split())[:120]})"
            ) from None
    if not any(_shows(item) for item in track):
        raise InputError(f"timeline {timeline.name!r}: the main video track has no clips")
    fps = edit_rate(timeline, track)
    rate = rate_of(fps)
    clips: list[EditClip] = []
    for i, item in enumerate(track):
        if isinstance(item, otio.schema.Transition | otio.schema.Gap) or not item.enabled:
            continue  # a disabled clip shows nothing: a gap to the viewer
        rng = item.range_in_parent()
        start = to_frames(rng.start_time, rate)
        end = to_frames(rng.end_time_exclusive(), rate)  # ends meet the next starts
        if isinstance(item, otio.schema.Stack | otio.schema.Track):
            raise InputError(
                f"timeline {timeline.name!r}: nested {type(item).__name__.lower()} "
                f"{item.name or 'unnamed'!r} at {_timecode(start, rate)} on the main track; "
                "flatten the edit first"
            )
        if not isinstance(item, otio.schema.Clip):
            raise InputError(
                f"timeline {timeline.name!r}: unsupported item {type(item).__name__} at "
                f"{_timecode(start, rate)}"
            )
        name = item.name or f"clip {i}"
        ref = item.media_reference
        problem = ""
        path = None
        src = item.trimmed_range()
        offset = otio.opentime.RationalTime(0, src.start_time.rate)
        available = getattr(ref, "available_range", None)
        if available is not None:
            offset = available.start_time  # media with a start timecode
            if (
                offset.to_seconds() > 0
                and src.start_time < offset
                and src.start_time.to_seconds() >= 0
                and src.end_time_exclusive().to_seconds() <= available.duration.to_seconds() + 1e-9
            ):
                # a source range counted from the file's start although the reference
                # names a start timecode: it lies inside the media only read that way
                offset = otio.opentime.RationalTime(0, src.start_time.rate)
        src_start = (src.start_time - offset).to_seconds()
        speed = _speed(item)
        if speed > 0:
            src_end = src_start + src.duration.to_seconds() * speed
        else:  # a freeze frame shows one source frame for the clip's whole length
            src_end = src_start + 1.0 / src.duration.rate
        if isinstance(ref, otio.schema.GeneratorReference):
            problem = (
                f"generator reference ({ref.generator_kind or 'unknown kind'}), no media to watch"
            )
        elif ref is None or ref.is_missing_reference:
            problem = "missing media reference"
        elif isinstance(ref, otio.schema.ImageSequenceReference):
            problem = "image sequences are not supported"
        else:
            path = media_path(ref, base_dir, bundle_dir)
            if path is None:
                problem = f"not a local file: {getattr(ref, 'target_url', '')}"
            elif not path.is_file():
                problem = (
                    f"media not found (not a file): {path}"
                    if path.exists()
                    else f"media not found: {path}"
                )
            elif available is None:
                # EDL-style source times are the media's own timecode (01:00:00:00 and on)
                tc = media_timecode_s(path)
                if tc > 0 and src_start >= tc - 1e-6:
                    src_start -= tc
                    src_end -= tc
        if end > start:
            clips.append(EditClip(i, name, start, end, src_start, src_end, path, problem, speed))
    frames = to_frames(track.duration(), rate)
    for other in timeline.tracks:  # the edit runs as long as its longest track
        try:
            frames = max(frames, to_frames(other.duration(), rate))
        except Exception:  # a clip with no range on another track: that track has no length
            continue
    return clips, fps, frames


def _speed(item: Any) -> float:
    """How fast a clip plays its source: the product of its linear time warps (an EDL's M2
    speed change, a freeze frame: 0); reverse play is taken at its speed."""
    speed = 1.0
    for effect in getattr(item, "effects", ()):
        if isinstance(effect, otio.schema.LinearTimeWarp):
            speed *= abs(effect.time_scalar)
    return speed


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
