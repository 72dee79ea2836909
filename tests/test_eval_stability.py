"""Stability bench: boundary scoring, the synthetic clips, fuse -> stabilize -> segment, the grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moodsic_engine.config import Config
from moodsic_engine.eval.stability import (
    GRID,
    bench_clusters,
    boundary_scores,
    make_clip,
    naive_config,
    pool,
    predicted_boundaries,
    run_stability,
)

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
    # noise around the truth is of the size claimed (scene sigma 0.22, plus spikes)
    err = np.abs(clip.series[0].v - clip.true_va[:, 0])
    assert 0.1 < np.median(err) < 0.3
    assert make_clip(1, 120.0).boundaries == clip.boundaries  # deterministic


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pipeline_on_clean_clips_finds_every_boundary(seed: int) -> None:
    clip = make_clip(seed, 120.0, jitter=0.0, spike_rate=0.0)
    pred = predicted_boundaries(clip, Config(), bench_clusters())
    assert boundary_scores(clip.boundaries, pred, clip.duration_s)["f1"] == 1.0
    # an infinitely sticky segmenter never switches: the constant segmentation
    sticky = Config().replace(**{"segment.switch_penalty": 1e9})
    none = predicted_boundaries(clip, sticky, bench_clusters())
    assert none == [] and boundary_scores(clip.boundaries, none, clip.duration_s)["recall"] == 0


def test_noise_costs_accuracy_and_naive_setting_is_the_documented_one() -> None:
    n = naive_config()
    assert (n.stabilize.ema_alpha, n.stabilize.gate, n.segment.switch_penalty) == (0.7, 0.4, 0.0)
    clean = run_stability(clips=2, seconds=90.0, jitter=0.0, grid=False)
    noisy = run_stability(clips=2, seconds=90.0, jitter=1.5, grid=False)
    assert clean.ours["f1"] > noisy.ours["f1"]
    assert noisy.naive["spurious_per_min"] > clean.naive["spurious_per_min"]


def test_grid_search_writes_best_settings_plot_and_report(tmp_path: Path) -> None:
    rep = run_stability(clips=1, seconds=60.0, grid=True, out_dir=tmp_path)
    assert len(rep.grid) == int(np.prod([len(v) for v in GRID.values()]))
    assert rep.best is not None and rep.best["f1"] == max(r["f1"] for r in rep.grid)
    best = Config.from_toml(rep.best_toml)
    for key, value in rep.best["setting"].items():
        section, name = key.split(".")
        assert getattr(getattr(best, section), name) == value
    assert rep.plot is not None and rep.plot.stat().st_size > 5000
    md = (tmp_path / "stability.md").read_text()
    assert "| ours |" in md and "| naive |" in md and "| best of grid |" in md
    assert "## Reproduce" in md
    data = json.loads((tmp_path / "stability.json").read_text())
    assert data["naive_setting"]["segment.switch_penalty"] == 0.0
    assert len(data["grid"]) == len(rep.grid)


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
    assert any(line.startswith("naive ") and "spurious/min" in line for line in lines)
    assert (tmp_path / "stability.md").is_file()
