"""Stability bench: boundary scoring, the synthetic clips (with uncertain spans), the gate, the
reference stabilizer against its spec, ours against the reference over seeds, the grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moodsic_engine.config import Config
from moodsic_engine.eval.stability import (
    GRID,
    REFERENCE,
    bench_clusters,
    boundary_scores,
    fuse_clips,
    make_clip,
    pool,
    predicted_boundaries,
    reference_stabilize,
    reference_switches,
    run_stability,
    score_setting,
)
from moodsic_engine.eval.stability_reference import ReferenceSettings
from moodsic_engine.stabilize import stabilize

TRUE = [20.0, 45.5, 90.0]


def test_perfect_segmentation_scores_f1_one() -> None:
    s = boundary_scores(TRUE, TRUE, 120.0)
    assert s["precision"] == s["recall"] == s["f1"] == 1.0
    assert s["spurious_per_min"] == 0.0 and s["mean_lag_s"] == 0.0


def test_constant_segmentation_scores_recall_zero() -> None:
    s = boundary_scores(TRUE, [], 120.0)
    assert s["recall"] == 0.0 and s["f1"] == 0.0
    assert s["precision"] == 1.0 and s["spurious_per_min"] == 0.0  # nothing wrong was claimed
    assert s["mean_lag_s"] is None


def test_tolerance_one_to_one_spurious_and_lag() -> None:
    # 20.9 hits 20 (within 1 s); 47 misses 45.5 by 1.5 s (no hit, but a +1.5 s lag);
    # 90.2 and 90.4 both near 90: one hit, one spurious; 60 is spurious
    s = boundary_scores(TRUE, [20.9, 47.0, 60.0, 90.2, 90.4], 120.0)
    assert s["hits"] == 2 and s["n_pred"] == 5
    assert s["precision"] == pytest.approx(2 / 5)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3))
    assert s["spurious_per_min"] == pytest.approx(3 / 2.0)  # 3 unmatched in 2 minutes
    # lags within +-5 s, nearest pairs first: +0.9, +1.5, +0.2
    assert s["mean_lag_s"] == pytest.approx((0.9 + 1.5 + 0.2) / 3)
    both = pool([s, boundary_scores(TRUE, TRUE, 120.0)])
    assert both["hits"] == 5 and both["recall"] == pytest.approx(5 / 6)


def test_synthetic_clip_is_what_it_claims() -> None:
    clip = make_clip(1, 120.0)
    assert len(clip.t) == 240 and clip.duration_s == 120.0
    assert [s.name for s in clip.series] == ["scene", "face", "grammar"]
    face = clip.series[1]
    assert 0.2 < face.present.mean() < 0.95  # dropouts
    assert all(
        b2 - b1 >= 12.0 for b1, b2 in zip(clip.boundaries, clip.boundaries[1:], strict=False)
    )
    labels = np.asarray(clip.labels)
    assert np.all(labels[1:] != labels[:-1])
    # outside the uncertain spans, noise around the truth is of the size claimed
    # (scene sigma 0.22, plus spikes)
    inside = np.zeros(len(clip.t), dtype=bool)
    for s in clip.spans:
        inside |= (clip.t >= s.start_s) & (clip.t < s.end_s)
    err = np.abs(clip.series[0].v - clip.true_va[:, 0])[~inside]
    assert 0.1 < np.median(err) < 0.3
    assert make_clip(1, 120.0).boundaries == clip.boundaries  # deterministic


def test_uncertain_spans_reach_past_every_gate() -> None:
    """Dark, blurred, occluded and face-lost spans: no face inside any, and the fused
    variance there goes past 0.4 (dark) while ordinary footage stays under 0.1."""
    clips = [make_clip(s, 180.0) for s in range(6)]
    kinds = {sp.kind for c in clips for sp in c.spans}
    assert kinds == {"dark", "blur", "occlusion", "faces lost"}
    fused = fuse_clips(clips, Config())
    peak: dict[str, float] = {}
    calm = []
    for f in fused:
        u = np.mean(f.var, axis=1)
        inside = np.zeros(len(u), dtype=bool)
        for sp in f.clip.spans:
            m = (f.clip.t >= sp.start_s) & (f.clip.t < sp.end_s)
            assert not f.clip.series[1].present[m].any()  # faces lost in every span
            peak[sp.kind] = max(peak.get(sp.kind, 0.0), float(u[m].max()))
            inside |= m
        calm.append(u[~inside])
    assert peak["dark"] > 0.45  # beyond the reference's gate (0.4) and every gate tried
    assert 0.2 < peak["blur"] < 0.4 and 0.2 < peak["occlusion"] < 0.4
    assert 0.05 < peak["faces lost"] < 0.2
    assert np.quantile(np.concatenate(calm), 0.99) < 0.1


def _gate(g: float) -> Config:
    return Config().replace(**{"stabilize.gate": g})


def test_the_gate_changes_results() -> None:
    clips = [make_clip(100 + k, 180.0) for k in range(3)]
    fused = fuse_clips(clips, Config())
    f = fused[0]
    held = {
        g: int(stabilize(f.clip.t, f.va, f.var, _gate(g).stabilize)[1].sum())
        for g in (0.1, 0.2, 0.4, 9.0)
    }
    assert held[0.1] > held[0.2] > held[0.4] > held[9.0] == 0
    scores = {g: score_setting(fused, _gate(g), bench_clusters()) for g in (0.1, 0.2, 0.4, 9.0)}
    # settings that differ only in the gate give different boundaries
    preds = {
        g: [predicted_boundaries(x.clip, _gate(g), bench_clusters(), (x.va, x.var)) for x in fused]
        for g in (0.2, 9.0)
    }
    assert preds[0.2] != preds[9.0]
    # holding through the uncertain spans removes spurious switches (gate 0.2 vs never)
    assert scores[0.2]["spurious_per_min"] < scores[9.0]["spurious_per_min"]
    assert scores[0.2]["f1"] > scores[9.0]["f1"]


# ----------------------------------------------------------------------------- the reference
def test_reference_ema_is_alpha_0_7_per_sample() -> None:
    n = 8
    va = np.zeros((n, 2))
    va[1:] = [1.0, -0.5]  # a step at sample 1
    out, held = reference_stabilize(va, np.full((n, 2), 0.1))
    k = np.arange(n)
    expect = np.where(k >= 1, 1.0 - 0.3**k, 0.0)
    assert np.allclose(out[:, 0], expect) and np.allclose(out[:, 1], -0.5 * expect)
    assert out[1, 0] == pytest.approx(0.7) and out[2, 0] == pytest.approx(0.91)
    assert not held.any()
    assert (REFERENCE.ema_alpha, REFERENCE.gate, REFERENCE.dwell_s) == (0.7, 0.4, 4.0)


def test_reference_holds_while_variance_above_0_4_without_limit() -> None:
    n = 400  # 200 s at 2 samples/s: far past any maximum hold
    va = np.tile([0.5, 0.5], (n, 1))
    va[1:] = [-0.8, 0.2]
    var = np.full((n, 2), 0.41)
    var[0] = 0.1
    var[-1] = [0.4, 0.4]  # mean exactly 0.4 is not above the gate: it moves
    var[200] = [0.1, 0.8]  # the mean of V and A (0.45) decides: held
    va[300] = np.nan  # nothing fused: held
    out, held = reference_stabilize(va, var)
    assert held[1:-1].all() and not held[-1] and not held[0]
    assert np.all(out[1:-1] == [0.5, 0.5])
    assert out[-1] == pytest.approx([0.5 + 0.7 * (-1.3), 0.5 + 0.7 * (-0.3)])
    # ours, on the same input, lets go after max_hold_s
    t = np.arange(n) * 0.5
    ours, ours_held = stabilize(t, va, var, Config().stabilize)
    assert not ours_held[1:-1].all() and ours[150, 0] < 0.0


def test_reference_switches_after_the_dwell_without_hysteresis() -> None:
    cl = bench_clusters()
    a, b = cl.centroids[0], cl.centroids[3]
    t = np.arange(20) * 0.5
    # mood A for 1 s, then B: the switch waits for the 4 s dwell, then is forced at once
    stable = np.array([a] * 2 + [b] * 18)
    mood, bounds = reference_switches(t, stable, cl)
    assert bounds == [94 / 25]  # between the samples at 3.5 s and 4.0 s, on the frame grid
    assert np.all(mood[:8] == 0) and np.all(mood[8:] == 3)
    # a single sample of another mood after the dwell switches (no hysteresis), and back
    # again only once the next dwell is over
    stable = np.array([a] * 10 + [b] + [a] * 15)
    mood, bounds = reference_switches(np.arange(26) * 0.5, stable, cl)
    assert bounds == [119 / 25, 219 / 25]  # 4.75 s and 8.75 s on the frame grid
    # with an 8 s dwell the lone sample at 5 s falls inside it: no switch at all
    _, slow = reference_switches(np.arange(26) * 0.5, stable, cl, ReferenceSettings(dwell_s=8.0))
    assert slow == []


# ----------------------------------------------------------------------------- ours vs reference
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pipeline_on_clean_clips_finds_every_boundary(seed: int) -> None:
    clip = make_clip(seed, 120.0, jitter=0.0, spike_rate=0.0, uncertain_per_min=0.0)
    no_snap = Config().replace(**{"segment.cut_snap_s": 0.0})
    pred = predicted_boundaries(clip, no_snap, bench_clusters())
    assert boundary_scores(clip.boundaries, pred, clip.duration_s)["f1"] == 1.0
    # snapping moves a boundary to a shot cut at most cut_snap_s away (a cut that is not the
    # mood change's may be nearer): every boundary is still found within that
    snapped = predicted_boundaries(clip, Config(), bench_clusters())
    tol = Config().segment.cut_snap_s + 0.5
    assert boundary_scores(clip.boundaries, snapped, clip.duration_s, tolerance_s=tol)["f1"] == 1
    # an infinitely sticky segmenter never switches: the constant segmentation
    sticky = Config().replace(**{"segment.switch_penalty": 1e9})
    none = predicted_boundaries(clip, sticky, bench_clusters())
    assert none == [] and boundary_scores(clip.boundaries, none, clip.duration_s)["recall"] == 0


def test_our_defaults_beat_the_reference_on_both_measures_over_seeds() -> None:
    rep = run_stability(clips=2, seconds=150.0, seeds=4, grid=False)
    assert len(rep.per_seed) == 4 and rep.seeds_won == 4
    assert rep.ours["f1"] > rep.reference["f1"] + 0.3
    assert rep.ours["spurious_per_min"] < 0.25 * rep.reference["spurious_per_min"]
    assert rep.uncertainty["max_var"] > 0.4
    margin = next(line for line in rep.lines if line.startswith("ours vs reference"))
    assert "better on both in 4/4 seeds" in margin
    assert f"{rep.ours['f1'] - rep.reference['f1']:+.3f}" in margin


def test_noise_costs_accuracy() -> None:
    clean = run_stability(clips=2, seconds=90.0, seeds=1, jitter=0.0, grid=False)
    noisy = run_stability(clips=2, seconds=90.0, seeds=1, jitter=1.5, grid=False)
    assert clean.ours["f1"] > noisy.ours["f1"]
    assert noisy.reference["spurious_per_min"] > clean.reference["spurious_per_min"]


def test_grid_search_writes_best_settings_plot_and_report(tmp_path: Path) -> None:
    rep = run_stability(clips=1, seconds=60.0, seeds=1, grid=True, out_dir=tmp_path)
    assert len(rep.grid) == int(np.prod([len(v) for v in GRID.values()]))
    assert rep.best is not None and rep.best["f1"] == max(r["f1"] for r in rep.grid)
    best = Config.from_toml(rep.best_toml)
    for key, value in rep.best["setting"].items():
        section, name = key.split(".")
        assert getattr(getattr(best, section), name) == value
    assert rep.plot is not None and rep.plot.stat().st_size > 5000
    md = (tmp_path / "stability.md").read_text()
    assert "| ours |" in md and "| reference |" in md and "| best of grid |" in md
    assert "## Reproduce" in md and "| seed |" in md
    data = json.loads((tmp_path / "stability.json").read_text())
    assert data["reference_setting"] == {"ema_alpha": 0.7, "gate": 0.4, "dwell_s": 4.0}
    assert len(data["grid"]) == len(rep.grid) and len(data["per_seed"]) == 1


def test_cli_bench_stability(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from moodsic_engine.cli import app

    res = CliRunner().invoke(
        app,
        ["bench", "stability", "-o", str(tmp_path), "--clips", "1", "--seconds", "60", "--no-grid"],
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(line.startswith("ours ") and "F1" in line for line in lines)
    assert any(line.startswith("reference ") and "spurious/min" in line for line in lines)
    assert any(line.startswith("ours vs reference: F1") for line in lines)
    assert (tmp_path / "stability.md").is_file()
