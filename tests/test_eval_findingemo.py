"""Face expert on a generated FindingEmo look-alike: faces-found share, raw and calibrated
metrics against hand-computed values, the scene/face split, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moodsic_engine import scales
from moodsic_engine.config import Config
from moodsic_engine.errors import InputError
from moodsic_engine.eval.findingemo_face import (
    apply_linear,
    evaluate_face_findingemo,
    fit_linear,
    run_findingemo_eval,
)
from moodsic_engine.experts.face import FaceEstimate
from moodsic_engine.train.findingemo import make_mini_findingemo, read_annotations, split_by_image

N = 60


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_mini_findingemo(tmp_path_factory.mktemp("fe"), n=N, seed=0)


class ConstantFace:
    """A fake face expert: one face with a fixed estimate in every image."""

    mode = "trained"

    def __init__(self, v: float, a: float) -> None:
        self.v, self.a, self.calls = v, a, 0

    def reset(self) -> None:
        pass

    def predict_frame(self, frame: np.ndarray, t: float):  # noqa: ANN201, ARG002
        self.calls += 1
        return [FaceEstimate(self.v, self.a, 0.04, 0.09, 1.0)], 1


def test_linear_calibration_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(-1, 1, size=(50, 2))
    y = np.stack([0.5 * pred[:, 0] + 0.1, -0.2 * pred[:, 1] - 0.3], axis=1)
    coef = fit_linear(pred, y)
    np.testing.assert_allclose(coef, [[0.5, 0.1], [-0.2, -0.3]], atol=1e-12)
    np.testing.assert_allclose(apply_linear(pred, coef), y, atol=1e-12)


def test_metrics_equal_hand_computed_values(mini: tuple[Path, Path], tmp_path: Path) -> None:
    ann_path, images = mini
    c = (0.5, -0.2)
    expert = ConstantFace(*c)
    res = evaluate_face_findingemo(images, tmp_path, Config(), annotations=ann_path, expert=expert)
    ann = read_annotations(ann_path)
    split = split_by_image(ann["rel_path"].tolist(), seed=0)
    y = ann[["valence", "arousal"]].to_numpy()
    yt, yv = y[split.test], y[split.val]
    assert expert.calls == len(split.test) + len(split.val)
    assert res.faces_found_share == 1.0 and res.test_images == len(split.test)
    raw = res.rows["face (trained), raw"]
    # FindingEmo units: valence = 3 v, arousal = 3 (a + 1)
    assert raw["v_mae"] == pytest.approx(np.mean(np.abs(3 * c[0] - yt[:, 0])))
    assert raw["a_mae"] == pytest.approx(np.mean(np.abs(3 * (c[1] + 1) - yt[:, 1])))
    assert raw["rho_v"] is None  # constant prediction
    # calibrated on val: a constant prediction maps to the mean validation label
    cal = res.rows["face (trained), calibrated on val"]
    assert cal["v_mae"] == pytest.approx(np.mean(np.abs(yv[:, 0].mean() - yt[:, 0])))
    assert cal["a_mae"] == pytest.approx(np.mean(np.abs(yv[:, 1].mean() - yt[:, 1])))
    # the JSON has a row per test image, labels on the reference scale
    data = json.loads((tmp_path / "findingemo_face.json").read_text())
    assert len(data["images"]) == len(split.test)
    first = data["images"][0]
    assert first["label"][0] == pytest.approx(float(scales.findingemo_valence_to_ref(yt[0, 0])))
    md = (tmp_path / "findingemo_face.md").read_text()
    assert "calibrated on val" in md and "## Reproduce" in md and "CC BY-NC-SA" in md


def _paste_faces(images: Path, rel_paths: list[str]) -> None:
    from skimage import data

    face = Image.fromarray(data.astronaut()).resize((256, 256))
    for rel in rel_paths:
        face.save(images / rel.lstrip("/"))


@pytest.mark.slow
def test_real_face_expert_faces_found_share(tmp_path: Path) -> None:
    """The real face expert (landmark fallback: no EmoNet weights here) on images where the
    astronaut's face was pasted into half of the test images and every validation image."""
    ann_path, images = make_mini_findingemo(tmp_path / "fe", n=N, seed=1)
    ann = read_annotations(ann_path)
    rel = ann["rel_path"].tolist()
    split = split_by_image(rel, seed=0)
    with_face = [rel[i] for i in split.test[::2]] + [rel[i] for i in split.val]
    _paste_faces(images, with_face)
    res = evaluate_face_findingemo(images, tmp_path / "out", Config(), annotations=ann_path)
    n_test = len(split.test)
    assert res.faces_found_share == pytest.approx(len(split.test[::2]) / n_test)
    (raw_name,) = [k for k in res.rows if k.endswith(", raw")]
    assert res.rows[raw_name]["n"] == len(split.test[::2])
    assert any(k.endswith("calibrated on val") for k in res.rows)


def test_run_findingemo_eval_skips_scene_without_head(
    mini: tuple[Path, Path], tmp_path: Path
) -> None:
    ann_path, images = mini
    with pytest.raises(InputError, match="no FindingEmo evaluation could run"):
        run_findingemo_eval(
            images,
            tmp_path,
            Config(),
            experts=("scene",),
            annotations=ann_path,
            weights_dir=tmp_path,
        )
    with pytest.raises(InputError, match="test images"):
        evaluate_face_findingemo(
            tmp_path / "nowhere",
            tmp_path,
            Config(),
            annotations=ann_path,
            expert=ConstantFace(0, 0),
        )


@pytest.mark.slow
def test_cli_eval_findingemo_face(mini: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from moodsic_engine.cli import app

    ann_path, images = mini
    res = CliRunner().invoke(
        app,
        ["eval", "findingemo", "--images", str(images), "--annotations", str(ann_path),
         "-o", str(tmp_path), "--weights-dir", str(tmp_path / "w"), "--progress", "none"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "scene: skipped" in res.output and "face on FindingEmo test" in res.output
    assert (tmp_path / "findingemo_face.md").is_file()
