"""Calibrated uncertainty: synthetic experts with known noise (coverage at nominal rates,
fusion no worse than the best expert, a confidently wrong expert down-weighted), the
zero-shot scene variance from prompt-softmax entropy, calibration files, and the path from
`eval veatic` / `eval findingemo` to `score --calibration`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moodsic_engine.calibration import (
    AxisMap,
    Calibration,
    ExpertCalibration,
    builtin_calibration,
    calibration_for,
    coverage,
    entropy_variance,
    fit_axis,
    fit_expert,
    load_calibration,
    save_calibration,
)
from moodsic_engine.config import Config
from moodsic_engine.errors import InputError
from moodsic_engine.experts.base import ExpertSeries
from moodsic_engine.fusion import fuse, fusion_weights

N = 4000  # samples per half: coverage within +-5% needs a few thousand


def _experts(n: int, seed: int) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Truth [n, 2] and, per expert, (prediction, raw spread) [n, 2] with known noise:
    - honest: error variance 3 x its raw spread (informative, mis-scaled);
    - curved: error variance 0.01 + 2 raw^1.5 (informative, non-linear);
    - overconfident: raw spread 0.005-0.01 (the smallest), error variance 0.25 always."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-0.8, 0.8, (n, 2))
    raw = {
        "honest": rng.uniform(0.005, 0.05, (n, 2)),
        "curved": rng.uniform(0.01, 0.3, (n, 2)),
        "overconfident": rng.uniform(0.005, 0.01, (n, 2)),
    }
    true_var = {
        "honest": 3.0 * raw["honest"],
        "curved": 0.01 + 2.0 * raw["curved"] ** 1.5,
        "overconfident": np.full((n, 2), 0.25),
    }
    out = {k: (truth + rng.normal(0.0, np.sqrt(true_var[k])), raw[k]) for k in raw}
    return truth, out


def _series(name: str, pred: np.ndarray, var: np.ndarray) -> ExpertSeries:
    n = len(pred)
    return ExpertSeries(
        name, np.arange(n) * 0.5, pred[:, 0], pred[:, 1], var[:, 0], var[:, 1],
        np.ones(n, bool), mode="trained",
    )  # fmt: skip


@pytest.fixture(scope="module")
def fitted() -> tuple[Calibration, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    train_truth, train = _experts(N, seed=1)
    cal = Calibration(
        tuple(fit_expert(k, "trained", raw, pred, train_truth) for k, (pred, raw) in train.items()),
        "synthetic",
    )
    test_truth, test = _experts(N, seed=2)
    return cal, test_truth, test


def test_calibrated_variances_cover_the_truth_at_nominal_rates(fitted) -> None:  # noqa: ANN001
    cal, truth, test = fitted
    for name, (pred, raw) in test.items():
        entry = cal.find(name, "trained")
        assert entry is not None and entry.v.kind == "isotonic"
        var_v, var_a = entry.apply(raw[:, 0], raw[:, 1])
        c = coverage(var_v, var_a, pred, truth)
        raw_c = coverage(raw[:, 0], raw[:, 1], pred, truth)
        print(name, {k: round(v, 3) for k, v in c.items()}, "raw", raw_c)
        for ax in "va":
            assert c[f"within_1sd_{ax}"] == pytest.approx(0.6827, abs=0.05), (name, c)
            assert c[f"within_2sd_{ax}"] == pytest.approx(0.9545, abs=0.03), (name, c)
        # calibration makes every expert's variances more likely under its errors (NLL), and
        # fixes the two whose raw spreads are plainly wrong in scale
        assert c["nll_v"] < raw_c["nll_v"] and c["nll_a"] < raw_c["nll_a"]
        if name != "curved":
            assert abs(raw_c["within_1sd_v"] - 0.6827) > 0.15


def test_fused_error_no_worse_than_best_expert_and_overconfident_downweighted(fitted) -> None:  # noqa: ANN001
    cal, truth, test = fitted
    raw_series = [_series(k, pred, raw) for k, (pred, raw) in test.items()]
    cal_series = [cal.apply(s) for s in raw_series]
    mse = {k: float(np.mean((pred - truth) ** 2)) for k, (pred, _) in test.items()}
    fused_raw, _ = fuse(raw_series)
    fused_cal, fused_var = fuse(cal_series)
    mse_raw = float(np.mean((fused_raw - truth) ** 2))
    mse_cal = float(np.mean((fused_cal - truth) ** 2))
    best = min(mse.values())
    print("expert MSE", {k: round(v, 4) for k, v in mse.items()})
    print(
        f"fused MSE: raw variances {mse_raw:.4f}, calibrated {mse_cal:.4f}, best expert {best:.4f}"
    )
    assert mse_cal <= best
    assert mse_raw > best  # with raw spreads, the over-confident expert drags fusion down
    # the fused variance is itself calibrated: ~68% of fused errors within one sd
    within = np.mean(np.abs(fused_cal - truth) <= np.sqrt(fused_var))
    assert within == pytest.approx(0.6827, abs=0.05)

    w_raw = fusion_weights(raw_series)["overconfident"].mean()
    w_cal = fusion_weights(cal_series)["overconfident"].mean()
    print(f"over-confident expert's fusion weight: raw {w_raw:.3f}, calibrated {w_cal:.3f} "
          f"(falls {w_raw / w_cal:.1f}x)")  # fmt: skip
    assert w_raw > 0.5  # before: the smallest spread, so the largest weight
    assert w_raw / w_cal > 3.0  # measured: 0.650 -> 0.148, 4.4x


def test_fits_are_monotone_with_a_floor_and_small_data_gets_a_scale() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.01, 0.1, 2000)
    sq = rng.normal(0, np.sqrt(2 * raw)) ** 2
    m = fit_axis(raw, sq)
    grid = np.geomspace(1e-4, 1.0, 200)
    out = m(grid)
    assert np.all(np.diff(out) >= -1e-15) and out.min() >= m.floor
    assert m(np.array([0.05]))[0] == pytest.approx(0.1, rel=0.2)  # true variance 2 x 0.05
    assert m(np.array([np.nan]))[0] == np.inf  # a missing spread is no certainty
    small = fit_axis(raw[:10], sq[:10])
    assert small.kind == "scale"
    assert np.mean(small(raw[:10])) == pytest.approx(np.mean(sq[:10]))
    const = fit_axis(np.full(500, 0.12), np.full(500, 0.3))  # a constant spread (film grammar)
    assert const.kind == "scale" and const(np.array([0.12]))[0] == pytest.approx(0.3)


def test_calibration_files_round_trip_and_bad_files_are_one_line(tmp_path: Path) -> None:
    truth, data = _experts(300, seed=5)
    pred, raw = data["curved"]
    cal = Calibration(
        (
            fit_expert("face", "trained", raw, pred, truth, source="test"),
            ExpertCalibration("grammar", "rules", AxisMap("scale", 2.5, 0.01), AxisMap()),
        ),
        "x",
        {"source": "test"},
    )
    path = save_calibration(tmp_path / "cal.json", cal)
    back = load_calibration(path)
    assert [e.to_dict() for e in back.experts] == json.loads(
        json.dumps([e.to_dict() for e in cal.experts])
    )
    for e, f in zip(cal.experts, back.experts, strict=True):
        np.testing.assert_array_equal(e.v(raw[:, 0]), f.v(raw[:, 0]))
        np.testing.assert_array_equal(e.a(raw[:, 1]), f.a(raw[:, 1]))
    # a file holds only what it was fitted for: the others keep the built-in figures
    merged = calibration_for(Config().replace(**{"fusion.calibration": str(path)}))
    assert merged.find("face", "trained") is not None and merged.find("scene", "zero-shot")
    assert merged.find("face", "trained").v.kind == "isotonic"
    data = json.loads(path.read_text())
    data["experts"][0]["v"]["knots_raw"] = [0.2, 0.1] + data["experts"][0]["v"]["knots_raw"][2:]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    for content, message in ((json.dumps(data), "increase"), ("{", "not JSON"),
                             ('{"format": "other"}', "moodsic.calibration/1")):  # fmt: skip
        bad.write_text(content)
        with pytest.raises(InputError, match=message) as err:
            load_calibration(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="not found"):
        calibration_for(Config().replace(**{"fusion.calibration": str(tmp_path / "nope.json")}))


def test_builtin_defaults_come_from_published_figures() -> None:
    b = builtin_calibration()
    face = b.find("face", "trained")
    assert face.v.floor == pytest.approx(0.29**2) and face.a.floor == pytest.approx(0.27**2)
    assert "Toisoul" in face.source
    zs = b.find("scene", "zero-shot")
    cfg = Config().scene
    # a zero-shot guess is at best as good as a trained CLIP head, at worst a constant guess
    assert zs.v.floor == pytest.approx(cfg.zero_shot_var_min_v, abs=1e-4)
    assert cfg.zero_shot_var_max_v == pytest.approx(np.pi / 2 * (1.509 / 3) ** 2, abs=1e-3)
    assert cfg.zero_shot_var_min_a == pytest.approx(np.pi / 2 * (1.279 / 3) ** 2, abs=1e-3)


# ----------------------------------------------------------------------------- zero-shot scene
def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_entropy_variance_uniform_high_peaked_low() -> None:
    scores = np.array([1.0, 1.0, 0.5, 0.0, -0.5, -1.0, -1.0])
    uniform = np.full((1, 7), 1 / 7)
    peaked = np.eye(7)[[0]]
    same_level = np.array([[0.5, 0.5, 0, 0, 0, 0, 0]])  # two prompts of one level: no doubt
    lo, hi = 0.2, 0.4
    assert entropy_variance(uniform, scores, lo, hi)[0] == pytest.approx(hi, abs=0.01)
    assert entropy_variance(peaked, scores, lo, hi)[0] == pytest.approx(lo)
    assert entropy_variance(same_level, scores, lo, hi)[0] == pytest.approx(lo)
    logits = np.random.default_rng(0).normal(size=(1, 7))
    sharper = [entropy_variance(_softmax(logits * k), scores, lo, hi)[0] for k in (0.1, 1, 3, 10)]
    assert all(a > b for a, b in zip(sharper, sharper[1:], strict=False))


def test_zero_shot_scene_variance_follows_prompt_entropy_not_a_floor() -> None:
    """Through SceneExpert.predict_embeddings, with CLIP-like cosine similarities (about 0.22,
    prompt-to-prompt noise 0.02, the matching level up to 0.1 higher): the variance follows
    how clearly one level matches, and is not pinned where CLIP's own logit scale (100) put
    the old softmax spread (at its 0.05 floor for half of the images)."""
    torch = pytest.importorskip("torch")
    from moodsic_engine.experts import scene as scene_mod
    from moodsic_engine.experts.scene import AROUSAL_PROMPTS, VALENCE_PROMPTS, SceneExpert

    # prompt embeddings are numpy arrays where the expert runs without torch (issue 19)
    numpy_prompts = hasattr(scene_mod, "_softmax")

    def arr(x: np.ndarray):  # noqa: ANN202
        x = np.asarray(x, dtype=np.float32)
        return x if numpy_prompts else torch.from_numpy(x)

    cfg = Config().scene
    expert = SceneExpert.__new__(SceneExpert)  # no encoder: embeddings are given directly
    expert.cfg, expert.head, expert._logit_scale, expert._prompts = cfg, None, 100.0, {}
    rng = np.random.default_rng(0)
    b = 400
    sims, strength = {}, rng.uniform(0.0, 0.1, b)
    for axis, sets in (("v", VALENCE_PROMPTS), ("a", AROUSAL_PROMPTS)):
        scores = np.array([s for s, texts in sets for _ in texts])
        true = rng.choice(np.unique(scores), b)
        sims[axis] = (
            0.22 + 0.02 * rng.standard_normal((b, len(scores)))
            + strength[:, None] * (scores[None, :] == true[:, None])
        )  # fmt: skip
        # orthonormal "text embeddings": an image embedding is its own similarities
        expert._prompts[axis] = (arr(np.eye(16)[: len(scores)]), arr(scores))
    for j, axis in enumerate("va"):
        emb = np.full((b, 16), 0.22)
        emb[:, : sims[axis].shape[1]] = sims[axis]
        _, var = expert.predict_embeddings(arr(emb))
        lo = getattr(cfg, f"zero_shot_var_min_{axis}")
        hi = getattr(cfg, f"zero_shot_var_max_{axis}")
        v = var[:, j]
        assert np.all((v >= lo - 1e-9) & (v <= hi + 1e-9))
        assert np.mean(v <= lo + 0.01 * (hi - lo)) < 0.05  # not pinned at its minimum
        assert np.percentile(v, 90) - np.percentile(v, 10) > 0.25 * (hi - lo)
        assert np.corrcoef(strength, v)[0, 1] < -0.6  # a clear match: a smaller variance
        # the old spread at CLIP's logit scale, floored at 0.05
        scores = np.asarray(expert._prompts[axis][1])
        w = _softmax(100 * sims[axis])
        m = w @ scores
        old = np.maximum((w * (scores - m[:, None]) ** 2).sum(1), 0.05)
        print(axis, f"old at floor {np.mean(old <= 0.05 + 1e-9):.0%}",
              f"new p10/p50/p90 {np.percentile(v, [10, 50, 90]).round(3)}")  # fmt: skip
        if axis == "v":
            assert np.mean(old <= 0.05 + 1e-9) > 0.4


# ----------------------------------------------------------------------------- eval -> score
@pytest.mark.slow
def test_eval_veatic_writes_a_calibration_that_score_uses(tmp_path: Path) -> None:
    from media import lavfi_video
    from test_eval_veatic import _mini_veatic
    from typer.testing import CliRunner

    from moodsic_engine.cli import app

    rng = np.random.default_rng(4)
    labels = np.round(rng.uniform(-0.6, 0.6, (75, 2)), 6)  # 3 s at 25 fps
    root = _mini_veatic(tmp_path / "v", {"1": ("25", 3.0, labels), "2": ("25", 3.0, labels[::-1])})
    rep = tmp_path / "rep"
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["eval", "veatic", "--root", str(root), "-o", str(rep), "--experts", "grammar",
         "--no-plots", "--progress", "none", "--weights-dir", str(tmp_path / "w")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "calibration written" in res.output and "built-in published figures" in res.output
    path = rep / "calibration.json"
    (entry,) = load_calibration(path).experts
    assert entry.name == "grammar" and entry.n == 2 * 6  # 6 samples (2 per second) per video
    assert "## Calibration" in (rep / "summary.md").read_text()
    # the constant raw grammar variance maps to the grammar expert's mean squared error there
    report = json.loads((rep / "report.json").read_text())
    assert report["overall_per_frame"]["grammar"]["n"] == 150

    clip = lavfi_video(tmp_path / "clip.mp4", seconds=3.0, size="96x54")
    raw_v, raw_a = Config().grammar.var_v, Config().grammar.var_a
    cues = {}
    for name, extra in (("with", ["--calibration", str(path)]), ("without", [])):
        out = tmp_path / f"{name}.json"
        res = runner.invoke(
            app,
            ["score", str(clip), "-o", str(out), "--experts", "grammar", "--progress", "none",
             "--weights-dir", str(tmp_path / "w"), *extra],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        cues[name] = json.loads(out.read_text())
        assert "calibration: " in res.output
    with_cal, without = cues["with"], cues["without"]
    assert with_cal["engine"]["config"]["fusion"]["calibration"] == str(path)
    assert str(path) in with_cal["summary"]["calibration"]["grammar"]
    assert without["engine"]["config"]["fusion"]["calibration"] == "builtin"
    expected_v = float(entry.v(np.array([raw_v]))[0])
    assert abs(expected_v - raw_v) > 1e-3  # the map did change the variance
    for s_with, s_without in zip(with_cal["samples"], without["samples"], strict=True):
        assert s_with["experts"]["grammar"]["var_v"] == pytest.approx(expected_v)
        assert s_without["experts"]["grammar"]["var_v"] == pytest.approx(raw_v)
        # film grammar's arousal variance grows with cue disagreement; the map is monotone
        assert s_with["experts"]["grammar"]["var_a"] == pytest.approx(
            float(entry.a(np.array([s_without["experts"]["grammar"]["var_a"]]))[0])
        )
    assert min(s["experts"]["grammar"]["var_a"] for s in without["samples"]) >= raw_a
    # beside the weights: found without --calibration
    (tmp_path / "w").mkdir(exist_ok=True)
    (tmp_path / "w" / "calibration.json").write_text(path.read_text())
    out = tmp_path / "beside.json"
    res = runner.invoke(
        app,
        ["score", str(clip), "-o", str(out), "--experts", "grammar", "--progress", "none",
         "--weights-dir", str(tmp_path / "w")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    beside = json.loads(out.read_text())
    assert beside["engine"]["config"]["fusion"]["calibration"] == str(
        tmp_path / "w" / "calibration.json"
    )
    assert beside["samples"][0]["experts"]["grammar"]["var_v"] == pytest.approx(expected_v)
    bad = runner.invoke(
        app,
        ["score", str(clip), "-o", str(out), "--experts", "grammar", "--progress", "none",
         "--calibration", str(tmp_path / "nope.json")],
    )  # fmt: skip
    assert bad.exit_code == 1 and "calibration file not found" in bad.output


def test_eval_findingemo_writes_the_face_calibration(tmp_path: Path) -> None:
    from test_eval_findingemo import ConstantFace, N

    from moodsic_engine.eval.findingemo_face import evaluate_face_findingemo
    from moodsic_engine.train.findingemo import (
        make_mini_findingemo,
        read_annotations,
        split_by_image,
    )

    ann_path, images = make_mini_findingemo(tmp_path / "fe", n=N, seed=0)
    res = evaluate_face_findingemo(
        images, tmp_path / "out", Config(), annotations=ann_path, expert=ConstantFace(0.5, -0.2)
    )
    assert res.calibration == tmp_path / "out" / "calibration.json"
    (entry,) = load_calibration(res.calibration).experts
    ann = read_annotations(ann_path)
    val = split_by_image(ann["rel_path"].tolist(), seed=0).val
    y = ann[["v_ref", "a_ref"]].to_numpy()[val]
    # a constant raw variance (0.04 / 0.09) maps to the mean squared error on validation faces
    assert entry.v(np.array([0.04]))[0] == pytest.approx(np.mean((0.5 - y[:, 0]) ** 2))
    assert entry.a(np.array([0.09]))[0] == pytest.approx(np.mean((-0.2 - y[:, 1]) ** 2))
    assert any("within 1 sd" in line for line in res.summary_lines())
    used = calibration_for(Config().replace(**{"fusion.calibration": str(res.calibration)}))
    assert used.find("face", "trained").v.floor < 0.29**2  # the fitted map, not the default


class NoisyExpert:
    """A fake expert that sees each video's ratings: prediction = rating + noise of variance
    `true_var(raw)`, reporting `raw` (a random spread) as its variance. Videos come in order;
    a batch at index 0 starts the next one."""

    def __init__(self, name, labels, fps, raw_range, true_var, seed):  # noqa: ANN001
        self.name, self.mode = name, "trained"
        self.labels, self.fps, self.video = labels, fps, -1
        self.raw_range, self.true_var = raw_range, true_var
        self.rng = np.random.default_rng(seed)

    def predict(self, batch):  # noqa: ANN001, ANN201
        from moodsic_engine.experts import Estimates

        if batch.index0 == 0:
            self.video += 1
        y = self.labels[self.video]
        k = np.clip(np.rint(batch.times * self.fps).astype(int), 0, len(y) - 1)
        n = len(k)
        raw = self.rng.uniform(*self.raw_range, (n, 2))
        pred = y[k] + self.rng.normal(0.0, np.sqrt(self.true_var(raw)))
        return Estimates(pred[:, 0], pred[:, 1], raw[:, 0], raw[:, 1], np.ones(n, bool))

    def finalize(self, series, context):  # noqa: ANN001, ANN201, ARG002
        return series


@pytest.mark.slow
def test_eval_veatic_calibration_section_on_experts_with_known_noise(tmp_path: Path) -> None:
    """Through evaluate_veatic: 6 rated clips, an honest-but-mis-scaled expert and an
    over-confident one; held-out coverage near nominal, fusion at least as good as the best."""
    from test_eval_veatic import _mini_veatic

    from moodsic_engine.eval.calibrate import by_expert, from_series, held_out, labels_at
    from moodsic_engine.eval.veatic import Perception, evaluate_veatic
    from moodsic_engine.experts import LoadedExperts

    rng = np.random.default_rng(7)
    labels = [np.round(np.clip(rng.normal(0, 0.4, (250, 2)), -1, 1), 6) for _ in range(6)]
    root = _mini_veatic(tmp_path / "v", {str(i + 1): ("25", 10.0, y) for i, y in enumerate(labels)})
    experts = LoadedExperts(
        (
            NoisyExpert("scene", labels, 25, (0.005, 0.05), lambda r: 3 * r, 1),
            NoisyExpert("face", labels, 25, (0.005, 0.01), lambda r: np.full_like(r, 0.2), 2),
        ),
        {},
    )
    cfg = Config(experts=("grammar",)).replace(**{"sample.sample_fps": 4.0})
    rep = evaluate_veatic(root, tmp_path / "out", cfg, experts=experts, plots=False)
    text = "\n".join(rep.summary_lines())
    print(text)
    cal = load_calibration(tmp_path / "out" / "calibration.json")
    assert {(e.name, e.n) for e in cal.experts} == {("scene", 240), ("face", 240)}
    assert all(e.v.kind == "isotonic" for e in cal.experts)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "5-fold by clip" in summary
    # the same held-out measurement the summary reports (from the raw outputs it cached)
    cache = sorted(
        (tmp_path / "out" / "cache").glob("*.npz"), key=lambda p: int(p.name.split("-")[0])
    )
    parts = []
    for i, path in enumerate(cache):
        p = Perception.load(path)
        parts += [from_series(s, labels_at(p.t, p.fps, labels[i]), i) for s in p.series]
    cv = held_out(by_expert(parts))
    for name in ("scene", "face"):
        got = cv["experts"][name]["calibrated"]
        print(name, {k: round(v, 3) for k, v in got.items()})
        for ax in "va":
            assert got[f"within_1sd_{ax}"] == pytest.approx(0.6827, abs=0.08)
            assert got[f"within_2sd_{ax}"] == pytest.approx(0.9545, abs=0.05)
    assert cv["experts"]["face"]["raw"]["within_1sd_v"] < 0.3  # over-confident before
    f = cv["fusion"]
    print({k: round(v, 4) for k, v in f.items()})
    assert f["fusion_calibrated"] <= min(f["scene"], f["face"])
    assert f["fusion_calibrated"] < f["fusion_raw"]
