"""Loops on the bar grid (issue 16, point 2): the lead-in plays once, a body of whole bars loops,
downbeats stay evenly spaced across every wrap, and every segment's track stops on a bar line.

Tracks are generated clicks on a fractional tempo whose first downbeat is at 0.3 s or 1.7 s
(clicks before it are the lead-in's pickups); the rendered bed's onsets are measured."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click_tracks import SR, click_track

from moodsic_engine import mix
from moodsic_engine.config import MixConfig
from moodsic_engine.cue import CueSheet, Segment, TrackChoice, VideoRef


def make_cue(parts: list[tuple[float, float, str]], duration: float) -> CueSheet:
    fps = Fraction(25)
    segs = []
    for i, (start, end, path) in enumerate(parts):
        track = TrackChoice(f"t{i}", "t", "", path, 0.0, 0.0, in_s=0.0)
        segs.append(
            Segment(start, end, round(start * 25), round(end * 25), "m", "M", 0.0, 0.0, 1.0, track)
        )
    video = VideoRef("none.mp4", duration, fps, round(duration * 25), False)
    return CueSheet(video=video, engine={}, samples=(), cuts=(), segments=tuple(segs))


def onsets(x: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(times in s, peak) of each click: the first sample above `floor` after 50 ms of quiet."""
    idx = np.flatnonzero(np.abs(x) > floor)
    starts = idx[np.insert(np.diff(idx) > int(0.05 * SR), 0, True)]
    peaks = np.array([np.abs(x[s : s + int(0.004 * SR)]).max() for s in starts])
    return starts / SR, peaks


@pytest.mark.parametrize("first_s", [0.3, 1.7])
def test_loops_keep_every_beat_evenly_spaced_across_the_wraps(
    tmp_path: Path, first_s: float
) -> None:
    bpm = 117.3
    beat, bar = 60.0 / bpm, 4 * 60.0 / bpm
    # 3 whole bars (6.14 s) and 0.6 s more: a 30 s segment wraps four times.
    path = click_track(tmp_path / "clicks.wav", bpm=bpm, first_s=first_s, bars=3, extra_s=0.6)
    cue = make_cue([(0.0, 30.0, str(path))], 30.0)
    cfg = MixConfig(crossfade_s=2.0)
    placed = mix.place_tracks(cue, cfg)
    plan = mix.plan.MusicPlan.from_dict(placed.placement)
    passes = plan.for_segment(0)
    assert len(passes) >= 5  # the first pass and at least four wraps
    body = (round(first_s * SR), round((first_s + 3 * bar) * SR))
    assert passes[0].src_in == 0  # the lead-in plays, once
    assert all((p.src_in, p.src_out) == body for p in passes[1:-1])  # whole bars, downbeat on
    out = mix.render_music(placed, cfg)[:, 0]
    times, peaks = onsets(out, 0.05 * np.abs(out).max())
    loud = peaks.max()
    steady = times < passes[-1].rec_out / SR - 2.5  # before the closing fade
    gaps = np.diff(times[steady])
    wraps = [p.rec_in / SR for p in passes[1:]]
    assert sum(1 for w in wraps if w < times[steady][-1]) >= 3
    err_ms = 1000 * np.abs(gaps - beat)
    print(f"first downbeat {first_s} s: {len(gaps)} beat gaps, max error {err_ms.max():.3f} ms")
    assert err_ms.max() < 2.0  # every beat, across every wrap, one beat period apart
    # The first click is the track's first (a pickup, or the downbeat) at its own time.
    assert times[0] == pytest.approx(first_s % beat, abs=0.002)
    # Pickups (the lead-in) only before the first downbeat, as many as the track has.
    quiet = times[steady & (peaks < 0.35 * loud)]
    assert len(quiet) == int(first_s // beat)
    assert np.all(quiet < first_s)
    # Downbeats (the loudest clicks) one bar apart, every fourth beat, across the wraps.
    down = times[steady & (peaks > 0.8 * loud)]
    assert len(down) >= 12
    assert 1000 * np.abs(np.diff(down) - bar).max() < 2.0


def test_every_segment_stops_on_a_bar_line(tmp_path: Path) -> None:
    """Tracks longer than their segments (no loops): each is cut on one of its downbeats, with
    a fade that ends there, and nothing of it plays after."""
    specs = [(117.3, 0.3, 1500.0), (96.7, 1.7, 4000.0), (131.1, 0.9, 9000.0)]
    paths = [
        click_track(
            tmp_path / f"t{i}.wav", bpm=b, first_s=f, bars=16, extra_s=0.3, freq=q, decay_s=0.005
        )
        for i, (b, f, q) in enumerate(specs)
    ]
    bounds = [0.0, 9.12, 17.48, 26.0]
    cue = make_cue([(bounds[i], bounds[i + 1], str(paths[i])) for i in range(3)], 26.0)
    cfg = MixConfig(crossfade_s=2.0)
    placed = mix.place_tracks(cue, cfg)
    plan = mix.plan.MusicPlan.from_dict(placed.placement)
    out = mix.render_music(placed, cfg)[:, 0]
    from scipy.signal import butter, sosfilt

    for i, (bpm, first_s, freq) in enumerate(specs):
        pieces = plan.for_segment(i)
        assert len(pieces) == 1  # long enough: no loop
        p = pieces[0]
        bar = 4 * 60.0 / bpm
        bars_in = (p.src_out / SR - first_s) / bar
        assert abs(bars_in - round(bars_in)) * bar * SR < 1.0  # the cut is on a downbeat
        cut = p.rec_out / SR
        if i < 2:
            assert bounds[i + 1] <= cut <= bounds[i + 1] + (bounds[i + 2] - bounds[i + 1]) / 2
            assert p.fade_out == p.rec_out - (round(bounds[i + 1] * SR) - SR)  # from -1 s
        else:
            assert 26.0 - bar <= cut <= 26.0 and p.fade_out == 2 * SR
        # In the bed: this track's band is silent after its cut.
        sos = butter(4, [0.8 * freq, 1.25 * freq], "bandpass", fs=SR, output="sos")
        band = np.abs(sosfilt(sos, out))
        after = band[int((cut + 0.03) * SR) : int((cut + 2.0) * SR)]
        assert after.max(initial=0.0) < 0.01 * band.max(), i
        before = band[int((cut - p.fade_out / SR - 1.0) * SR) : int((cut - p.fade_out / SR) * SR)]
        assert before.max() > 0.3 * band.max()  # it played up to its fade
