"""VEATIC evaluator: rating files, timestamp alignment, metrics against hand-computed values,
the expert-output cache and the report files, on a generated mini VEATIC."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import lavfi_video
from scipy.stats import pearsonr, spearmanr

from moodsic_engine.config import Config, SampleConfig
from moodsic_engine.errors import InputError
from moodsic_engine.eval import metrics as M
from moodsic_engine.eval.veatic import (
    REFERENCE_CLIP_MEAN,
    align,
    evaluate_veatic,
    find_veatic,
    frame_times,
    read_ratings,
)
from moodsic_engine.experts import Estimates, LoadedExperts
from moodsic_engine.video import probe_video, sample_video

GRAMMAR = Config(experts=("grammar",))


class FnExpert:
    """A fake expert: V/A are functions of the sample time; present where `present(t)`."""

    def __init__(self, name, fv, fa, var=0.05, present=lambda t: np.ones(len(t), bool)):  # noqa: ANN001
        self.name, self.mode = name, "trained"
        self.fv, self.fa, self.var, self.present = fv, fa, var, present

    def predict(self, batch):  # noqa: ANN001, ANN201
        t = batch.times
        n = len(t)
        return Estimates(
            self.fv(t), self.fa(t), np.full(n, self.var), np.full(n, self.var), self.present(t)
        )

    def finalize(self, series, context):  # noqa: ANN001, ANN201, ARG002
        return series


def _mini_veatic(root: Path, specs: dict[str, tuple[str, float, np.ndarray]]) -> Path:
    """specs: id -> (rate, seconds, labels[F, 2]); rating files in alternating formats."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "rating_averaged").mkdir(parents=True, exist_ok=True)
    for i, (vid, (rate, seconds, labels)) in enumerate(specs.items()):
        lavfi_video(root / "videos" / f"{vid}.mp4", seconds=seconds, size="64x36", rate=rate)
        for j, axis in enumerate(("valence", "arousal")):
            path = root / "rating_averaged" / f"{vid}_{axis}.csv"
            if (i + j) % 2 == 0:
                path.write_text("".join(f"{x:.6f}\n" for x in labels[:, j]))
            else:
                path.write_text(
                    "frame,value\n" + "".join(f"{k},{x:.6f}\n" for k, x in enumerate(labels[:, j]))
                )
    return root


# ----------------------------------------------------------------------------- unit level
def test_read_ratings_formats(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("0.1\n-0.2\n0.3\n")
    np.testing.assert_allclose(read_ratings(p), [0.1, -0.2, 0.3])
    p.write_text("frame,valence\n0,0.5\n1,0.25\n2,-1\n")
    np.testing.assert_allclose(read_ratings(p), [0.5, 0.25, -1.0])
    p.write_text("1,0.5\n2,0.25\n3,-1\n")  # 1-based frame numbers
    np.testing.assert_allclose(read_ratings(p), [0.5, 0.25, -1.0])
    p.write_text("0,0.5\n2,0.25\n")  # a missing frame stays NaN
    r = read_ratings(p)
    assert r[0] == 0.5 and np.isnan(r[1]) and r[2] == 0.25
    p.write_text("value\n0.1\nabc\n")
    with pytest.raises(InputError, match="line 2"):
        read_ratings(p)


def test_frame_times_are_exact_rationals() -> None:
    fps = Fraction(30000, 1001)
    ft = frame_times(30001, fps)
    assert ft[30000] == 1001.0  # no drift after 30000 frames
    assert ft[1] == pytest.approx(1001 / 30000, abs=0)


def test_metric_functions_hand_computed() -> None:
    p = np.array([1.0, 2.0, 3.0])
    y = np.array([2.0, 4.0, 6.0])
    assert M.mae(p, y) == pytest.approx(2.0)
    assert M.pearson(p, y) == pytest.approx(1.0)
    assert M.spearman(p, y[::-1]) == pytest.approx(-1.0)
    # CCC: means 2, 4; variances 2/3, 8/3; covariance 4/3 -> (8/3) / (2/3 + 8/3 + 4) = 4/11
    assert M.ccc(p, y) == pytest.approx(4 / 11)
    assert M.ccc(y, y) == pytest.approx(1.0)
    assert M.pearson(np.ones(5), np.arange(5.0)) is None  # constant prediction: undefined
    m = M.va_metrics(np.array([[0.0, 0.0], [np.nan, 0.5]]), np.array([[0.5, 0.5], [0.5, 0.5]]))
    assert m["v_mae"] == pytest.approx(0.5) and m["a_mae"] == pytest.approx(0.25)
    assert m["n"] == 1 and m["avg_mae"] == pytest.approx(0.375)


def test_align_interpolates_by_time_and_respects_gaps() -> None:
    t = np.array([0.0, 0.5, 1.0, 1.5])
    v = np.array([0.0, 1.0, np.nan, 0.0])
    at = np.array([-0.1, 0.25, 0.5, 0.7, 0.8, 1.4, 2.0])
    out = align(t, v, at)
    # 0.25 lies between two present samples; 0.7 is nearest to 0.5 (present) but interpolates
    # toward the next present sample at 1.5; 0.8 is nearest to the gap at 1.0 -> NaN
    np.testing.assert_allclose(out[[0, 1, 2, 3]], [0.0, 0.5, 1.0, 0.8])
    assert np.isnan(out[4])
    np.testing.assert_allclose(out[[5, 6]], [0.1, 0.0])


# ----------------------------------------------------------------------------- alignment, real video
def test_alignment_by_timestamp_for_30000_1001_at_2fps(tmp_path: Path) -> None:
    """Frame k of a 29.97 fps video is at k*1001/30000 s; samples are at true frame timestamps."""
    fps = Fraction(30000, 1001)
    n_frames = 120  # 4.004 s
    video = lavfi_video(
        tmp_path / "v.mp4", seconds=float(n_frames / fps), size="64x36", rate="30000/1001"
    )
    assert probe_video(video).fps == fps
    times = np.concatenate([b.times for b in sample_video(video, SampleConfig(sample_fps=2.0))])
    # samples sit on the 1001/30000 frame grid, nearest to multiples of 0.5 s
    np.testing.assert_allclose(times * 30000 / 1001, np.round(times * 30000 / 1001), atol=1e-6)
    assert not np.allclose(times[1:], np.arange(1, len(times)) * 0.5)  # not exactly 0.5 s apart

    slope = 0.2
    f = lambda t: -0.4 + slope * t  # noqa: E731
    ft = np.arange(n_frames) * 1001 / 30000
    labels = np.stack([f(ft), -f(ft)], axis=1)
    root = _mini_veatic(tmp_path / "veatic", {"7": ("30000/1001", float(n_frames / fps), labels)})
    expert = FnExpert("scene", f, lambda t: -f(t))
    rep = evaluate_veatic(
        root, tmp_path / "out", GRAMMAR, experts=LoadedExperts((expert,), {}), plots=False
    )
    # Hand-computed: linear interpolation of a linear function is exact inside the sampled
    # range; outside it the edge sample is held.
    held = np.clip(ft, times[0], times[-1])
    expected = float(np.mean(np.abs(f(held) - f(ft))))
    m = rep.videos[0].metrics["scene"]
    assert m["n"] == n_frames
    assert m["v_mae"] == pytest.approx(expected, abs=1e-5)
    assert m["a_mae"] == pytest.approx(expected, abs=1e-5)
    assert expected < 0.01  # only the last few frames after the last sample differ
    # index-based alignment (sample i <-> frame i * fps / 2, rounded) would not be this close
    idx_pred = f(times)[
        np.clip(np.round(np.arange(n_frames) * 2 / float(fps)).astype(int), 0, len(times) - 1)
    ]
    assert np.mean(np.abs(idx_pred - f(ft))) > 5 * expected


# ----------------------------------------------------------------------------- end to end
def test_metrics_equal_hand_computed_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    labels = {
        # rounded as the files store them
        "1": np.round(np.clip(rng.normal(0.2, 0.3, size=(75, 2)), -1, 1), 6),  # 3 s at 25 fps
        "2": np.round(np.clip(rng.normal(-0.1, 0.2, size=(100, 2)), -1, 1), 6),  # 4 s at 25 fps
    }
    root = _mini_veatic(tmp_path / "veatic", {k: ("25", len(v) / 25, v) for k, v in labels.items()})
    c = (0.3, -0.2)
    scene = FnExpert("scene", lambda t: np.full(len(t), c[0]), lambda t: np.full(len(t), c[1]))
    face = FnExpert(
        "face", lambda t: np.full(len(t), c[0]), lambda t: np.full(len(t), c[1]),
        present=lambda t: t < 1.2,
    )  # fmt: skip
    rep = evaluate_veatic(
        root, tmp_path / "out", GRAMMAR, experts=LoadedExperts((scene, face), {}), plots=True
    )
    assert rep.outputs == ("scene", "face", "fusion", "stable")
    all_labels = np.concatenate(list(labels.values()))
    # a constant prediction: MAE = mean |label - c|, correlations undefined, CCC = 0
    for out in ("scene", "fusion", "stable"):
        m = rep.overall[out]
        assert m["v_mae"] == pytest.approx(np.mean(np.abs(all_labels[:, 0] - c[0])), abs=1e-9)
        assert m["a_mae"] == pytest.approx(np.mean(np.abs(all_labels[:, 1] - c[1])), abs=1e-9)
        assert m["rho_v"] is None and m["r_v"] is None
        assert m["ccc_v"] == pytest.approx(0.0, abs=1e-12)
        assert m["n"] == len(all_labels)
    for r in rep.videos:
        y = labels[r.id]
        assert r.metrics["scene"]["v_mae"] == pytest.approx(
            np.mean(np.abs(y[:, 0] - c[0])), abs=1e-9
        )
    # clip-mean: |mean label - c| per video, averaged over videos
    means = np.array([v.mean(axis=0) for v in labels.values()])
    assert rep.clip_mean["stable"]["v_mae"] == pytest.approx(
        np.mean(np.abs(means[:, 0] - c[0])), abs=1e-9
    )
    assert rep.clip_mean["stable"]["a_mae"] == pytest.approx(
        np.mean(np.abs(means[:, 1] - c[1])), abs=1e-9
    )
    # face: present at samples with t < 1.2 (t = 0, 0.5, 1.0 of 7 and 9 samples); counted
    # only at frames whose nearest sample has a face: frames with t <= 1.25 (ties go earlier)
    samples = [len(np.arange(0, len(v) / 25, 0.5)) for v in labels.values()]
    assert rep.face_coverage == pytest.approx(6 / sum(samples))
    assert rep.overall["face"]["n"] == 2 * 32  # frames 0..31 (t <= 1.24) in each video
    # the pooled per-frame correlations agree with scipy on a non-constant case
    f = FnExpert("scene", lambda t: 0.1 * t, lambda t: -0.1 * t)
    rep2 = evaluate_veatic(
        root, tmp_path / "out2", GRAMMAR, experts=LoadedExperts((f,), {}), plots=False
    )
    pred = np.concatenate([r.aligned["scene"] for r in rep2.videos])
    assert rep2.overall["scene"]["r_v"] == pytest.approx(
        pearsonr(pred[:, 0], all_labels[:, 0]).statistic
    )
    assert rep2.overall["scene"]["rho_a"] == pytest.approx(
        spearmanr(pred[:, 1], all_labels[:, 1]).statistic
    )

    out = tmp_path / "out"
    summary = (out / "summary.md").read_text()
    assert str(REFERENCE_CLIP_MEAN["fusion"]["v_mae"]) in summary and "0.861" in summary
    assert "## Reproduce" in summary and "numpy" in summary
    assert (out / "plots" / "1.png").stat().st_size > 1000
    per_video = (out / "videos" / "2.csv").read_text().splitlines()
    assert per_video[0].startswith("frame,t,label_v,label_a,scene_v,scene_a")
    assert len(per_video) == 1 + 100
    data = json.loads((out / "report.json").read_text())
    assert data["provenance"]["versions"]["moodsic"]
    assert data["provenance"]["data"]["annotated_frames"] == 175


def test_cache_refuses_without_running_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = np.tile(np.linspace(-0.5, 0.5, 75)[:, None], (1, 2))
    root = _mini_veatic(tmp_path / "veatic", {"1": ("25", 3.0, labels), "2": ("25", 3.0, labels)})
    first = evaluate_veatic(root, tmp_path / "out", GRAMMAR, plots=False)
    assert first.cache_hits == 0 and len(list((tmp_path / "out" / "cache").glob("*.npz"))) == 2

    import moodsic_engine.eval.veatic as veatic

    def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("models ran although the outputs are cached")

    monkeypatch.setattr(veatic, "perceive", boom)
    monkeypatch.setattr(veatic, "load_experts", boom)
    other = GRAMMAR.replace(**{"stabilize.ema_alpha": 0.05})
    second = evaluate_veatic(root, tmp_path / "out", other, plots=False)
    assert second.cache_hits == 2
    assert second.overall["grammar"] == first.overall["grammar"]
    assert second.overall["stable"]["v_mae"] != first.overall["stable"]["v_mae"]
    # another sampling rate is another cache entry: models would have to run
    with pytest.raises(AssertionError, match="models ran"):
        evaluate_veatic(root, tmp_path / "out", GRAMMAR.replace(**{"sample.sample_fps": 4.0}))


def test_layout_errors_and_selection(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a VEATIC folder"):
        find_veatic(tmp_path)
    labels = np.zeros((50, 2))
    root = _mini_veatic(tmp_path / "v", {"3": ("25", 2.0, labels), "10": ("25", 2.0, labels)})
    (root / "videos" / "11.mp4").write_bytes(b"")  # no rating files: ignored
    assert [v.id for v in find_veatic(root)] == ["3", "10"]
    assert [v.id for v in find_veatic(root, limit=1)] == ["3"]
    assert [v.id for v in find_veatic(root, videos=["10"])] == ["10"]
    with pytest.raises(InputError, match="11"):
        find_veatic(root, videos=["11"])


def test_cli_eval_veatic(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from moodsic_engine.cli import app

    labels = np.zeros((50, 2))
    root = _mini_veatic(tmp_path / "v", {"1": ("25", 2.0, labels), "2": ("25", 2.0, labels)})
    out = tmp_path / "rep"
    res = CliRunner().invoke(
        app,
        ["eval", "veatic", "--root", str(root), "-o", str(out), "--experts", "grammar",
         "--videos", "2", "--no-plots", "--progress", "none"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "VEATIC: 1 videos" in res.output and "clip-mean" in res.output
    assert (out / "videos" / "2.csv").is_file() and not (out / "videos" / "1.csv").exists()
    assert (out / "summary.md").is_file() and (out / "config.toml").is_file()
    assert Config.from_toml(out / "config.toml").experts == ("grammar",)
    bad = CliRunner().invoke(app, ["eval", "veatic", "--root", str(tmp_path), "--progress", "none"])
    assert bad.exit_code == 1
    # --progress json: nothing but JSON objects on stdout, ending with "done"
    res = CliRunner().invoke(
        app,
        ["eval", "veatic", "--root", str(root), "-o", str(out), "--experts", "grammar",
         "--no-plots", "--progress", "json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events[-1] == {
        "event": "done", "report": str(out / "summary.md"), "data": str(out / "report.json"),
    }  # fmt: skip
    assert [e["done"] for e in events[:-1]] == [0, 1, 2]
