from fractions import Fraction

import numpy as np
import pytest

from moodsic_engine.config import SegmentConfig
from moodsic_engine.cue import CueSheet, VideoRef, check_tiling
from moodsic_engine.segment import segment_moods


class QuadrantClusters:
    """Four isotropic Gaussian moods at the quadrant centres (posterior by Bayes)."""

    centroids = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
    slugs = ("bright-engaging", "tense-intense", "downcast-low-energy", "warm-serene")
    labels = ("Bright & Engaging", "Tense & Intense", "Downcast & Low-energy", "Warm & Serene")

    def posterior(self, va):
        d2 = ((np.asarray(va)[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        logp = -d2 / (2 * 0.3**2)
        p = np.exp(logp - logp.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)


def step_sequence(levels, seconds_each, fps=2.0, sigma=0.0, seed=0):
    rng = np.random.default_rng(seed)
    n_each = int(seconds_each * fps)
    va = np.concatenate([np.tile(level, (n_each, 1)) for level in levels]).astype(float)
    va += rng.normal(0, sigma, va.shape)
    t = np.arange(len(va)) / fps
    return t, np.clip(va, -1, 1)


@pytest.mark.parametrize("seed", range(5))
def test_step_sequence_with_noise_boundaries_within_one_sample(seed):
    levels = [[0.5, 0.5], [-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]]
    t, va = step_sequence(levels, 20.0, sigma=0.15, seed=seed)
    segs = segment_moods(
        t,
        va,
        QuadrantClusters(),
        [],
        SegmentConfig(cut_snap_s=0),
        duration_s=80.0,
        fps=Fraction(25),
    )
    assert [s.mood for s in segs] == [
        "bright-engaging",
        "downcast-low-energy",
        "warm-serene",
        "tense-intense",
    ]
    for s, truth in zip(segs[1:], [20.0, 40.0, 60.0], strict=True):
        assert abs(s.start_s - truth) <= 0.5 + 1e-9  # one sample at 2 Hz
    assert segs[-1].end_s == pytest.approx(80.0)


def test_short_excursion_is_merged_and_min_length_holds():
    t, va = step_sequence([[0.5, 0.5], [-0.5, -0.5], [0.5, 0.5]], 10.0)
    va[20:26] = [-0.5, -0.5]  # keep the middle 10 s, but add a 3 s blip later
    va[40:46] = [-0.5, 0.5]
    segs = segment_moods(
        t,
        va,
        QuadrantClusters(),
        [],
        SegmentConfig(min_segment_s=8.0),
        duration_s=30.0,
        fps=Fraction(25),
    )
    assert all(s.end_s - s.start_s >= 8.0 - 0.02 for s in segs)
    assert "tense-intense" not in [s.mood for s in segs]


def test_short_clip_gets_one_segment():
    t, va = step_sequence([[0.5, 0.5], [-0.5, -0.5]], 3.0)
    segs = segment_moods(
        t, va, QuadrantClusters(), [], SegmentConfig(), duration_s=6.0, fps=Fraction(30)
    )
    assert len(segs) == 1 and segs[0].start_frame == 0 and segs[0].end_frame == 180


def test_boundary_snaps_to_nearby_cut_then_frame_grid():
    t, va = step_sequence([[0.5, 0.5], [-0.5, -0.5]], 20.0)
    segs = segment_moods(
        t,
        va,
        QuadrantClusters(),
        [19.13, 30.0],
        SegmentConfig(cut_snap_s=1.5),
        duration_s=40.0,
        fps=Fraction(25),
    )
    assert segs[1].start_frame == round(19.13 * 25)
    assert segs[1].start_s == pytest.approx(segs[1].start_frame / 25)
    far = segment_moods(
        t,
        va,
        QuadrantClusters(),
        [17.0],
        SegmentConfig(cut_snap_s=1.5),
        duration_s=40.0,
        fps=Fraction(25),
    )
    assert abs(far[1].start_s - 19.75) <= 0.5


def test_segments_tile_ten_minute_ntsc_video_without_drift():
    fps = Fraction(30000, 1001)
    frames = 17982  # 10 min at 29.97
    duration = float(frames / fps)
    rng = np.random.default_rng(1)
    levels = [[0.5, 0.5], [-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]] * 5
    t, va = step_sequence(levels, 30.0, sigma=0.05)
    t = t[t < duration]
    va = va[: len(t)]
    cuts = sorted(rng.uniform(0, duration, 40))
    segs = segment_moods(
        t, va, QuadrantClusters(), cuts, SegmentConfig(), duration_s=duration, fps=fps
    )
    video = VideoRef("x.mp4", duration, fps, frames)
    check_tiling(tuple(segs), video)  # raises on any gap/overlap or wrong end
    assert segs[-1].end_frame == frames
    for s in segs:
        # seconds are exactly the frame grid, no float accumulation
        assert s.start_s == float(Fraction(s.start_frame) / fps)
        assert s.end_s == float(Fraction(s.end_frame) / fps)
    assert segs[-1].end_s == pytest.approx(599.9994, abs=1e-4)
    assert 15 <= len(segs) <= 20


def test_cue_sheet_rejects_bad_tiling(tmp_path):
    import dataclasses

    t, va = step_sequence([[0.5, 0.5], [-0.5, -0.5]], 20.0)
    segs = segment_moods(
        t, va, QuadrantClusters(), [], SegmentConfig(), duration_s=40.0, fps=Fraction(25)
    )
    video = VideoRef("x.mp4", 40.0, Fraction(25), 1000)
    sheet = CueSheet(
        video=video,
        engine={"version": "0", "experts": [], "config": {}},
        samples=(),
        cuts=(),
        segments=tuple(segs),
    )
    path = sheet.to_json(tmp_path / "ok.json")
    assert CueSheet.from_json(path).segments == sheet.segments
    broken = dataclasses.replace(segs[1], start_frame=segs[1].start_frame + 1)
    sheet.with_segments([segs[0], broken]).to_json(tmp_path / "bad.json")
    from moodsic_engine.errors import CueSheetError

    with pytest.raises(CueSheetError, match="tile"):
        CueSheet.from_json(tmp_path / "bad.json")
