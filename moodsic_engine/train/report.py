"""Reports for the scene head on FindingEmo: our figures beside the published reference ones."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..fileio import write_text_atomic
from .findingemo import LICENSE

# FindingEmo test split, FindingEmo units (V-MAE, A-MAE, average, rho_V, rho_A).
REFERENCE: dict[str, dict[str, float | None]] = {
    "reference: CLIP ViT-B/32 + MLP": {"v_mae": 1.068, "a_mae": 1.279, "avg_mae": 1.174, "rho_v": 0.664, "rho_a": 0.325},
    "reference: CLIP linear": {"v_mae": 1.110, "a_mae": 1.299, "avg_mae": 1.2045, "rho_v": None, "rho_a": None},
    "reference: constant median": {"v_mae": 1.509, "a_mae": 1.350, "avg_mae": 1.4295, "rho_v": None, "rho_a": None},
}  # fmt: skip

COLUMNS = (
    ("v_mae", "V-MAE"), ("a_mae", "A-MAE"), ("avg_mae", "avg MAE"), ("rho_v", "rho V"), ("rho_a", "rho A"),
    ("v_mae_ref", "V-MAE ref"), ("a_mae_ref", "A-MAE ref"), ("avg_mae_ref", "avg ref"),
)  # fmt: skip


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _ref_scale(row: dict[str, Any]) -> dict[str, Any]:
    """Reference rows are in FindingEmo units; both axes span 6 units = 2 reference units."""
    out = dict(row)
    for key in ("v_mae", "a_mae", "avg_mae"):
        if out.get(key) is not None and f"{key}_ref" not in out:
            out[f"{key}_ref"] = out[key] / 3.0
    return out


def table(rows: dict[str, dict[str, Any]], with_reference: bool = True) -> str:
    """A markdown table, our rows first, then the published reference figures."""
    all_rows = dict(rows)
    if with_reference:
        all_rows.update({k: _ref_scale(v) for k, v in REFERENCE.items()})
    head = "| model | " + " | ".join(label for _, label in COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(COLUMNS)
    lines = [head, sep]
    for name, row in all_rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(row.get(k)) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def write_report(
    out_dir: str | Path, data: dict[str, Any], name: str = "report"
) -> tuple[Path, Path]:
    """`<name>.md` (human) and `<name>.json` (everything, machine-readable), written atomically."""
    out = Path(out_dir)
    rows: dict[str, dict[str, Any]] = data["rows"]
    md = [f"# {data.get('title', 'Scene head on FindingEmo')}", ""]
    md += [f"- {line}" for line in data.get("facts", [])]
    md += [
        "",
        "Test split, FindingEmo units (valence -3..3, arousal 0..6); 'ref' columns on the reference scale [-1, 1].",
        "",
    ]
    md += [table(rows), ""]
    if data.get("notes"):
        md += [f"- {line}" for line in data["notes"]]
        md.append("")
    md += [
        f"Data licence: {LICENSE}. Reference figures: published FindingEmo test-split results.",
        "",
    ]
    md_path = write_text_atomic(out / f"{name}.md", "\n".join(md))
    json_path = write_text_atomic(
        out / f"{name}.json",
        json.dumps(_clean({**data, "reference": REFERENCE, "license": LICENSE}), indent=2),
    )
    return md_path, json_path
