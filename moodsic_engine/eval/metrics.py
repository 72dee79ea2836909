"""Agreement metrics between predictions and labels (V/A on the reference scale [-1, 1]).

Correlations are None where they are undefined (fewer than 3 points, or a constant series)
rather than NaN, so reports show a dash instead of a misleading number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _clean(pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if pred.shape != y.shape:
        raise ValueError(f"prediction has {pred.size} values, labels {y.size}")
    ok = np.isfinite(pred) & np.isfinite(y)
    return pred[ok], y[ok]


def mae(pred: np.ndarray, y: np.ndarray) -> float | None:
    p, t = _clean(pred, y)
    return float(np.mean(np.abs(p - t))) if len(p) else None


def pearson(pred: np.ndarray, y: np.ndarray) -> float | None:
    p, t = _clean(pred, y)
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return None
    r = float(np.corrcoef(p, t)[0, 1])
    return r if math.isfinite(r) else None


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as Spearman's rho needs."""
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def spearman(pred: np.ndarray, y: np.ndarray) -> float | None:
    p, t = _clean(pred, y)
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return None
    return pearson(_ranks(p), _ranks(t))


def ccc(pred: np.ndarray, y: np.ndarray) -> float | None:
    """Lin's concordance correlation coefficient (population moments, ddof = 0)."""
    p, t = _clean(pred, y)
    if len(p) < 2:
        return None
    mp, mt = p.mean(), t.mean()
    vp, vt = p.var(), t.var()
    cov = float(np.mean((p - mp) * (t - mt)))
    den = vp + vt + (mp - mt) ** 2
    if den <= 0:
        return None
    return float(2.0 * cov / den)


def va_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """V-MAE, A-MAE, their average, Spearman rho, Pearson r and CCC per axis.

    `pred` and `y` are [N, 2]; rows where either has a NaN are left out (per axis), and `n`
    counts the rows where both axes are usable.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    y = np.asarray(y, dtype=np.float64).reshape(-1, 2)
    out: dict[str, Any] = {
        "n": int(np.sum(np.all(np.isfinite(pred), axis=1) & np.all(np.isfinite(y), axis=1)))
    }
    for j, ax in enumerate(("v", "a")):
        out[f"{ax}_mae"] = mae(pred[:, j], y[:, j])
        out[f"rho_{ax}"] = spearman(pred[:, j], y[:, j])
        out[f"r_{ax}"] = pearson(pred[:, j], y[:, j])
        out[f"ccc_{ax}"] = ccc(pred[:, j], y[:, j])
    v, a = out["v_mae"], out["a_mae"]
    out["avg_mae"] = (v + a) / 2 if v is not None and a is not None else None
    return out


METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("v_mae", "V-MAE"), ("a_mae", "A-MAE"), ("avg_mae", "avg MAE"),
    ("rho_v", "rho V"), ("rho_a", "rho A"), ("r_v", "r V"), ("r_a", "r A"),
    ("ccc_v", "CCC V"), ("ccc_a", "CCC A"), ("n", "n"),
)  # fmt: skip


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown_table(
    rows: dict[str, dict[str, Any]], columns: tuple[tuple[str, str], ...] = METRIC_COLUMNS
) -> str:
    head = "| | " + " | ".join(label for _, label in columns) + " |"
    sep = "|---|" + "---:|" * len(columns)
    lines = [head, sep]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(row.get(k)) for k, _ in columns) + " |")
    return "\n".join(lines)


def json_clean(obj: Any) -> Any:
    """Plain JSON: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_clean(obj.tolist())
    if isinstance(obj, np.generic):
        return json_clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
