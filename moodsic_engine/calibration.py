"""Calibrated uncertainty, the same way for every expert.

Each expert reports a raw spread per sample and axis (MC-dropout variance, test-time
augmentation spread, prompt-softmax entropy mapped to a variance, the film-grammar cue's
own variance). A calibration maps that raw spread to the squared error the expert is
expected to make, per axis, so inverse-variance fusion weighs experts by how wrong they
really are. A calibration file (`moodsic.calibration/1`, JSON) holds one map per expert and
mode; `moodsic eval veatic` and `moodsic eval findingemo` fit and write one, `score
--calibration FILE` uses it, and a `calibration.json` in the weights folder is used when no
file is named. Without any file, the built-in defaults below (published error figures, each
with its source) apply.

Maps (`AxisMap`), all monotone non-decreasing in the raw spread, never below `floor`:

- `scale`: var = scale * raw (the moment-matched recipe: mean(var) == mean(squared error)),
  fitted when there are too few samples for more;
- `isotonic`: raw spread binned by quantile, mean squared error per bin, made
  non-decreasing by pool-adjacent-violators; linear in log(raw) between the bins' centres,
  flat below the first, proportional to raw above the last (more doubt than was ever
  seen means proportionally more error).

Everything here is numpy only: no model is imported.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from .config import Config
    from .experts.base import ExpertSeries

FORMAT = "moodsic.calibration/1"
FILE_NAME = "calibration.json"  # looked for in the weights folder
MAX_FILE_BYTES = 1 << 20
MAX_KNOTS = 256
MIN_PER_BIN = 20  # samples per bin of an isotonic fit; fewer samples in all: a scale fit
MAX_BINS = 12
RAW_EPS = 1e-9  # raw spreads are clipped here before logs


def mae_to_mse(mae: float) -> float:
    """Mean squared error of a zero-mean Gaussian error with this mean absolute error."""
    return math.pi / 2.0 * mae * mae


# ----------------------------------------------------------------------------- published figures
# Each number with its source; squared errors on the reference scale [-1, 1].
#
# EmoNet (Toisoul, Kossaifi, Bulat, Tzimiropoulos & Pantic, "Estimation of continuous valence
# and arousal levels from faces in naturalistic conditions", Nature Machine Intelligence 3,
# 2021), cleaned AffectNet test set, as published in the authors' repository README
# (github.com/face-analysis/emonet, "Results on AffectNet cleaned set"): 8 classes: valence
# RMSE 0.29, arousal RMSE 0.27; 5 classes: 0.24 and 0.24. AffectNet V/A is on [-1, 1].
EMONET_RMSE = {8: (0.29, 0.27), 5: (0.24, 0.24)}
# CLIP ViT-B/32 embedding + MLP head regressing V/A on the FindingEmo test split (Mertens et
# al., "FindingEmo: An Image Dataset for Emotion Recognition in the Wild", NeurIPS 2024
# Datasets & Benchmarks; figures of the reference implementation, as in
# moodsic_engine/train/report.py REFERENCE): V-MAE 1.068, A-MAE 1.279 in FindingEmo units
# (6 units = 2 reference units, so / 3), and a constant predictor (train median): 1.509, 1.350.
FINDINGEMO_CLIP_MLP_MAE = (1.068 / 3.0, 1.279 / 3.0)
FINDINGEMO_CONSTANT_MAE = (1.509 / 3.0, 1.350 / 3.0)
# A zero-shot prompt score is never better than a head trained on labels for the same
# embedding (its best case), and never worse than knowing nothing about the image (a
# constant guess). MAE -> MSE assumes Gaussian errors (MSE = pi/2 MAE^2).
ZERO_SHOT_VAR_MIN = tuple(round(mae_to_mse(m), 4) for m in FINDINGEMO_CLIP_MLP_MAE)  # .199, .286
ZERO_SHOT_VAR_MAX = tuple(round(mae_to_mse(m), 4) for m in FINDINGEMO_CONSTANT_MAE)  # .397, .318


# ----------------------------------------------------------------------------- maps
@dataclass(frozen=True)
class AxisMap:
    """Raw spread -> expected squared error on one axis (see the module docstring)."""

    kind: str = "scale"  # "scale" or "isotonic"
    scale: float = 1.0
    floor: float = 0.0
    knots_raw: tuple[float, ...] = ()
    knots_var: tuple[float, ...] = ()

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated variance for raw spreads [N] (NaN and inf pass through as inf)."""
        r = np.asarray(raw, dtype=np.float64)
        bad = ~np.isfinite(r)
        r = np.where(bad, 0.0, np.maximum(r, 0.0))
        if self.kind == "isotonic" and self.knots_raw:
            kr = np.asarray(self.knots_raw)
            kv = np.asarray(self.knots_var)
            lr = np.log(np.maximum(r, RAW_EPS))
            out = np.interp(lr, np.log(np.maximum(kr, RAW_EPS)), kv)
            above = r > kr[-1]
            out = np.where(above, kv[-1] * r / max(kr[-1], RAW_EPS), out)
        else:
            out = self.scale * r
        out = np.maximum(out, self.floor)
        return np.where(bad, np.inf, out)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "floor": self.floor}
        if self.kind == "isotonic":
            d["knots_raw"] = list(self.knots_raw)
            d["knots_var"] = list(self.knots_var)
        else:
            d["scale"] = self.scale
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str) -> AxisMap:
        if not isinstance(d, dict):
            raise InputError(f"{where} must be an object")
        kind = d.get("kind")
        floor = _number(d.get("floor", 0.0), f"{where}.floor", minimum=0.0)
        if kind == "scale":
            return cls("scale", _number(d.get("scale"), f"{where}.scale", minimum=0.0), floor)
        if kind == "isotonic":
            kr = _numbers(d.get("knots_raw"), f"{where}.knots_raw")
            kv = _numbers(d.get("knots_var"), f"{where}.knots_var")
            if not kr or len(kr) != len(kv) or len(kr) > MAX_KNOTS:
                raise InputError(
                    f"{where}: knots_raw and knots_var must be 1 to {MAX_KNOTS} numbers of equal length"
                )
            if any(b <= a for a, b in zip(kr, kr[1:], strict=False)):
                raise InputError(f"{where}.knots_raw must increase strictly")
            if any(b < a for a, b in zip(kv, kv[1:], strict=False)):
                raise InputError(f"{where}.knots_var must not decrease")
            return cls("isotonic", 1.0, floor, tuple(kr), tuple(kv))
        raise InputError(f"{where}.kind must be 'scale' or 'isotonic', not {kind!r}")


IDENTITY = AxisMap("scale", 1.0, 0.0)


def _number(x: Any, where: str, *, minimum: float | None = None) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise InputError(f"{where} must be a finite number")
    if minimum is not None and x < minimum:
        raise InputError(f"{where} must be >= {minimum}")
    return float(x)


def _numbers(xs: Any, where: str) -> list[float]:
    if not isinstance(xs, list):
        raise InputError(f"{where} must be a list of numbers")
    return [_number(x, f"{where}[{i}]", minimum=0.0) for i, x in enumerate(xs)]


def _pav(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted pool-adjacent-violators: the closest non-decreasing sequence."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks])


def fit_scale(
    raw: np.ndarray, sq_err: np.ndarray, floor: float = 0.0, *, eps: float = RAW_EPS
) -> AxisMap:
    """The scale s with mean(s * raw) == mean(squared error) (moment matching; the mean raw
    spread is taken as at least `eps`)."""
    r = np.asarray(raw, dtype=np.float64)
    e = np.asarray(sq_err, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(e)
    if not ok.any():
        return AxisMap("scale", 1.0, floor)
    s = float(e[ok].mean() / max(float(np.maximum(r[ok], 0.0).mean()), eps))
    return AxisMap("scale", s, floor)


def fit_axis(
    raw: np.ndarray,
    sq_err: np.ndarray,
    *,
    floor: float = 1e-4,
    min_per_bin: int = MIN_PER_BIN,
    max_bins: int = MAX_BINS,
) -> AxisMap:
    """Fit raw spread [N] -> expected squared error [N] (isotonic when the data allow).

    With fewer than 2 * `min_per_bin` usable samples, or a raw spread that never changes,
    the fit is a single moment-matched scale.
    """
    r = np.asarray(raw, dtype=np.float64).ravel()
    e = np.asarray(sq_err, dtype=np.float64).ravel()
    ok = np.isfinite(r) & np.isfinite(e)
    r, e = np.maximum(r[ok], 0.0), e[ok]
    n = len(r)
    if n < 2 * min_per_bin or np.ptp(np.log(np.maximum(r, RAW_EPS))) < 1e-9:
        return fit_scale(r, e, floor)
    order = np.argsort(r, kind="stable")
    r, e = r[order], e[order]
    k = int(min(max_bins, n // min_per_bin))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    centres, means, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        # the geometric mean: knots are interpolated in log(raw)
        centres.append(float(np.exp(np.mean(np.log(np.maximum(r[lo:hi], RAW_EPS))))))
        means.append(float(e[lo:hi].mean()))
        counts.append(hi - lo)
    mono = _pav(np.array(means), np.array(counts, dtype=np.float64))
    kr: list[float] = []
    kv: list[float] = []
    for c, v in zip(centres, mono.tolist(), strict=True):
        v = max(v, floor)
        if kr and c <= kr[-1] * (1 + 1e-12):  # ties in raw: one knot, the larger value
            kv[-1] = max(kv[-1], v)
            continue
        kr.append(c)
        kv.append(v)
    return AxisMap("isotonic", 1.0, floor, tuple(kr), tuple(kv))


# ----------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class ExpertCalibration:
    """One expert in one mode: a map per axis, and where it came from."""

    name: str
    mode: str
    v: AxisMap
    a: AxisMap
    n: int = 0  # samples it was fitted on (0: published figures)
    source: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def apply(self, var_v: np.ndarray, var_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.v(var_v), self.a(var_a)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "n": self.n,
            "source": self.source,
            "v": self.v.to_dict(),
            "a": self.a.to_dict(),
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Calibration:
    """Every expert's map; `label` says in one line what this calibration is."""

    experts: tuple[ExpertCalibration, ...] = ()
    label: str = "none (raw spreads)"
    info: dict[str, Any] = field(default_factory=dict)

    def find(self, name: str, mode: str) -> ExpertCalibration | None:
        return next((e for e in self.experts if e.name == name and e.mode == mode), None)

    def apply(self, series: ExpertSeries) -> ExpertSeries:
        """The series with calibrated variances; its info says which calibration applied."""
        entry = self.find(series.name, series.mode)
        info = dict(series.info)
        if entry is None:
            info["calibration"] = "none for this expert (raw spread)"
            return dataclasses.replace(series, info=info)
        var_v, var_a = entry.apply(series.var_v, series.var_a)
        info["calibration"] = self.label + (f" ({entry.source})" if entry.source else "")
        return dataclasses.replace(series, var_v=var_v, var_a=var_a, info=info)

    def merged(self, other: Calibration, label: str | None = None) -> Calibration:
        """These entries, with `other`'s replacing any of the same expert and mode."""
        keep = [e for e in self.experts if other.find(e.name, e.mode) is None]
        return Calibration((*keep, *other.experts), label or other.label, dict(other.info))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "info": self.info,
            "experts": [e.to_dict() for e in self.experts],
        }


NO_CALIBRATION = Calibration()


def builtin_calibration() -> Calibration:
    """Defaults from published error figures (sources next to the numbers above): no expert
    is taken to be more certain than its published error. Experts with no published figure
    (the film-grammar rules, the face fallback) keep their own variance."""
    v8, a8 = (r * r for r in EMONET_RMSE[8])
    return Calibration(
        (
            ExpertCalibration(
                "face",
                "trained",
                AxisMap("scale", 1.0, v8),
                AxisMap("scale", 1.0, a8),
                source="floor: EmoNet 8-class RMSE on AffectNet, Toisoul et al. 2021",
            ),
            ExpertCalibration(
                "scene",
                "zero-shot",
                AxisMap("scale", 1.0, ZERO_SHOT_VAR_MIN[0]),
                AxisMap("scale", 1.0, ZERO_SHOT_VAR_MIN[1]),
                source="floor: CLIP ViT-B/32 + MLP on FindingEmo, Mertens et al. 2024",
            ),
        ),  # fmt: skip
        "built-in published figures",
    )


# ----------------------------------------------------------------------------- files
def save_calibration(path: str | os.PathLike[str], cal: Calibration) -> Path:
    """Write a calibration file atomically."""
    from .fileio import write_text_atomic

    return write_text_atomic(path, json.dumps(_clean(cal.to_dict()), indent=2) + "\n")


def load_calibration(path: str | os.PathLike[str]) -> Calibration:
    """Read and check a calibration file; InputError in one line if it cannot be used."""
    from .fileio import regular_file

    p = regular_file(path, "calibration file", max_bytes=MAX_FILE_BYTES)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"calibration file {p} is not JSON: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read calibration file {p}: {exc.strerror or exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"calibration file {p} is not a {FORMAT} file")
    rows = data.get("experts")
    if not isinstance(rows, list) or len(rows) > 64:
        raise InputError(f"calibration file {p}: 'experts' must be a list")
    entries = []
    for i, row in enumerate(rows):
        where = f"calibration file {p.name}: experts[{i}]"
        if not isinstance(row, dict):
            raise InputError(f"{where} must be an object")
        name, mode = row.get("name"), row.get("mode")
        if not isinstance(name, str) or not isinstance(mode, str) or not name or not mode:
            raise InputError(f"{where} needs a name and a mode")
        n = row.get("n", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"{where}.n must be a whole number >= 0")
        entries.append(
            ExpertCalibration(
                name,
                mode,
                AxisMap.from_dict(row.get("v"), f"{where}.v"),
                AxisMap.from_dict(row.get("a"), f"{where}.a"),
                n,
                str(row.get("source", "")),
                row.get("notes") if isinstance(row.get("notes"), dict) else {},
            )
        )
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    return Calibration(tuple(entries), f"file {p}", info)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ----------------------------------------------------------------------------- which one
def find_beside_weights(weights_dir: str | os.PathLike[str] | None) -> Path | None:
    """`calibration.json` in the weights folder (--weights-dir, $MOODSIC_WEIGHTS, default)."""
    from .weights import resolve_weights_dir

    p = resolve_weights_dir(weights_dir) / FILE_NAME
    return p if p.is_file() else None


def resolve_config(config: Config, weights_dir: str | os.PathLike[str] | None = None) -> Config:
    """Config whose `fusion.calibration` names what the run will use: the file given, else a
    calibration.json beside the weights, else `builtin`. The named file is checked now, so a
    bad one stops the run before any decoding."""
    spec = config.fusion.calibration.strip()
    if spec in ("none", "builtin"):
        return config
    if spec:
        load_calibration(spec)
        return config.replace(**{"fusion.calibration": str(Path(spec).expanduser())})
    found = find_beside_weights(weights_dir)
    chosen = str(found) if found is not None else "builtin"
    if found is not None:
        load_calibration(found)
    return config.replace(**{"fusion.calibration": chosen})


def calibration_for(config: Config) -> Calibration:
    """The calibration `fusion.calibration` names: a file, `builtin`, `none`, or empty (a
    calibration.json beside the default weights folder, else the built-in figures). A file
    holds only the experts it was fitted for; the others keep the built-in figures."""
    spec = config.fusion.calibration.strip()
    if spec == "none":
        return NO_CALIBRATION
    builtin = builtin_calibration()
    if spec == "builtin":
        return builtin
    path = Path(spec).expanduser() if spec else find_beside_weights(None)
    if path is None:
        return builtin
    return builtin.merged(load_calibration(path))


# ----------------------------------------------------------------------------- fitting
def fit_expert(
    name: str,
    mode: str,
    raw_var: np.ndarray,
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    source: str = "",
    min_per_bin: int = MIN_PER_BIN,
) -> ExpertCalibration:
    """Fit one expert from its raw variances [N, 2], predictions [N, 2] and labels [N, 2]
    (rows with a NaN anywhere are left out)."""
    rv = np.asarray(raw_var, dtype=np.float64).reshape(-1, 2)
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    y = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
    ok = np.all(np.isfinite(rv) & np.isfinite(p) & np.isfinite(y), axis=1)
    sq = (p[ok] - y[ok]) ** 2
    maps = [fit_axis(rv[ok, j], sq[:, j], min_per_bin=min_per_bin) for j in range(2)]
    entry = ExpertCalibration(name, mode, maps[0], maps[1], int(ok.sum()), source)
    notes = coverage(entry.v(rv[ok, 0]), entry.a(rv[ok, 1]), p[ok], y[ok])
    notes["raw"] = coverage(rv[ok, 0], rv[ok, 1], p[ok], y[ok])
    return dataclasses.replace(entry, notes=notes)


def coverage(var_v: np.ndarray, var_a: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> dict:
    """Share of samples whose error lies within 1 and 2 standard deviations, per axis, and
    the mean Gaussian negative log-likelihood: how honest the variances are."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    y = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
    out: dict[str, Any] = {"n": int(len(p))}
    for j, (ax, var) in enumerate((("v", var_v), ("a", var_a))):
        var = np.maximum(np.asarray(var, dtype=np.float64), RAW_EPS)
        err = np.abs(p[:, j] - y[:, j])
        ok = np.isfinite(err) & np.isfinite(var)
        if not ok.any():
            continue
        sd = np.sqrt(var[ok])
        out[f"within_1sd_{ax}"] = float(np.mean(err[ok] <= sd))
        out[f"within_2sd_{ax}"] = float(np.mean(err[ok] <= 2 * sd))
        out[f"nll_{ax}"] = float(
            np.mean(0.5 * (np.log(2 * np.pi * var[ok]) + err[ok] ** 2 / var[ok]))
        )
    return out


def entropy_variance(
    probs: np.ndarray, scores: np.ndarray, var_min: float, var_max: float
) -> np.ndarray:
    """Zero-shot prompt softmax [B, P] over prompts scored `scores` [P] -> variance [B].

    Probabilities are summed per score level (prompts that say the same thing are not
    doubt), and the level distribution's entropy, normalised to [0, 1], moves the variance
    from `var_min` (one level certain) to `var_max` (every level equally likely).
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1, len(scores))
    s = np.asarray(scores, dtype=np.float64)
    levels = np.unique(s)
    if len(levels) < 2:
        return np.full(len(p), float(var_min))
    q = np.stack([p[:, s == lv].sum(axis=1) for lv in levels], axis=1)
    q = q / np.maximum(q.sum(axis=1, keepdims=True), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=1) / math.log(len(levels))
    return var_min + (var_max - var_min) * np.clip(h, 0.0, 1.0)
