"""What a report was made with: versions, config, weights (fingerprints) and data.

Weights are identified by `weights.file_fingerprint` hashes (size plus the first and
last MiB): cheap on a 600 MB checkpoint, and enough to tell two files apart.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config
from ..ffmpeg import tool_version
from ..weights import file_fingerprint

PACKAGES = (
    "numpy", "scipy", "av", "torch", "open_clip_torch", "mediapipe", "opencv-contrib-python",
    "matplotlib", "findingemo-light",
)  # fmt: skip


def versions() -> dict[str, str]:
    out = {
        "moodsic": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    ffmpeg = tool_version("ffmpeg")
    if ffmpeg:
        out["ffmpeg"] = ffmpeg
    return out


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_info(
    config: Config, weights_dir: Path | None, names: tuple[str, ...] | list[str]
) -> dict[str, Any]:
    """For each expert: the weight files it would use and their fingerprints (no model loads)."""
    from ..experts.registry import expert_spec

    out: dict[str, Any] = {}
    for name in names:
        entry: dict[str, Any] = {}
        try:
            if expert_spec(name).kind == "rules":
                entry["weights"] = f"none ({expert_spec(name).summary})"
            elif name == "face":
                from ..experts import face

                ckpt = face.find_checkpoint(config.face, weights_dir)
                entry["emonet"] = (
                    {"path": str(ckpt), "fingerprint": file_fingerprint(ckpt)}
                    if ckpt
                    else "not found (landmark fallback)"
                )
                det = config.face.detector
                entry["detector"] = (
                    {"path": det, "fingerprint": file_fingerprint(det)}
                    if det and Path(det).is_file()
                    else "bundled MediaPipe short-range model"
                )
            elif name == "scene":
                from ..experts import scene

                ref = scene.resolve_encoder(config.scene, weights_dir, need_weights=False)
                entry["encoder"] = ref.describe()
                if ref.checkpoint is not None:
                    entry["encoder_fingerprint"] = file_fingerprint(ref.checkpoint)
                head = scene.find_head(config.scene, weights_dir)
                entry["head"] = (
                    {"path": str(head), "fingerprint": file_fingerprint(head)}
                    if head
                    else "none (zero-shot prompts)"
                )
        except Exception as exc:  # noqa: BLE001 - provenance never stops a report
            entry["error"] = " ".join(str(exc).split())
        out[name] = entry
    return out


def provenance(
    config: Config,
    *,
    weights_dir: Path | None = None,
    experts: tuple[str, ...] | list[str] = (),
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "versions": versions(),
        "config": config.to_dict(),
        "weights_dir": str(weights_dir) if weights_dir else None,
        "weights": weights_info(config, weights_dir, experts) if experts else {},
        "data": data or {},
    }


def provenance_markdown(prov: dict[str, Any]) -> list[str]:
    """A 'Reproduce' section for a markdown report (the full config goes in the JSON/TOML)."""
    lines = ["## Reproduce", ""]
    v = prov.get("versions", {})
    lines.append("- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    for name, entry in prov.get("weights", {}).items():
        lines.append(f"- weights {name}: {entry}")
    for key, val in prov.get("data", {}).items():
        lines.append(f"- data {key}: {val}")
    cfg = prov.get("config", {})
    short = {
        k: cfg[k]
        for k in ("seed", "experts", "sample", "fusion", "stabilize", "segment")
        if k in cfg
    }
    lines.append(f"- config (full tree in the JSON): {short}")
    lines.append("")
    return lines
