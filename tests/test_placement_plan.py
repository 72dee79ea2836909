"""One placement plan, three renderers (issue 16, point 3): the mixdown, the OTIO export and the
Blender add-on's placement all play the plan `place_tracks` stores in the cue sheet.

The same cue (a looping track with a lead-in, a long track cut on a bar line, the looping track
again) is placed three ways and each piece list is compared with the plan:
- mixdown: the plan it makes from the decoded tracks equals the stored one sample for sample,
  and the clicks it renders sit where the plan puts them (within a millisecond);
- OTIO (alternate layout): record in/out = the plan's samples at the nearest frame at the
  video rate; source in = the nearest frame (the entering pass: within one frame, as it is
  anchored on the frame heard at the mood change);
- Blender (bpy-free placement, movie strip at frame 100, scene rate = video rate): frames
  counted from each segment's start frame, nearest frame, exact.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from blender_support import addon_module
from click_tracks import SR, click_track

from moodsic_engine import mix
from moodsic_engine.config import MixConfig
from moodsic_engine.cue import CueSheet, Segment, TrackChoice, VideoRef
from otio_adapter.timeline import cue_to_timeline

P = addon_module("placement")
FPS = Fraction(30000, 1001)
BOUNDS_S = (0.0, 11.0, 19.5, 32.0)


def frame(samples: int) -> int:
    return int(round(Fraction(samples) * FPS / SR))


@pytest.fixture(scope="module")
def placed(tmp_path_factory: pytest.TempPathFactory) -> CueSheet:
    folder = tmp_path_factory.mktemp("plan")
    loop = click_track(folder / "loop.wav", bpm=117.3, first_s=1.7, bars=2, extra_s=0.4)
    long = click_track(folder / "long.wav", bpm=96.7, first_s=0.3, bars=12, extra_s=0.5)
    tracks = [(loop, 0.0), (long, 4.1), (loop, 0.0)]
    frames = [int(round(Fraction(b) * FPS)) for b in BOUNDS_S]
    segs = []
    for i, (path, in_s) in enumerate(tracks):
        track = TrackChoice(f"t{i}", f"T{i}", "", str(path), 0.0, 0.0, in_s=in_s)
        start_s, end_s = float(Fraction(frames[i]) / FPS), float(Fraction(frames[i + 1]) / FPS)
        segs.append(
            Segment(start_s, end_s, frames[i], frames[i + 1], "m", "M", 0.0, 0.0, 1.0, track)
        )
    video = VideoRef(str(folder / "clip.mp4"), segs[-1].end_s, FPS, frames[-1], False)
    cue = CueSheet(
        video=video,
        engine={"version": "0", "experts": [], "config": {"mix": {"crossfade_s": 2.0}}},
        samples=(),
        cuts=(),
        segments=tuple(segs),
    )
    return mix.place_tracks(cue, MixConfig(crossfade_s=2.0))


def test_the_cue_sheet_carries_the_plan_and_it_round_trips(
    placed: CueSheet, tmp_path: Path
) -> None:
    plan = mix.plan.MusicPlan.from_dict(placed.placement)
    assert plan.rate == SR and plan.crossfade_s == 2.0
    assert [len(plan.for_segment(i)) for i in range(3)] == [3, 1, 3]  # loops, a cut, loops
    path = placed.to_json(tmp_path / "clip.moodsic.json")
    back = CueSheet.from_json(path)
    assert mix.plan.stored_plan(back, rate=SR, crossfade_s=2.0) == plan
    # Another crossfade, or other segments: the stored plan no longer applies.
    assert mix.plan.stored_plan(back, crossfade_s=1.0) is None
    assert mix.plan.stored_plan(back.with_segments(back.segments)) is None


def test_mixdown_plays_the_stored_plan(placed: CueSheet) -> None:
    cfg = MixConfig(crossfade_s=2.0)
    stored = mix.plan.MusicPlan.from_dict(placed.placement)
    assert mix.render.mixdown_plan(placed, cfg) == stored  # sample for sample
    out = mix.render_music(placed, cfg)[:, 0]
    # Every downbeat click of each piece (away from its fades) lands where the plan says.
    errors = []
    for i, (bpm, first) in enumerate([(117.3, 1.7), (96.7, 0.3), (117.3, 1.7)]):
        bar = 4 * 60.0 / bpm * SR
        for p in stored.for_segment(i):
            k = max(0, int(np.ceil((p.src_in - first * SR) / bar)))
            while (src := first * SR + k * bar) < p.src_out:
                at = p.rec_in + (src - p.src_in)
                quiet = p.rec_in + p.fade_in + 0.05 * SR <= at <= p.rec_out - p.fade_out - 0.05 * SR
                if quiet:
                    win = out[int(at) - 480 : int(at) + 480]
                    onset = np.flatnonzero(np.abs(win) > 0.1 * np.abs(win).max())[0]
                    errors.append(abs(int(at) - 480 + onset - at) / SR)
                k += 1
    assert len(errors) >= 6
    print(f"mixdown: {len(errors)} downbeats, max offset from the plan {1000 * max(errors):.3f} ms")
    assert max(errors) < 0.001


def _plan_frames(plan: mix.plan.MusicPlan) -> list[tuple[int, int, int, int, int]]:
    return [
        (p.segment, p.loop, frame(p.rec_in), frame(p.rec_out), frame(p.src_in)) for p in plan.pieces
    ]


def test_otio_export_shows_the_plan_frame_rounded(placed: CueSheet) -> None:
    plan = mix.plan.MusicPlan.from_dict(placed.placement)
    rate = float(FPS)
    timeline = cue_to_timeline(placed, layout="alternate")
    got = []
    for track in timeline.tracks:
        if track.kind != otio.schema.TrackKind.Audio:
            continue
        for clip in track.find_clips(shallow_search=True):
            meta = clip.metadata["moodsic"]
            rng = clip.range_in_parent()
            rec_in = round(rng.start_time.value_rescaled_to(rate))
            rec_out = rec_in + round(rng.duration.value_rescaled_to(rate))
            src = round(clip.source_range.start_time.value_rescaled_to(rate))
            got.append((meta["segment"], meta.get("loop", 0), rec_in, rec_out, src))
            assert meta["plan"]["gain_db"] == plan.for_segment(meta["segment"])[0].gain_db
    got.sort()
    want = _plan_frames(plan)
    assert [g[:4] for g in got] == [w[:4] for w in want]  # record in/out: exact
    assert all(abs(g[4] - w[4]) <= (1 if w[1] == 0 else 0) for g, w in zip(got, want, strict=True))
    # Fades: each boundary's fade-in and the outgoing fade-out, as the plan has them.
    fades = sorted(
        (round(t.in_offset.value), round(t.out_offset.value))
        for track in timeline.tracks
        for t in track
        if isinstance(t, otio.schema.Transition)
    )
    first_in = [p for p in plan.pieces if p.loop == 0 and p.segment > 0]
    last_out = [plan.for_segment(i)[-1] for i in range(2)]
    want_fades = sorted(
        [(0, frame(p.rec_in + p.fade_in) - frame(p.rec_in)) for p in first_in]
        + [(frame(p.rec_out) - frame(p.rec_out - p.fade_out), 0) for p in last_out]
        + [
            (
                frame(plan.pieces[-1].rec_out)
                - frame(plan.pieces[-1].rec_out - plan.pieces[-1].fade_out),
                0,
            )
        ]
    )
    assert fades == want_fades


def test_blender_strips_play_the_plan(placed: CueSheet) -> None:
    plan = mix.plan.MusicPlan.from_dict(placed.placement)
    cue = json.loads(placed.to_json_text())  # the file the add-on reads (absolute paths here)
    start = 100
    movie = P.MovieFacts(
        "clip", placed.video.path, start, start, start + placed.video.frames, 1, placed.video.frames
    )
    scene = P.SceneFacts(fps=FPS, frame_start=1, frame_end=2000, user_channels=frozenset({1}))
    ops = P.plan([P.Job(movie, cue, "c")], scene, P.PlaceOptions(crossfade_s=2.0))
    got = [(s.tags["segment"], s.tags["piece"], s.start, s.end, s.in_frame) for s in ops.sounds]

    def at(seg: int, samples: int) -> int:  # from the segment's start frame, nearest frame
        s0 = round(placed.segments[seg].start_s * SR)
        return start + placed.segments[seg].start_frame + round(Fraction(samples - s0) * FPS / SR)

    want = [
        (p.segment, p.loop, at(p.segment, p.rec_in), at(p.segment, p.rec_out), frame(p.src_in))
        for p in plan.pieces
    ]
    assert got == want
    for s in ops.sounds:
        gain = plan.for_segment(s.tags["segment"])[0].gain_db
        assert s.volume == pytest.approx(min(8.0, 10 ** (gain / 20)), rel=1e-5)
    # A plan made for another crossfade is not used: the add-on places the cue its old way.
    other = P.plan([P.Job(movie, cue, "c")], scene, P.PlaceOptions(crossfade_s=1.0))
    assert [s.tags["segment"] for s in other.sounds] == [0, 1, 2]
    # The three renderers side by side: the same pieces, the same record frames.
    otio_pieces = sorted(
        (c.metadata["moodsic"]["segment"], c.metadata["moodsic"].get("loop", 0))
        for c in cue_to_timeline(placed).find_clips()
        if c.metadata["moodsic"].get("role") == "music"
    )
    assert otio_pieces == [(p.segment, p.loop) for p in plan.pieces] == [g[:2] for g in got]
