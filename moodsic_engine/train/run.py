"""`moodsic train scene`: FindingEmo -> embedding cache -> head -> report (and the ablation).

The split is drawn over the WHOLE annotation list (by image, fixed seed) and then
intersected with the images on disk, so the test set is the same images on every
machine whatever links happened to be dead there.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..config import Config
from ..errors import ExpertUnavailable, InputError
from ..experts import scene
from ..progress import ProgressFn, no_progress
from ..weights import default_cache_dir
from .download import download_images
from .embed_cache import embed_dataset
from .findingemo import LICENSE, Split, package_version, read_annotations, read_urls, split_by_image
from .report import write_report
from .scene_head import TrainConfig, calibration_check, fit_ridge, metrics, predict_head, train_head

MIN_IMAGES = 10


@dataclass(frozen=True)
class SceneTrainResult:
    head_path: Path
    report_md: Path
    report_json: Path
    test: dict[str, Any]  # our MLP's test metrics
    rows: dict[str, dict[str, Any]]
    train_loss: list[float]
    installed: Path | None = None

    def summary_lines(self) -> list[str]:
        t = self.test
        lines = [
            f"scene head: {self.head_path}",
            f"test (n={t['n']}): V-MAE {t['v_mae']:.3f}  A-MAE {t['a_mae']:.3f}  avg {t['avg_mae']:.3f} "
            f"(FindingEmo units; reference CLIP ViT-B/32 + MLP: 1.068 / 1.279 / 1.174)",
            f"report: {self.report_md}",
        ]
        if self.installed:
            lines.append(f"installed: {self.installed}")
        return lines


def _embedded(
    config: Config,
    weights_dir: Path | None,
    images_root: Path,
    rel_paths: list[str],
    cache_dir: Path,
    progress: ProgressFn,
) -> tuple[scene.EncoderRef, dict[str, Any], Any]:
    ref = scene.resolve_encoder(config.scene, weights_dir)
    encoder = scene.build_encoder(ref, config.scene.precision, with_text=False)
    meta = scene.encoder_meta(ref, encoder.embed_dim)
    data = embed_dataset(
        encoder,
        meta,
        images_root,
        rel_paths,
        cache_dir,
        short_side=config.sample.short_side,
        batch_size=max(1, config.scene.batch_size),
        progress=progress,
    )
    return ref, meta, data


def _parts(
    split: Split, ann: pd.DataFrame, keep: dict[str, int]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(embedding rows, target rows) per split, restricted to images that were embedded."""
    out = {}
    for name in ("train", "val", "test"):
        idx = getattr(split, name)
        paths = ann["rel_path"].to_numpy()[idx]
        mask = np.array([p in keep for p in paths], dtype=bool)
        out[name] = (np.array([keep[p] for p in paths[mask]], dtype=np.int64), idx[mask])
    return out


def train_scene(
    images_root: str | Path,
    out_dir: str | Path,
    config: Config = Config(),
    *,
    annotations: str | Path | None = None,
    weights_dir: Path | None = None,
    cache_dir: str | Path | None = None,
    train_cfg: TrainConfig | None = None,
    download: bool = False,
    urls: str | Path | None = None,
    download_rate: float = 2.0,
    limit: int | None = None,
    install: bool = False,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: ProgressFn = no_progress,
    echo: Any = None,
) -> SceneTrainResult:
    """Train, calibrate and evaluate a scene head for the configured encoder."""
    say = echo or (lambda _s: None)
    images_root, out_dir = Path(images_root), Path(out_dir)
    cfg = train_cfg or TrainConfig(seed=config.seed, mc_passes=config.scene.mc_passes)
    ann = read_annotations(annotations)
    split = split_by_image(ann["rel_path"].tolist(), seed=cfg.seed, fractions=fractions)
    wanted = ann["rel_path"].tolist()
    if limit is not None:
        # A reproducible subset: the first `limit` images of a seeded shuffle.
        order = np.random.default_rng(cfg.seed).permutation(len(wanted))[:limit]
        wanted = [wanted[i] for i in sorted(order)]
    say(f"FindingEmo: {len(ann)} annotated images ({LICENSE})")
    if download:
        summary = download_images(
            wanted, read_urls(urls), images_root, rate_per_s=download_rate, progress=progress
        )
        say(summary.line())
    t0 = time.perf_counter()
    cache = Path(cache_dir) if cache_dir else default_cache_dir() / "findingemo-embeddings"
    ref, enc_meta, data = _embedded(config, weights_dir, images_root, wanted, cache, progress)
    say(
        f"embeddings: {len(data.rel_paths)} images ({data.encoded_now} encoded now, "
        f"{len(data.missing)} not on disk, {len(data.unreadable)} unreadable) in {time.perf_counter() - t0:.1f} s"
    )
    if len(data.rel_paths) < MIN_IMAGES:
        raise InputError(
            f"only {len(data.rel_paths)} FindingEmo images found under {images_root}; "
            "run with --download first (or point --images at the downloaded folder)"
        )
    keep = {p: i for i, p in enumerate(data.rel_paths)}
    parts = _parts(split, ann, keep)
    y_all = ann[["v_ref", "a_ref"]].to_numpy(dtype=np.float64)
    (tr_e, tr_y), (va_e, va_y), (te_e, te_y) = (parts[k] for k in ("train", "val", "test"))
    if min(len(tr_e), len(va_e), len(te_e)) < 2:
        raise InputError(
            f"too few images per split (train {len(tr_e)}, val {len(va_e)}, test {len(te_e)})"
        )
    x = data.emb
    trained = train_head(x[tr_e], y_all[tr_y], x[va_e], y_all[va_y], cfg, progress)
    pred, var = predict_head(trained.head, x[te_e], cfg.mc_passes)
    y_test = y_all[te_y]
    ours = metrics(pred, y_test)
    ours.update(calibration_check(var, pred, y_test))
    ridge = fit_ridge(x[tr_e], y_all[tr_y], x[va_e], y_all[va_y])
    linear = metrics(ridge(x[te_e]), y_test)
    median = np.median(ann[["valence", "arousal"]].to_numpy()[tr_y], axis=0)  # FindingEmo units
    const_ref = np.array([[median[0] / 3.0, median[1] / 3.0 - 1.0]]).repeat(len(te_y), 0)
    constant = metrics(const_ref, y_test)
    model_name = f"{ref.describe()} + MLP (ours)"
    rows = {
        model_name: ours,
        f"{ref.describe()} linear (ours)": linear,
        "constant median of train (ours)": constant,
    }
    training = {
        "data": f"FindingEmo via findingemo-light {package_version()}",
        "license": LICENSE,
        "n_train": int(len(tr_e)),
        "n_val": int(len(va_e)),
        "n_test": int(len(te_e)),
        "seed": cfg.seed,
        "split": list(fractions),
        "epochs": len(trained.train_loss),
        "best_epoch": trained.best_epoch,
        "config": dataclasses.asdict(cfg),
    }
    meta = {
        "encoder": enc_meta,
        "training": training,
        "metrics": {"test": ours, "val_mae_ref": min(trained.val_mae)},
    }
    head_path = scene.save_head(
        out_dir / scene.head_candidates(config.scene)[0], trained.head, meta
    )
    facts = [
        f"encoder: {ref.describe()} (embedding size {enc_meta['embed_dim']}, fingerprint {enc_meta['fingerprint'] or '-'})",
        f"images: train {len(tr_e)}, val {len(va_e)}, test {len(te_e)} (split by image, seed {cfg.seed}); "
        f"{len(data.missing)} annotated images not on disk",
        f"head: MLP hidden {cfg.hidden}, dropout {cfg.dropout}, {len(trained.train_loss)} epochs "
        f"(best {trained.best_epoch}), MC dropout x{cfg.mc_passes}",
        f"calibration scale (V, A): {trained.head.calibration[0]:.3f}, {trained.head.calibration[1]:.3f}; "
        f"test mean variance / MSE: {ours['var_over_mse_v']:.2f}, {ours['var_over_mse_a']:.2f}",
        f"moodsic {__version__}, python {platform.python_version()}",
    ]
    md, js = write_report(
        out_dir,
        {
            "title": "Scene head on FindingEmo",
            "facts": facts,
            "rows": rows,
            "training": training,
            "encoder": enc_meta,
            "train_loss": trained.train_loss,
            "val_mae_ref": trained.val_mae,
            "head": str(head_path),
        },
    )
    installed = None
    if install:
        from ..weights import resolve_weights_dir

        dest = resolve_weights_dir(weights_dir) / head_path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(head_path, dest)
        installed = dest
    return SceneTrainResult(head_path, md, js, ours, rows, trained.train_loss, installed)


DEFAULT_ABLATION: tuple[tuple[str, str], ...] = (
    ("ViT-B-32", "openai"),  # the reference figures' encoder
    ("ViT-B-32", "laion2b_s34b_b79k"),  # the engine's default
    ("ViT-B-16", "laion2b_s34b_b88k"),
    ("MobileCLIP2-S0", "dfndr2b"),
    ("MobileCLIP-S1", "datacompdr"),
)


def parse_encoders(spec: str) -> list[tuple[str, str]]:
    """'ViT-B-32:laion2b_s34b_b79k,MobileCLIP2-S0:dfndr2b' -> [(model, pretrained), ...];
    'default' -> DEFAULT_ABLATION."""
    if spec.strip() == "default":
        return list(DEFAULT_ABLATION)
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        model, sep, pre = item.partition(":")
        if not sep or not model or not pre:
            raise InputError(
                f"encoder {item!r} must be MODEL:PRETRAINED (a tag or a checkpoint path)"
            )
        out.append((model.strip(), pre.strip()))
    if not out:
        raise InputError("no encoders given for the ablation")
    return out


def ablation(
    images_root: str | Path,
    out_dir: str | Path,
    config: Config,
    encoders: list[tuple[str, str]],
    *,
    progress: ProgressFn = no_progress,
    echo: Any = None,
    **kwargs: Any,
) -> tuple[Path, Path, dict[str, dict[str, Any]]]:
    """The same protocol (split, head, report) over several encoders; one table."""
    say = echo or (lambda _s: None)
    out_dir = Path(out_dir)
    rows: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    constant = None
    for model, pre in encoders:
        cfg = config.replace(**{"scene.model": model, "scene.pretrained": pre, "scene.head": ""})
        slug = scene.head_candidates(cfg.scene)[0].removesuffix(".safetensors")
        try:
            res = train_scene(
                images_root, out_dir / slug, cfg, progress=progress, echo=say, **kwargs
            )
        except ExpertUnavailable as exc:
            skipped.append(f"{model}/{pre}: {exc}")
            say(f"skipped {model}/{pre}: {exc}")
            continue
        for name, row in res.rows.items():
            if "constant median" in name:
                constant = row
            else:
                rows[name] = row
        say(f"{model}/{pre}: avg MAE {res.test['avg_mae']:.3f}")
    if not rows:
        raise ExpertUnavailable("ablation: no encoder could run; " + "; ".join(skipped))
    if constant is not None:
        rows["constant median of train (ours)"] = constant
    md, js = write_report(
        out_dir,
        {"title": "Scene encoder ablation on FindingEmo", "facts": [f"encoders: {len(encoders)}"], "rows": rows,
         "notes": [f"skipped {s}" for s in skipped]},
        name="ablation",
    )  # fmt: skip
    return md, js, rows


def evaluate_scene_head(
    head_path: str | Path,
    images_root: str | Path,
    out_dir: str | Path,
    config: Config = Config(),
    *,
    annotations: str | Path | None = None,
    weights_dir: Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int | None = None,
    progress: ProgressFn = no_progress,
) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The test-split report for an existing head (for `moodsic eval findingemo`).

    Uses the head's own split seed and fractions, so its test images are the ones it never saw.
    """
    head = scene.load_head(head_path)
    training = head.meta.get("training", {})
    seed = int(training.get("seed", 0) if seed is None else seed)
    fractions = tuple(training.get("split", (0.8, 0.1, 0.1)))
    ref = scene.resolve_encoder(config.scene, weights_dir)
    scene.check_head_matches(head.meta, ref, None, Path(head_path).name)
    ann = read_annotations(annotations)
    split = split_by_image(ann["rel_path"].tolist(), seed=seed, fractions=fractions)  # type: ignore[arg-type]
    test_paths = ann["rel_path"].to_numpy()[split.test].tolist()
    cache = Path(cache_dir) if cache_dir else default_cache_dir() / "findingemo-embeddings"
    _, _, data = _embedded(config, weights_dir, Path(images_root), test_paths, cache, progress)
    if len(data.rel_paths) < 2:
        raise InputError(
            f"only {len(data.rel_paths)} FindingEmo test images found under {images_root}"
        )
    keep = {p: i for i, p in enumerate(data.rel_paths)}
    rows_idx = np.array([i for i in split.test if ann["rel_path"].iloc[i] in keep])
    y = ann[["v_ref", "a_ref"]].to_numpy(dtype=np.float64)[rows_idx]
    x = data.emb[[keep[ann["rel_path"].iloc[i]] for i in rows_idx]]
    pred, var = predict_head(head.head, x, config.scene.mc_passes)
    ours = metrics(pred, y)
    ours.update(calibration_check(var, pred, y))
    median = np.median(ann[["valence", "arousal"]].to_numpy()[split.train], axis=0)
    const = metrics(np.array([[median[0] / 3.0, median[1] / 3.0 - 1.0]]).repeat(len(y), 0), y)
    rows = {
        f"{ref.describe()} + head {Path(head_path).name}": ours,
        "constant median of train": const,
    }
    md, _ = write_report(
        out_dir,
        {"title": "Scene head on the FindingEmo test split", "rows": rows, "head": str(head_path),
         "facts": [f"test images on disk: {len(y)} of {len(split.test)}", f"split seed {seed}"]},
        name="findingemo_scene",
    )  # fmt: skip
    return md, rows
