"""The online stabilizer is the batch stabilizer, one sample at a time (exactly)."""

import numpy as np
import pytest

from moodsic_engine.config import StabilizeConfig
from moodsic_engine.stabilize import stabilize
from moodsic_engine.stabilize_online import OnlineStabilizer


def _recorded(seed: int, n: int = 400):
    """A fused series with everything the stabilizer reacts to: noise, confident and
    uncertain stretches longer than the hold, NaN gaps, a NaN start, irregular spacing."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(0.3, 1.7, n))
    va = np.clip(np.repeat(rng.uniform(-0.8, 0.8, (n // 40, 2)), 40, axis=0), -1, 1)
    va = np.clip(va + rng.normal(0, 0.1, va.shape), -1, 1)
    var = np.full((n, 2), 0.05)
    for s in rng.integers(0, n - 20, 8):  # uncertain stretches of 3..20 samples
        var[s : s + rng.integers(3, 20)] = 0.6
    for s in rng.integers(0, n - 5, 6):
        va[s : s + rng.integers(1, 5)] = np.nan
    va[:3] = np.nan  # nothing fused at the start
    var[rng.integers(0, n, 10), 1] = np.inf
    return t, va, var


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fps", [1.0, 2.0])
def test_online_equals_batch_exactly(seed, fps):
    t, va, var = _recorded(seed)
    cfg = StabilizeConfig(ema_alpha=0.6, gate=0.2, max_hold_s=6.0)
    batch, held = stabilize(t, va, var, cfg, sample_fps=fps)
    online = OnlineStabilizer(cfg, sample_fps=fps)
    out = [online.update(ti, vi, si) for ti, vi, si in zip(t, va, var, strict=True)]
    got = np.array([[o.valence, o.arousal] for o in out])
    assert np.array_equal(got, batch)  # bit for bit
    assert [o.held for o in out] == held.tolist()
    assert held.sum() > 20  # the series really exercised the hold


def test_step_reaches_84_percent_in_two_samples_at_one_per_second():
    st = OnlineStabilizer(StabilizeConfig(ema_alpha=0.6), sample_fps=1.0)
    for i in range(5):
        st.update(float(i), [-0.5, -0.5], [0.05, 0.05])
    a = st.update(5.0, [0.5, 0.5], [0.05, 0.05])
    b = st.update(6.0, [0.5, 0.5], [0.05, 0.05])
    assert a.valence == pytest.approx(-0.5 + 0.6 * 1.0)
    assert b.valence == pytest.approx(0.5 - 0.16 * 1.0)  # 84 % of the step after 2 samples


def test_holds_while_uncertain_then_follows_after_max_hold():
    st = OnlineStabilizer(StabilizeConfig(ema_alpha=0.6, gate=0.2, max_hold_s=3.0), 1.0)
    st.update(0.0, [0.4, 0.4], [0.05, 0.05])
    outs = [st.update(float(i), [-0.9, -0.9], [0.9, 0.9]) for i in range(1, 7)]
    assert [o.held for o in outs] == [True, True, True, False, False, False]
    assert outs[2].valence == pytest.approx(0.4)
    assert outs[3].valence < 0.0


def test_state_stays_constant_size():
    st = OnlineStabilizer(sample_fps=1.0)
    before = sorted(vars(st))
    for i in range(5000):
        st.update(float(i), [np.sin(i / 50), 0.0], [0.05, 0.05])
    assert sorted(vars(st)) == before
    assert all(np.size(v) <= 2 for v in vars(st).values() if isinstance(v, np.ndarray))
