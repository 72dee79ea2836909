"""Fitting calibration files from labelled data (`eval veatic`, `eval findingemo`).

Each expert's raw variances, predictions and labels are gathered per sample, with the clip
(or image group) each sample came from. The calibration written is fitted on all of them;
the coverage and fused error reported are measured on held-out clips (k-fold by clip), so
the report does not grade a map on the data it was fitted to.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import (
    MIN_PER_BIN,
    Calibration,
    ExpertCalibration,
    coverage,
    fit_expert,
)
from .metrics import fmt

MAX_FOLDS = 5


@dataclass(frozen=True)
class Labelled:
    """One expert's labelled samples: raw variance, prediction and label [N, 2], the clip
    each sample belongs to and its number within the clip [N]."""

    name: str
    mode: str
    raw: np.ndarray
    pred: np.ndarray
    truth: np.ndarray
    group: np.ndarray
    index: np.ndarray

    @classmethod
    def join(cls, parts: list[Labelled]) -> Labelled:
        first = parts[0]
        return cls(
            first.name,
            first.mode,
            np.concatenate([p.raw for p in parts]),
            np.concatenate([p.pred for p in parts]),
            np.concatenate([p.truth for p in parts]),
            np.concatenate([p.group for p in parts]),
            np.concatenate([p.index for p in parts]),
        )

    def select(self, mask: np.ndarray) -> Labelled:
        return dataclasses.replace(
            self,
            raw=self.raw[mask],
            pred=self.pred[mask],
            truth=self.truth[mask],
            group=self.group[mask],
            index=self.index[mask],
        )


def fit_all(data: list[Labelled], source: str, *, min_per_bin: int = MIN_PER_BIN) -> Calibration:
    """A calibration with one entry per expert and mode, fitted on every sample given."""
    entries = []
    for d in data:
        entry = fit_expert(d.name, d.mode, d.raw, d.pred, d.truth, source=source,
                           min_per_bin=min_per_bin)  # fmt: skip
        entries.append(_with_tta_scale(entry, d))
    return Calibration(tuple(entries), "fitted", {"source": source})


def _with_tta_scale(entry: ExpertCalibration, d: Labelled) -> ExpertCalibration:
    """For EmoNet (face, trained): the face expert's own TTA scale refitted on these labels
    (`face.fit_tta_scale`), reported beside the map as the single number the map replaces.
    The raw face variance is floor + scale * spread, so spread = (raw - floor) / scale."""
    if d.name != "face" or d.mode != "trained" or not entry.n:
        return entry
    from ..calibration import EMONET_RMSE
    from ..config import FaceConfig
    from ..experts.face import fit_tta_scale

    cfg = FaceConfig()
    floor = (
        max(cfg.var_floor_v, EMONET_RMSE[8][0] ** 2),
        max(cfg.var_floor_a, EMONET_RMSE[8][1] ** 2),
    )
    ok = np.all(np.isfinite(d.raw) & np.isfinite(d.pred) & np.isfinite(d.truth), axis=1)
    spread = np.maximum(d.raw[ok] - np.asarray(floor), 0.0) / max(cfg.tta_var_scale, 1e-9)
    if not len(spread) or float(spread.mean()) < 1e-6:  # no TTA spread seen: nothing to fit
        return entry
    s_v, s_a = fit_tta_scale(spread, (d.pred[ok] - d.truth[ok]) ** 2, floor)
    notes = {**entry.notes, "tta_scale": [s_v, s_a], "tta_scale_before": cfg.tta_var_scale}
    return dataclasses.replace(entry, notes=notes)


def held_out(data: list[Labelled], *, min_per_bin: int = MIN_PER_BIN) -> dict[str, Any]:
    """k-fold by clip: each clip's samples are calibrated by a map fitted on the other clips.

    Returns, per expert, the raw and calibrated coverage on held-out samples, and for the
    fusion of every expert the squared error with raw and with calibrated variances (on the
    samples where all experts are present), beside each expert's own error there.
    """
    groups = np.unique(np.concatenate([d.group for d in data])) if data else np.zeros(0)
    k = min(MAX_FOLDS, len(groups))
    if k < 2:
        return {}
    fold_of = {g: i % k for i, g in enumerate(groups.tolist())}
    out: dict[str, Any] = {"folds": k, "experts": {}}
    calibrated: list[np.ndarray] = []
    for d in data:
        cal = np.full_like(d.raw, np.nan)
        fold = np.array([fold_of[g] for g in d.group.tolist()], dtype=np.int64)
        for f in range(k):
            train, test = fold != f, fold == f
            if not test.any():
                continue
            if train.sum() < 2:
                continue
            e = fit_expert(d.name, d.mode, d.raw[train], d.pred[train], d.truth[train],
                           min_per_bin=min_per_bin)  # fmt: skip
            cal[test, 0], cal[test, 1] = e.apply(d.raw[test, 0], d.raw[test, 1])
        ok = np.all(np.isfinite(cal), axis=1)
        out["experts"][d.name] = {
            "raw": coverage(d.raw[ok, 0], d.raw[ok, 1], d.pred[ok], d.truth[ok]),
            "calibrated": coverage(cal[ok, 0], cal[ok, 1], d.pred[ok], d.truth[ok]),
        }
        calibrated.append(cal)
    out["fusion"] = _fused_errors(data, calibrated)
    return out


def _fused_errors(data: list[Labelled], calibrated: list[np.ndarray]) -> dict[str, Any]:
    """Mean squared error (both axes) of each expert and of the inverse-variance fusion,
    raw and calibrated, on samples (group, row key) every expert has."""
    if len(data) < 2:
        return {}
    keys = [
        {(int(g), int(j)): i for i, (g, j) in enumerate(zip(d.group, d.index, strict=True))}
        for d in data
    ]
    common = set(keys[0]).intersection(*[set(k) for k in keys[1:]])
    common = {
        c
        for c in common
        if all(np.all(np.isfinite(cal[k[c]])) for cal, k in zip(calibrated, keys, strict=True))
    }
    if not common:
        return {}
    order = sorted(common)
    idx = [np.array([k[c] for c in order]) for k in keys]
    truth = data[0].truth[idx[0]]
    out: dict[str, Any] = {"n": len(order)}
    for d, i in zip(data, idx, strict=True):
        out[d.name] = float(np.mean((d.pred[i] - truth) ** 2))
    for label, variances in (
        ("fusion_raw", [d.raw for d in data]),
        ("fusion_calibrated", calibrated),
    ):
        num = np.zeros_like(truth)
        den = np.zeros_like(truth)
        for d, i, var in zip(data, idx, variances, strict=True):
            w = 1.0 / np.maximum(var[i], 1e-6)
            num += w * d.pred[i]
            den += w
        out[label] = float(np.mean((num / den - truth) ** 2))
    return out


def markdown(cal: Calibration, cv: dict[str, Any], path: str) -> list[str]:
    """The report section: the maps written, and how honest they are on held-out clips."""
    lines = [
        "## Calibration",
        "",
        f"Written to `{path}` (use it with `moodsic score --calibration {path}`, or put it in "
        "the weights folder as `calibration.json`). Share of errors within 1 and 2 standard "
        "deviations (nominal 68% and 95%)"
        + (f", on held-out clips ({cv['folds']}-fold by clip):" if cv else ", in-sample:"),
        "",
        "| expert | mode | samples | map V | map A | raw 1sd V/A | calibrated 1sd V/A | calibrated 2sd V/A |",
        "|---|---|---:|---|---|---|---|---|",
    ]
    for e in cal.experts:
        c = (cv.get("experts") or {}).get(e.name) if cv else None
        raw = c["raw"] if c else e.notes.get("raw", {})
        got = c["calibrated"] if c else e.notes
        lines.append(
            f"| {e.name} | {e.mode} | {e.n} | {_map_text(e.v)} | {_map_text(e.a)} | "
            f"{_pair(raw, 'within_1sd')} | {_pair(got, 'within_1sd')} | {_pair(got, 'within_2sd')} |"
        )
    fusion = cv.get("fusion") if cv else None
    if fusion:
        experts = ", ".join(f"{e.name} {fmt(fusion.get(e.name))}" for e in cal.experts)
        lines += [
            "",
            f"Mean squared error on the {fusion['n']} held-out samples every expert covers: "
            f"{experts}; fusion with raw variances {fmt(fusion['fusion_raw'])}, with calibrated "
            f"variances {fmt(fusion['fusion_calibrated'])}.",
        ]
    for e in cal.experts:
        if "tta_scale" in e.notes:
            s = e.notes["tta_scale"]
            lines.append(
                f"- face TTA scale refitted on these labels: V {s[0]:.3f}, A {s[1]:.3f} "
                f"(hand-set {e.notes['tta_scale_before']}); the map above replaces it"
            )
    return lines


def summary_lines(cal: Calibration, cv: dict[str, Any], path: str) -> list[str]:
    out = [f"  calibration written: {path}"]
    for e in cal.experts:
        c = (cv.get("experts") or {}).get(e.name) if cv else None
        got = c["calibrated"] if c else e.notes
        where = "held-out" if c else "in-sample"
        out.append(
            f"    {e.name} ({e.mode}, {e.n} samples): within 1 sd {_pair(got, 'within_1sd')} "
            f"({where}; nominal 68%)"
        )
    return out


def _pair(d: dict[str, Any], key: str) -> str:
    v, a = d.get(f"{key}_v"), d.get(f"{key}_a")
    if v is None or a is None:
        return "—"
    return f"{v:.0%} / {a:.0%}"


def _map_text(m: Any) -> str:
    if m.kind == "isotonic":
        return f"isotonic, {len(m.knots_raw)} knots, {m.knots_var[0]:.3g}..{m.knots_var[-1]:.3g}"
    return f"x{m.scale:.3g}" + (f", floor {m.floor:.3g}" if m.floor else "")


def from_series(series: Any, truth: np.ndarray, group: int) -> Labelled:
    """An ExpertSeries (raw variances) and the labels at its samples [N, 2] -> Labelled,
    keeping only samples where the expert is present and the label known."""
    ok = np.asarray(series.present, dtype=bool) & np.all(np.isfinite(truth), axis=1)
    idx = np.flatnonzero(ok)
    return Labelled(
        series.name,
        series.mode,
        np.stack([series.var_v, series.var_a], axis=1)[idx].astype(np.float64),
        np.stack([series.v, series.a], axis=1)[idx].astype(np.float64),
        np.asarray(truth, dtype=np.float64)[idx],
        np.full(len(idx), int(group), dtype=np.int64),
        idx.astype(np.int64),
    )


def by_expert(parts: list[Labelled]) -> list[Labelled]:
    """Parts of several clips joined per expert and mode, in first-seen order."""
    keys: dict[tuple[str, str], list[Labelled]] = {}
    for p in parts:
        keys.setdefault((p.name, p.mode), []).append(p)
    return [Labelled.join(v) for v in keys.values()]


def labels_at(t: np.ndarray, fps: Any, labels: np.ndarray) -> np.ndarray:
    """The rating of the frame each sample shows (frame k at k / fps) [N, 2]; NaN past the
    rated frames."""
    k = np.rint(np.asarray(t, dtype=np.float64) * float(fps)).astype(np.int64)
    out = np.full((len(k), 2), np.nan)
    inside = (k >= 0) & (k < len(labels))
    out[inside] = labels[k[inside]]
    return out


def write_calibration(
    out: Path, labelled: list[Labelled], summary_md: Path, source: str, used: Calibration
) -> list[str]:
    """Fit a calibration on every clip's raw variances, write `calibration.json` into `out`,
    and add its section (held-out coverage, fused error) to the summary file. Returns the
    lines for the command's summary."""
    from ..calibration import FILE_NAME, save_calibration
    from ..fileio import write_text_atomic

    data = [d for d in by_expert(labelled) if len(d.raw)]
    head = [f"  fusion used calibration: {used.label}"]
    if not data:
        return head
    cal = fit_all(data, source)
    path = save_calibration(Path(out) / FILE_NAME, cal)
    cv = held_out(data)
    section = markdown(cal, cv, str(path))
    text = summary_md.read_text(encoding="utf-8")
    write_text_atomic(summary_md, text + "\n\n" + "\n".join(section) + "\n")
    return head + summary_lines(cal, cv, str(path))
