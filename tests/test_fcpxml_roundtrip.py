"""A scored edit written as FCPXML reads back as a scored edit: Moodsic's music tracks are
recognised as Moodsic's (so scoring again replaces them), their crossfades and fades come
back as OTIO transitions at the same frames, the mood markers come back at the same frames
with the same metadata, and the cue sheet rebuilt from the FCPXML is the one scored."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest

from otio_adapter import read_edit, write_timeline
from otio_adapter.score import add_score
from otio_adapter.testing import make_cue, make_edit, write_video
from otio_adapter.timeline import (
    is_moodsic_music,
    moodsic_meta,
    rate_of,
    timeline_to_cue,
    to_frames,
    url_path,
)

sys.path.insert(0, str(Path(__file__).parent))
from editor_corpus import corpus_library, picture_items, score_with_grammar  # noqa: E402

DTD = Path(__file__).parent / "data" / "fcpxml-dtd" / "Final_Cut_Pro_XML_DTD_version_1.8.dtd"
RT = otio.opentime.RationalTime
RATES = [Fraction(25), Fraction(24000, 1001)]


def _valid(path: Path) -> None:
    res = subprocess.run(
        ["xmllint", "--noout", "--dtdvalid", str(DTD), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr


def _layout(track: otio.schema.Track, rate: float) -> list[tuple[Any, ...]]:
    """Every item of a track: kind, record start, length, and for a transition its
    in/out offsets around the cut (the cut's record frame)."""
    out: list[tuple[Any, ...]] = []
    for item in track:
        if isinstance(item, otio.schema.Transition):
            cut = to_frames(item.range_in_parent().start_time, rate) + to_frames(
                item.in_offset, rate
            )
            out.append(
                (
                    "transition",
                    cut,
                    to_frames(item.in_offset, rate),
                    to_frames(item.out_offset, rate),
                )
            )
        else:
            rng = item.range_in_parent()
            kind = "gap" if isinstance(item, otio.schema.Gap) else "clip"
            out.append((kind, to_frames(rng.start_time, rate), to_frames(rng.duration, rate)))
    return out


def _clip_markers(timeline: otio.schema.Timeline, rate: float) -> list[tuple[Any, ...]]:
    """Every clip marker at its record frame, with its name, colour and Moodsic metadata."""
    out = []
    for clip in timeline.find_clips():
        rec = to_frames(clip.range_in_parent().start_time, rate)
        src = to_frames(clip.trimmed_range().start_time, rate)
        for m in clip.markers:
            at = rec + to_frames(m.marked_range.start_time, rate) - src
            out.append((clip.parent().name, at, m.name, m.color, moodsic_meta(m)))
    return sorted(out, key=lambda x: (x[1], x[0]))


def _stack_markers(timeline: otio.schema.Timeline, rate: float) -> list[tuple[Any, ...]]:
    return [
        (to_frames(m.marked_range.start_time, rate), m.name, m.color, moodsic_meta(m))
        for m in timeline.tracks.markers
    ]


def _segments(cue: Any) -> list[dict[str, Any]]:
    """The cue's segments, each track's path as the file it names (the FCPXML names it by
    an absolute URL; the cue sheet by a path relative to its folder)."""
    out = []
    for seg in cue.segments:
        d = dataclasses.asdict(seg)
        if d["track"] is not None:
            d["track"]["path"] = str(Path(url_path(d["track"]["path"])).name)
        out.append(d)
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("fcpxrt") / "shot 1.mp4", 2, size="160x96")


@pytest.mark.parametrize("layout", ["alternate", "single"])
@pytest.mark.parametrize("fps", RATES, ids=["25", "23.976"])
def test_scored_fcpxml_reads_back_as_a_scored_edit(tmp_path, video, fps, layout) -> None:  # noqa: ANN001
    rate = rate_of(fps)
    cue = make_cue(tmp_path, fps=fps)
    frames = cue.video.frames
    edit = make_edit(
        [(video, 5, 100, 10000), (None, 0, 30), (video, 40, frames - 130, 10000)], fps=fps
    )
    edit.global_start_time = RT(3600 * round(fps) if fps.denominator > 1 else 0, rate)
    scored = add_score(edit, cue, layout=layout)
    out = write_timeline(scored, tmp_path / "scored.fcpxml")
    _valid(out)
    back = read_edit(out)

    # the same tracks, by name and kind; Moodsic's music recognised as Moodsic's
    shape = [(t.name, t.kind, is_moodsic_music(t)) for t in scored.tracks]
    assert [(t.name, t.kind, is_moodsic_music(t)) for t in back.tracks] == shape
    music = ["Music A", "Music B"] if layout == "alternate" else ["Music"]
    assert [t.name for t in back.tracks if is_moodsic_music(t)] == music
    # every item at the same frames; the crossfades and the fades from and to silence
    # as transitions at the same cut, the same frames either side of it
    for ours, theirs in zip(scored.tracks, back.tracks, strict=True):
        assert _layout(theirs, rate) == _layout(ours, rate), ours.name
    transitions = [x for t in back.tracks for x in _layout(t, rate) if x[0] == "transition"]
    half = round(fps)  # crossfade_s 2.0: a second either side of each mood change
    bounds = [s.start_frame for s in cue.segments[1:]]
    if layout == "single":
        assert transitions == [("transition", b, half, half) for b in bounds]
    else:  # the outgoing track fades out over the crossfade, the incoming one fades in
        assert sorted(transitions) == sorted(
            [("transition", b + half, 2 * half, 0) for b in bounds]
            + [("transition", b - half, 0, 2 * half) for b in bounds]
        )
    assert picture_items(back) == picture_items(scored)
    # the music clips carry their role, segment, track and URL again
    ours = [moodsic_meta(c) for t in scored.tracks for c in t.find_clips() if is_moodsic_music(t)]
    theirs = [moodsic_meta(c) for t in back.tracks for c in t.find_clips() if is_moodsic_music(t)]
    assert theirs == ours
    assert sorted(m["segment"] for m in theirs) == list(range(len(cue.segments)))
    # the mood markers: on the music clips and on the timeline, same frames, same metadata
    assert _clip_markers(back, rate) == _clip_markers(scored, rate)
    assert _stack_markers(back, rate) == _stack_markers(scored, rate)
    assert [m[0] for m in _stack_markers(back, rate)] == [s.start_frame for s in cue.segments]
    assert moodsic_meta(back) == moodsic_meta(scored)

    # the cue sheet rebuilt from the FCPXML is the one scored (tracks named by their files)
    again = timeline_to_cue(back)
    assert _segments(again) == _segments(cue)
    assert [(s.start_frame, s.end_frame, s.mood, s.track.id) for s in again.segments] == [
        (s.start_frame, s.end_frame, s.mood, s.track.id) for s in cue.segments
    ]
    for seg in again.segments:  # the same files, now by absolute path
        assert Path(seg.track.path) == (tmp_path / Path(seg.track.path).name).resolve()
    assert again.video == cue.video and again.engine == cue.engine

    # scoring the read-back edit again replaces the music: nothing doubled
    rescored = add_score(back, cue, layout=layout)
    assert [t.name for t in rescored.tracks] == [t.name for t in scored.tracks]
    assert len(rescored.tracks.markers) == len(cue.segments)
    # and writes the same document
    out2 = write_timeline(rescored, tmp_path / "rescored.fcpxml")
    assert out2.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")


@pytest.mark.slow  # ~20 s: analyses the pictures twice
def test_rescoring_a_scored_fcpxml_replaces_its_music(tmp_path) -> None:  # noqa: ANN001
    """The whole path: score an edit, write FCPXML, read it, score it again."""
    fps = Fraction(24000, 1001)
    a = write_video(tmp_path / "a.mp4", 4, size="160x90", fps="24000/1001").resolve()
    b = write_video(tmp_path / "b.mp4", 4, colour="0x081030", size="160x90", fps="24000/1001")
    edit = make_edit([(a, 0, 60, 96), (b.resolve(), 10, 60, 96)], fps=fps)
    library = corpus_library(tmp_path / "lib")
    scored, report = score_with_grammar(edit, library, base_dir=tmp_path)
    out = write_timeline(scored, tmp_path / "scored.fcpxml")
    back = read_edit(out)
    rate = rate_of(fps)
    n_music = sum(map(is_moodsic_music, scored.tracks))
    assert n_music >= 1 and sum(map(is_moodsic_music, back.tracks)) == n_music
    assert _stack_markers(back, rate) == _stack_markers(scored, rate)
    cue = timeline_to_cue(back)
    assert [(s.start_frame, s.end_frame, s.mood) for s in cue.segments] == [
        (s.start_frame, s.end_frame, s.mood) for s in report.cue.segments
    ]
    rescored, _ = score_with_grammar(back, library, base_dir=tmp_path)
    assert [t.name for t in rescored.tracks] == [t.name for t in scored.tracks]
    assert sum(map(is_moodsic_music, rescored.tracks)) == n_music
    assert len(rescored.tracks.markers) == len(report.cue.segments)
