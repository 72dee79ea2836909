"""The face expert on FindingEmo's test images (`moodsic eval findingemo`).

FindingEmo rates whole scenes, often with several small faces, so this measures how far
the face expert alone gets on them: the share of test images in which it finds a usable
face, and on those images V/A MAE and Spearman rho, raw and calibrated. The calibration is
a per-axis linear map (least squares) fitted on the validation images with faces, so the
test images stay unseen. The split is the scene head's (by image, same seed and fractions),
so the scene and face figures are on the same images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from warnings import warn

import numpy as np

from ..config import Config
from ..errors import InputError
from ..fileio import regular_file, write_text_atomic
from ..progress import ProgressFn, no_progress
from .metrics import fmt, json_clean
from .provenance import provenance, provenance_markdown

MIN_CALIBRATION = 5  # validation images with faces needed to fit the linear map

COLUMNS = (
    ("n", "images"), ("v_mae", "V-MAE"), ("a_mae", "A-MAE"), ("avg_mae", "avg MAE"),
    ("rho_v", "rho V"), ("rho_a", "rho A"), ("v_mae_ref", "V-MAE ref"), ("a_mae_ref", "A-MAE ref"),
    ("avg_mae_ref", "avg ref"),
)  # fmt: skip


@dataclass(frozen=True)
class FacePredictions:
    rel_paths: list[str]
    y: np.ndarray  # [N, 2] reference scale
    pred: np.ndarray  # [N, 2], NaN where no face
    var: np.ndarray  # [N, 2]
    faces: np.ndarray  # [N] usable faces found
    unreadable: tuple[str, ...] = ()  # images left out (reported), with their reasons


def predict_images(
    expert: Any,
    images_root: Path,
    rel_paths: list[str],
    y: np.ndarray,
    short_side: int,
    progress: ProgressFn = no_progress,
    stage: str = "face",
) -> FacePredictions:
    """Run the face expert on each image as one frame (no reuse between images)."""
    from ..experts.face import combine
    from ..train.findingemo import load_image, local_path

    n = len(rel_paths)
    pred = np.full((n, 2), np.nan)
    var = np.full((n, 2), np.nan)
    faces = np.zeros(n, dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    bad: list[str] = []
    progress(stage, 0, n)
    for i, rel in enumerate(rel_paths):
        try:
            path = regular_file(local_path(images_root, rel), "image")
            img = load_image(path, short_side=short_side)
        except InputError as exc:  # one bad image is reported and left out, not fatal
            keep[i] = False
            bad.append(" ".join(str(exc).split()))
            progress(stage, i + 1, n)
            continue
        expert.reset()
        est, seen = expert.predict_frame(img, 0.0)
        if est:
            v, a, vv, va = combine(est)
            pred[i], var[i], faces[i] = (v, a), (vv, va), seen
        progress(stage, i + 1, n)
    y = np.asarray(y, dtype=np.float64)
    rels = [r for r, k in zip(rel_paths, keep, strict=True) if k]
    return FacePredictions(rels, y[keep], pred[keep], var[keep], faces[keep], tuple(bad))


def fit_linear(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-axis (slope, intercept) minimising squared error; [2, 2]."""
    coef = np.zeros((2, 2))
    for j in range(2):
        x = pred[:, j]
        if np.ptp(x) == 0:
            coef[j] = (0.0, float(np.mean(y[:, j])))
            continue
        slope, intercept = np.polyfit(x, y[:, j], 1)
        coef[j] = (float(slope), float(intercept))
    return coef


def apply_linear(pred: np.ndarray, coef: np.ndarray) -> np.ndarray:
    return np.clip(pred * coef[:, 0] + coef[:, 1], -1.0, 1.0)


@dataclass(frozen=True)
class FaceEvalResult:
    report_md: Path
    report_json: Path
    rows: dict[str, dict[str, Any]]
    faces_found_share: float
    test_images: int
    calibration: Path | None = None  # the variance calibration fitted on validation faces
    calibration_lines: tuple[str, ...] = ()

    def summary_lines(self) -> list[str]:
        lines = [
            f"face on FindingEmo test: faces found in {self.faces_found_share:.1%} of "
            f"{self.test_images} images"
        ]
        for name, r in self.rows.items():
            lines.append(
                f"  {name}: V-MAE {fmt(r.get('v_mae'))} A-MAE {fmt(r.get('a_mae'))} "
                f"rho {fmt(r.get('rho_v'))}/{fmt(r.get('rho_a'))} (FindingEmo units, n={r.get('n')})"
            )
        lines.extend(self.calibration_lines)
        lines.append(f"report: {self.report_md}")
        return lines


def evaluate_face_findingemo(
    images_root: str | Path,
    out_dir: str | Path,
    config: Config | None = None,
    *,
    annotations: str | Path | None = None,
    weights_dir: Path | None = None,
    seed: int | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    limit: int | None = None,
    expert: Any | None = None,
    progress: ProgressFn = no_progress,
) -> FaceEvalResult:
    """Face expert on the FindingEmo test split (see the module docstring); writes
    `findingemo_face.md` and `.json` into `out_dir`."""
    from ..train.findingemo import LICENSE, local_path, read_annotations, split_by_image
    from ..train.scene_head import calibration_check, metrics

    config = config or Config()
    seed = config.seed if seed is None else seed
    root = Path(images_root)
    ann = read_annotations(annotations)
    rel = ann["rel_path"].tolist()
    split = split_by_image(rel, seed=seed, fractions=fractions)
    on_disk = np.array([local_path(root, p).is_file() for p in rel])
    test = [i for i in split.test if on_disk[i]]
    val = [i for i in split.val if on_disk[i]]
    if limit is not None:
        test = test[: max(0, int(limit))]
        val = val[: max(0, int(limit))]
    if len(test) < 2:
        raise InputError(f"only {len(test)} FindingEmo test images found under {root}")
    y_all = ann[["v_ref", "a_ref"]].to_numpy(dtype=np.float64)
    if expert is None:
        from ..experts import face

        expert = face.load(config, weights_dir)
    short = config.sample.short_side
    te = predict_images(
        expert, root, [rel[i] for i in test], y_all[test], short, progress, "face test"
    )
    va = predict_images(
        expert, root, [rel[i] for i in val], y_all[val], short, progress, "face val"
    )
    left_out = [*te.unreadable, *va.unreadable]
    if left_out:
        warn(
            f"FindingEmo: {len(left_out)} unreadable image(s) left out: {left_out[0]}", stacklevel=2
        )
    if len(te.rel_paths) < 2:
        raise InputError(f"only {len(te.rel_paths)} readable FindingEmo test images under {root}")
    has = np.all(np.isfinite(te.pred), axis=1)
    share = float(has.mean())
    rows: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    cal_path: Path | None = None
    cal_lines: list[str] = []
    mode = getattr(expert, "mode", "?")
    if has.sum() >= 1:
        raw = metrics(te.pred[has], te.y[has])
        if has.sum() >= 2:
            raw.update(calibration_check(te.var[has], te.pred[has], te.y[has]))
        rows[f"face ({mode}), raw"] = raw
        vhas = np.all(np.isfinite(va.pred), axis=1)
        if vhas.sum() >= MIN_CALIBRATION:
            coef = fit_linear(va.pred[vhas], va.y[vhas])
            rows[f"face ({mode}), calibrated on val"] = metrics(
                apply_linear(te.pred[has], coef), te.y[has]
            )
            notes.append(
                f"calibration (val, {int(vhas.sum())} images with faces): "
                f"v' = {coef[0, 0]:.3f} v + {coef[0, 1]:.3f}, a' = {coef[1, 0]:.3f} a + {coef[1, 1]:.3f}"
            )
            cal_path, cal_lines = _variance_calibration(va, vhas, te, has, mode, Path(out_dir))
            notes += cal_lines
        else:
            notes.append(
                f"calibrated row skipped: {int(vhas.sum())} validation images with faces (need {MIN_CALIBRATION})"
            )
        train_idx = [i for i in split.train]
        med = np.median(y_all[train_idx], axis=0) if train_idx else np.zeros(2)
        rows["constant median of train (same images)"] = metrics(
            np.repeat(med[None, :], int(has.sum()), axis=0), te.y[has]
        )
    else:
        notes.append("no face found in any test image: no accuracy figures")
    prov = provenance(
        config,
        weights_dir=weights_dir,
        experts=("face",),
        data={
            "images_root": str(root.resolve()),
            "annotations": str(annotations) if annotations else "findingemo-light (packaged)",
            "split": f"by image, seed {seed}, fractions {tuple(fractions)}",
            "test_images_on_disk": f"{len(test)} of {len(split.test)}",
            "left_out": left_out,
            "licence": LICENSE,
        },
    )
    md = [
        "# Face expert on the FindingEmo test split",
        "",
        f"- test images on disk: {len(test)} of {len(split.test)}; faces found in "
        f"{int(has.sum())} ({share:.1%})",
        f"- face expert mode: {mode}; images at short side {short} px (as video frames are sampled)",
        "- accuracy on the test images with a face; MAE in FindingEmo units (valence -3..3, "
        "arousal 0..6), 'ref' columns on the reference scale [-1, 1]",
        "",
        "| | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name, r in rows.items():
        md.append(f"| {name} | " + " | ".join(fmt(r.get(k)) for k, _ in COLUMNS) + " |")
    md += ["", *[f"- {n}" for n in notes], "", *provenance_markdown(prov)]
    out = Path(out_dir)
    md_path = write_text_atomic(out / "findingemo_face.md", "\n".join(md))
    per_image = [
        {"rel_path": p, "label": y.tolist(), "pred": pr.tolist(), "faces": int(f)}
        for p, y, pr, f in zip(te.rel_paths, te.y, te.pred, te.faces, strict=True)
    ]
    js = write_text_atomic(
        out / "findingemo_face.json",
        json.dumps(
            json_clean(
                {"rows": rows, "faces_found_share": share, "notes": notes, "images": per_image,
                 "provenance": prov}
            ),
            indent=2,
        ),
    )  # fmt: skip
    summary = tuple(f"  {line}" for line in cal_lines)
    return FaceEvalResult(md_path, js, rows, share, len(te.rel_paths), cal_path, summary)


def _variance_calibration(
    va: FacePredictions,
    vhas: np.ndarray,
    te: FacePredictions,
    has: np.ndarray,
    mode: str,
    out: Path,
) -> tuple[Path, list[str]]:
    """The face expert's variance map fitted on the validation faces (each image its own
    group), written as `calibration.json`; its coverage measured on the test faces."""
    from ..calibration import FILE_NAME, coverage, save_calibration
    from .calibrate import Labelled, fit_all

    n = int(vhas.sum())
    val = Labelled(
        "face", mode, va.var[vhas], va.pred[vhas], va.y[vhas], np.arange(n), np.zeros(n, int)
    )
    cal = fit_all([val], f"eval findingemo, {n} validation images with faces")
    path = save_calibration(out / FILE_NAME, cal)
    (entry,) = cal.experts
    cv, ca = entry.apply(te.var[has, 0], te.var[has, 1])
    raw = coverage(te.var[has, 0], te.var[has, 1], te.pred[has], te.y[has])
    got = coverage(cv, ca, te.pred[has], te.y[has])

    def pct(d: dict[str, Any], key: str) -> str:
        return f"{fmt(d.get(key + '_v'))}/{fmt(d.get(key + '_a'))}"

    lines = [
        f"variance calibration written: {path} (fitted on {n} validation faces; use it with "
        "`moodsic score --calibration`)",
        f"test faces within 1 sd (nominal 0.68) V/A: raw {pct(raw, 'within_1sd')}, calibrated "
        f"{pct(got, 'within_1sd')}; within 2 sd (nominal 0.95): raw {pct(raw, 'within_2sd')}, "
        f"calibrated {pct(got, 'within_2sd')}",
    ]
    if "tta_scale" in entry.notes:
        s = entry.notes["tta_scale"]
        lines.append(
            f"face TTA scale refitted: V {s[0]:.3f}, A {s[1]:.3f} (hand-set "
            f"{entry.notes['tta_scale_before']})"
        )
    return path, lines


# ----------------------------------------------------------------------------- both experts
@dataclass(frozen=True)
class FindingEmoEval:
    lines: list[str]
    reports: dict[str, Path]


def run_findingemo_eval(
    images_root: str | Path,
    out_dir: str | Path,
    config: Config | None = None,
    *,
    experts: tuple[str, ...] = ("scene", "face"),
    head: str | Path | None = None,
    annotations: str | Path | None = None,
    weights_dir: Path | None = None,
    cache_dir: str | Path | None = None,
    limit: int | None = None,
    progress: ProgressFn = no_progress,
) -> FindingEmoEval:
    """The scene head's test-split report (the scene issue's `evaluate_scene_head`) and the
    face evaluation on the same split. An expert that cannot run is skipped with its reason;
    if neither can, InputError."""
    from ..errors import ExpertUnavailable, ResourceError

    config = config or Config()
    lines: list[str] = []
    reports: dict[str, Path] = {}
    seed, fractions = config.seed, (0.8, 0.1, 0.1)
    head_path: Path | None = None
    if "scene" in experts or "face" in experts:
        try:
            from ..experts import scene

            head_path = Path(head) if head else scene.find_head(config.scene, weights_dir)
            if head_path is not None:
                training = scene.read_head_meta(head_path).get("training", {})
                seed = int(training.get("seed", seed))
                fractions = tuple(training.get("split", fractions))  # type: ignore[assignment]
        except (ExpertUnavailable, ResourceError) as exc:
            if head:
                raise InputError(str(exc)) from None
            head_path = None
    if "scene" in experts:
        if head_path is None:
            lines.append(
                "scene: skipped (no trained scene head; train one with `moodsic train scene` or pass --head)"
            )
        else:
            from ..train.run import evaluate_scene_head

            md, rows = evaluate_scene_head(
                head_path, images_root, out_dir, config, annotations=annotations,
                weights_dir=weights_dir, cache_dir=cache_dir, progress=progress,
            )  # fmt: skip
            reports["scene"] = md
            for name, r in rows.items():
                lines.append(
                    f"scene: {name}: V-MAE {fmt(r.get('v_mae'))} A-MAE {fmt(r.get('a_mae'))} "
                    f"rho {fmt(r.get('rho_v'))}/{fmt(r.get('rho_a'))}"
                )
            lines.append(f"report: {md}")
    if "face" in experts:
        try:
            res = evaluate_face_findingemo(
                images_root, out_dir, config, annotations=annotations, weights_dir=weights_dir,
                seed=seed, fractions=fractions, limit=limit, progress=progress,
            )  # fmt: skip
            reports["face"] = res.report_md
            lines += res.summary_lines()
        except ExpertUnavailable as exc:
            lines.append(f"face: skipped ({' '.join(str(exc).split())})")
    if not reports:
        raise InputError("no FindingEmo evaluation could run: " + "; ".join(lines))
    return FindingEmoEval(lines, reports)
