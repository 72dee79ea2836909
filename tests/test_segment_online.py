"""The online segmenter: causal, bounded delay, minimum dwell, and in agreement with the batch
segmenter on recorded input (same moods in the same order, boundaries within the latency)."""

from fractions import Fraction

import numpy as np
import pytest

from moodsic_engine.config import SegmentConfig, StabilizeConfig
from moodsic_engine.segment import segment_moods
from moodsic_engine.segment_online import OnlineSegmenter, segment_stream
from moodsic_engine.stabilize import stabilize


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


LEVELS = [[0.5, 0.5], [-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]


def recorded(seed, seconds_each=25.0, fps=1.0, sigma=0.2):
    """A stabilized recording (fused values with noise through the batch stabilizer)."""
    rng = np.random.default_rng(seed)
    n_each = int(seconds_each * fps)
    raw = np.concatenate([np.tile(lv, (n_each, 1)) for lv in LEVELS]).astype(float)
    raw = np.clip(raw + rng.normal(0, sigma, raw.shape), -1, 1)
    t = np.arange(len(raw)) / fps
    stable, _ = stabilize(t, raw, np.full_like(raw, 0.05), StabilizeConfig(), sample_fps=fps)
    return t, stable


@pytest.mark.parametrize("seed", range(6))
def test_online_agrees_with_batch_on_recorded_input(seed):
    t, va = recorded(seed)
    cfg = SegmentConfig(cut_snap_s=0)
    batch = segment_moods(
        t, va, QuadrantClusters(), [], cfg, duration_s=float(len(t)), fps=Fraction(25)
    )
    online = segment_stream(t, va, QuadrantClusters(), cfg, max_delay_s=4.0)
    assert [c.mood for c in online] == [s.mood for s in batch]
    assert online[0].first and online[0].decided_t == 3.0  # the warm-up
    for change, seg in zip(online[1:], batch[1:], strict=True):
        # Onset estimate: within 1.5 samples of the batch boundary (a midpoint between samples).
        assert abs(change.onset_t - seg.start_s) <= 1.5
        # Decision: never before the boundary, at most the stated delay (4 s + 1 sample) after.
        assert 0.0 <= change.decided_t - seg.start_s <= 5.0
    delays = [c.decided_t - s.start_s for c, s in zip(online[1:], batch[1:], strict=True)]
    assert max(delays) <= 5.0


def test_causal_a_decision_never_changes_with_the_future():
    t, va = recorded(1)
    full = segment_stream(t, va, QuadrantClusters())
    for cut in (40, 63, 90):
        part = segment_stream(t[:cut], va[:cut], QuadrantClusters())
        assert part == [c for c in full if c.decided_t < t[cut]]


@pytest.mark.parametrize("seed", range(4))
def test_noise_inside_a_steady_act_never_switches(seed):
    rng = np.random.default_rng(seed)
    n = 600  # ten minutes at 1/s, one mood, noisy and brushing the next quadrant
    raw = np.clip(np.array([0.35, 0.35]) + rng.normal(0, 0.25, (n, 2)), -1, 1)
    t = np.arange(n, dtype=float)
    va, _ = stabilize(t, raw, np.full_like(raw, 0.05), StabilizeConfig(), sample_fps=1.0)
    changes = segment_stream(t, va, QuadrantClusters())
    assert len(changes) == 1  # the first decision only


def test_minimum_dwell_holds_then_evidence_counts():
    # Mood A for 3 s, then B: B is decided only once A has lasted the dwell (10 s).
    t = np.arange(30, dtype=float)
    va = np.array([[0.5, 0.5]] * 3 + [[-0.5, -0.5]] * 27)
    changes = segment_stream(t, va, QuadrantClusters(), min_dwell_s=10.0, warmup_s=0.0)
    assert [c.mood for c in changes] == ["bright-engaging", "downcast-low-energy"]
    assert changes[1].decided_t == pytest.approx(10.0)
    assert changes[1].onset_t == pytest.approx(3.0)


def test_weak_steady_evidence_decides_by_the_backstop():
    # Just across the boundary: each sample is only slightly more likely in the new mood.
    t = np.arange(40, dtype=float)
    va = np.array([[0.3, 0.3]] * 15 + [[-0.02, 0.3]] * 25)
    seg = OnlineSegmenter(QuadrantClusters(), SegmentConfig(), min_dwell_s=8.0, warmup_s=0.0)
    out = [c for ti, vi in zip(t, va, strict=True) if (c := seg.update(ti, vi)) is not None]
    assert [c.mood for c in out] == ["bright-engaging", "tense-intense"]
    assert out[1].decided_t - 15.0 == pytest.approx(4.0)  # the backstop, not the lead


def test_a_clear_change_decides_within_three_samples():
    t = np.arange(40, dtype=float)
    va = np.array([[0.5, 0.5]] * 20 + [[-0.5, -0.5]] * 20)
    changes = segment_stream(t, va, QuadrantClusters())
    assert changes[1].decided_t - 20.0 <= 2.0
    assert changes[1].onset_t == 20.0


class SharpClusters(QuadrantClusters):
    """Tight moods (as a GMM fitted on a clean library is): one sample decides a lot."""

    def posterior(self, va):
        d2 = ((np.asarray(va)[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        logp = -d2 / (2 * 0.1**2)
        p = np.exp(logp - logp.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)


def test_passing_through_a_third_mood_between_opposites_does_not_decide_it():
    # Bright to downcast: the smoothed value crosses the tense quadrant for one sample.
    raw = np.array([[0.5, 0.6]] * 40 + [[-0.6, -0.2]] * 30, dtype=float)
    t = np.arange(len(raw), dtype=float)
    va, _ = stabilize(t, raw, np.full_like(raw, 0.05), StabilizeConfig(), sample_fps=1.0)
    quadrant = np.argmax(SharpClusters().posterior(va), axis=1)
    assert 1 in quadrant[40:43]  # the transit really visits tense-intense
    changes = segment_stream(t, va, SharpClusters(), min_dwell_s=10.0)
    assert [c.mood for c in changes] == ["bright-engaging", "downcast-low-energy"]
    assert changes[1].decided_t - 40.0 <= 3.0


def test_challenger_names_the_coming_mood_before_it_is_decided():
    seg = OnlineSegmenter(QuadrantClusters(), min_dwell_s=0.0, warmup_s=0.0)
    seg.update(0.0, [0.5, 0.5])
    assert seg.challenger() is None
    assert seg.update(1.0, [-0.1, -0.1]) is None  # a little evidence for downcast
    assert seg.challenger() == 2
