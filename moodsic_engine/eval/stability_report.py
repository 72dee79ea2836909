"""The files `moodsic bench stability` writes: the Markdown report, its JSON twin and the
trade-off plot of the grid search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..fileio import write_text_atomic
from .figures import save_png
from .metrics import fmt, json_clean
from .provenance import provenance, provenance_markdown
from .stability import (
    GRID,
    LAG_WINDOW_S,
    REFERENCE,
    TOLERANCE_S,
    SeedResult,
    describe_reference,
    describe_setting,
    rank_key,
    stabilizer_setting,
)


def plot_tradeoff(
    results: list[dict[str, Any]],
    ours: dict[str, Any],
    reference: dict[str, Any],
    best: dict[str, Any],
    path: Path,
) -> Path:
    """Spurious switches/min against recall for every grid point, coloured by mean lag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5), constrained_layout=True)
    x = [r["spurious_per_min"] for r in results]
    y = [r["recall"] for r in results]
    c = [r["mean_lag_s"] if r["mean_lag_s"] is not None else np.nan for r in results]
    sc = ax.scatter(x, y, c=c, cmap="viridis", s=22, alpha=0.8)
    fig.colorbar(sc, ax=ax, label="mean boundary lag (s)")
    for name, s, marker in (
        ("ours", ours, "*"),
        ("reference", reference, "X"),
        ("best", best, "D"),
    ):
        ax.scatter(
            [s["spurious_per_min"]],
            [s["recall"]],
            marker=marker,
            s=160,
            color="red" if name == "ours" else "black",
            zorder=3,
        )
        ax.annotate(
            f"{name} (F1 {s['f1']:.2f})",
            (s["spurious_per_min"], s["recall"]),
            textcoords="offset points",
            xytext=(8, 4),
        )
    ax.set_xlabel("spurious switches per minute")
    ax.set_ylabel(f"boundary recall (+-{TOLERANCE_S:g} s)")
    ax.set_title("Stabilizer/segmenter settings: responsiveness vs flapping")
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def write_report(
    out: Path,
    config: Config,
    ours: dict[str, Any],
    ref: dict[str, Any],
    per_seed: list[SeedResult],
    unc: dict[str, Any],
    results: list[dict[str, Any]],
    best: dict[str, Any] | None,
    lines: list[str],
    run: dict[str, Any],
) -> Path:
    cols = ("precision", "recall", "f1", "spurious_per_min", "mean_lag_s", "n_pred", "hits")
    md = [
        "# Stability of the score (synthetic clips)",
        "",
        *(f"- {line}" for line in lines[:2]),
        f"- seeds {run['seed']}..{run['seed'] + run['seeds'] - 1}; boundaries scored against "
        f"the truth within +-{TOLERANCE_S:g} s; lag within +-{LAG_WINDOW_S:g} s",
        f"- reference: {describe_reference(REFERENCE)[1:-1]}",
        f"- ours: {describe_setting(config)[1:-1]}",
        f"- {lines[4]}",
        "",
        "| setting | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    rows = {"ours": ours, "reference": ref}
    if best is not None:
        rows["best of grid"] = best
    for name, s in rows.items():
        md.append(f"| {name} | " + " | ".join(fmt(s[k]) for k in cols) + " |")
    md += [
        "",
        "| seed | ours F1 | reference F1 | ours spurious/min | reference spurious/min |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in per_seed:
        md.append(
            f"| {r.seed} | {r.ours['f1']:.3f} | {r.reference['f1']:.3f} | "
            f"{r.ours['spurious_per_min']:.2f} | {r.reference['spurious_per_min']:.2f} |"
        )
    if results:
        md += ["", f"Grid: {len(results)} settings over {', '.join(GRID)}; the 10 best:", ""]
        md += [
            "| rank | f1 | spurious/min | lag s | " + " | ".join(GRID) + " |",
            "|---|" + "---:|" * (3 + len(GRID)),
        ]
        for i, r in enumerate(sorted(results, key=rank_key)[:10]):
            md.append(
                f"| {i + 1} | {r['f1']:.3f} | {r['spurious_per_min']:.2f} | {fmt(r['mean_lag_s'], 2)} | "
                + " | ".join(f"{v:g}" for v in r["setting"].values()) + " |"
            )  # fmt: skip
    prov = provenance(
        config,
        data={
            "synthetic": f"{run['seeds']} seeds x {run['clips']} clips x {run['seconds']:g} s, "
            f"first seed {run['seed']}, jitter x{run['jitter']:g}, "
            f"{run['uncertain_per_min']:g} uncertain spans/min"
        },
    )
    md += ["", *provenance_markdown(prov)]
    path = write_text_atomic(out / "stability.md", "\n".join(md))
    write_text_atomic(
        out / "stability.json",
        json.dumps(
            json_clean(
                {"ours": ours, "reference": ref,
                 "per_seed": [{"seed": r.seed, "ours": r.ours, "reference": r.reference}
                              for r in per_seed],
                 "uncertainty": {**unc, "above": {str(k): v for k, v in unc["above"].items()}},
                 "best": best, "grid": results,
                 "reference_setting": REFERENCE.__dict__, "ours_setting": stabilizer_setting(config),
                 "run": run, "provenance": prov}
            ),
            indent=2,
        ),
    )  # fmt: skip
    return path
