import numpy as np
import pytest

from moodsic_engine.config import FusionConfig, StabilizeConfig
from moodsic_engine.experts.base import ExpertSeries
from moodsic_engine.fusion import fuse
from moodsic_engine.stabilize import stabilize


def series(name, v, a, var_v, var_a, present=None):
    n = len(v)
    return ExpertSeries(
        name, np.arange(n) / 2.0, np.asarray(v, float), np.asarray(a, float),
        np.asarray(var_v, float), np.asarray(var_a, float),
        np.ones(n, bool) if present is None else np.asarray(present, bool),
    )  # fmt: skip


def test_fusion_matches_closed_form():
    s1 = series("scene", [0.5, -0.2, 0.1], [0.1, 0.3, -0.4], [0.04, 0.1, 0.2], [0.05, 0.05, 0.3])
    s2 = series("grammar", [-0.1, 0.4, 0.3], [0.6, -0.2, 0.2], [0.12, 0.3, 0.1], [0.08, 0.2, 0.1])
    va, var = fuse([s1, s2], FusionConfig(var_floor=1e-4))
    for i in range(3):
        for d, (x1, x2, w1, w2) in enumerate(
            [
                (s1.v[i], s2.v[i], s1.var_v[i], s2.var_v[i]),
                (s1.a[i], s2.a[i], s1.var_a[i], s2.var_a[i]),
            ]
        ):
            expected = (x1 / w1 + x2 / w2) / (1 / w1 + 1 / w2)
            assert va[i, d] == pytest.approx(expected, abs=1e-12)
            assert var[i, d] == pytest.approx(1 / (1 / w1 + 1 / w2), abs=1e-12)


def test_fusion_absent_expert_and_floor_and_nan():
    s1 = series(
        "face",
        [0.9, np.nan, 0.9],
        [0.9, 0.2, 0.9],
        [1e-9, 0.1, 0.1],
        [0.1, 0.1, 0.1],
        [True, True, False],
    )
    s2 = series("grammar", [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
    va, var = fuse([s1, s2], FusionConfig(var_floor=0.01))
    # sample 0: face variance floored to 0.01 -> weights 100 vs 10
    assert va[0, 0] == pytest.approx(0.9 * 100 / 110)
    # sample 1: NaN from the face expert means it is absent there; grammar alone
    assert va[1, 0] == pytest.approx(0.0) and var[1, 0] == pytest.approx(0.1)
    # sample 2: face absent -> grammar alone
    assert va[2, 1] == pytest.approx(0.0) and var[2, 1] == pytest.approx(0.1)
    assert np.all(np.isfinite(va))


def test_fusion_nothing_present_gives_nan_and_infinite_variance():
    s = series("face", [0.3, 0.3], [0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [False, True])
    va, var = fuse([s])
    assert np.all(np.isnan(va[0])) and np.all(np.isinf(var[0]))
    assert va[1, 0] == pytest.approx(0.3)


def test_stabilizer_follows_with_ema_when_confident():
    t = np.arange(10) / 2.0
    va = np.tile([[0.0, 0.0]], (10, 1))
    va[1:] = [0.8, -0.4]
    var = np.full((10, 2), 0.01)
    out, held = stabilize(t, va, var, StabilizeConfig(ema_alpha=0.5, gate=0.1, max_hold_s=5), 2.0)
    assert not held.any()
    assert out[1, 0] == pytest.approx(0.4) and out[2, 0] == pytest.approx(0.6)
    assert out[1, 1] == pytest.approx(-0.2)


def test_stabilizer_holds_under_gate_then_releases_after_max_hold():
    t = np.arange(30) / 2.0  # 2 Hz, 15 s
    va = np.zeros((30, 2))
    va[10:] = [0.9, 0.9]
    var = np.full((30, 2), 0.01)
    var[10:] = 0.5  # uncertain from 5 s on
    cfg = StabilizeConfig(ema_alpha=0.5, gate=0.1, max_hold_s=3.0)
    out, held = stabilize(t, va, var, cfg, 2.0)
    # held from 5.0 s until 3 s have passed (samples at 5.0 .. 7.5)
    assert held[10:16].all() and not held[:10].any()
    np.testing.assert_allclose(out[10:16], 0.0)
    # released at 8.0 s: follows the data again even though still uncertain
    assert not held[16:].any()
    assert out[16, 0] == pytest.approx(0.45) and out[-1, 0] > 0.85


def test_stabilizer_alpha_scales_with_sample_spacing():
    cfg = StabilizeConfig(ema_alpha=0.5, gate=1.0)
    t2 = np.array([0.0, 0.5, 1.0])
    t1 = np.array([0.0, 1.0])
    va2 = np.array([[0, 0], [1, 1], [1, 1.0]])
    va1 = np.array([[0, 0], [1, 1.0]])
    out2, _ = stabilize(t2, va2, np.full((3, 2), 0.01), cfg, 2.0)
    out1, _ = stabilize(t1, va1, np.full((2, 2), 0.01), cfg, 2.0)
    assert out1[-1, 0] == pytest.approx(out2[-1, 0])  # one 1 s step == two 0.5 s steps
