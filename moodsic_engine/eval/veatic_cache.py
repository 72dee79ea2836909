"""The model-dependent part of a VEATIC evaluation and its cache.

Expert outputs are cached per video (npz keyed by a video fingerprint, the sampling and
expert config, and the weights' fingerprints), so running again with other fusion or
stabilizer settings re-fuses (`refuse`) without running a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..calibration import Calibration, calibration_for
from ..config import Config
from ..experts import ExpertSeries, LoadedExperts
from ..fileio import atomic_path
from ..fusion import fuse
from ..stabilize import stabilize
from .metrics import json_clean
from .provenance import file_fingerprint

CACHE_FORMAT = "moodsic.veatic-cache/1"


@dataclass(frozen=True)
class Perception:
    """The model-dependent part of an analysis: what the cache holds."""

    t: np.ndarray
    series: tuple[ExpertSeries, ...]
    cuts: tuple[float, ...]
    fps: Fraction
    duration_s: float
    frames: int
    modes: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def face_coverage(self) -> float | None:
        for s in self.series:
            if s.name == "face":
                return float(np.mean(s.present)) if len(s.present) else 0.0
        return None

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "t": self.t,
            "cuts": np.asarray(self.cuts, dtype=np.float64),
        }
        for s in self.series:
            for attr in ("v", "a", "var_v", "var_a", "present"):
                arrays[f"{s.name}.{attr}"] = np.asarray(getattr(s, attr))
            if s.faces is not None:
                arrays[f"{s.name}.faces"] = np.asarray(s.faces)
        meta = {
            "format": CACHE_FORMAT,
            "names": [s.name for s in self.series],
            "modes": self.modes,
            "info": {s.name: json_clean(s.info) for s in self.series},
            "fps": [self.fps.numerator, self.fps.denominator],
            "duration_s": self.duration_s,
            "frames": self.frames,
            "unavailable": self.unavailable,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: Path) -> Perception | None:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != CACHE_FORMAT:
                    return None
                t = z["t"]
                series = []
                for name in meta["names"]:
                    faces = z[f"{name}.faces"] if f"{name}.faces" in z.files else None
                    series.append(
                        ExpertSeries(
                            name=name,
                            t=t,
                            v=z[f"{name}.v"],
                            a=z[f"{name}.a"],
                            var_v=z[f"{name}.var_v"],
                            var_a=z[f"{name}.var_a"],
                            present=z[f"{name}.present"].astype(bool),
                            faces=faces,
                            mode=meta["modes"].get(name, "trained"),
                            info=meta["info"].get(name, {}),
                        )
                    )
                return cls(
                    t=t,
                    series=tuple(series),
                    cuts=tuple(float(c) for c in z["cuts"]),
                    fps=Fraction(*meta["fps"]),
                    duration_s=float(meta["duration_s"]),
                    frames=int(meta["frames"]),
                    modes=dict(meta["modes"]),
                    unavailable=dict(meta["unavailable"]),
                )
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None  # a damaged cache entry is recomputed, never trusted


def perceive(video: str | Path, experts: LoadedExperts, config: Config) -> Perception:
    """Run sampling and the experts once (via the pipeline), keeping the raw expert series."""
    from ..pipeline import analyze_video

    # Near-unbounded clamps here: the real fusion clamps are applied when re-fusing, so the
    # cache does not depend on fusion settings.
    # Raw variances too (no calibration): `eval veatic` fits its calibration on them.
    loose = config.replace(
        **{"fusion.var_floor": 1e-12, "fusion.var_ceiling": 1e12, "fusion.calibration": "none"}
    )
    a = analyze_video(video, experts, loose)
    return Perception(
        t=a.t,
        series=a.series,
        cuts=a.cuts,
        fps=a.video.fps,
        duration_s=a.video.duration_s,
        frames=a.video.frames,
        modes=dict(a.modes),
        unavailable=dict(a.unavailable),
    )


def refuse(
    p: Perception, config: Config, calibration: Calibration | None = None
) -> dict[str, np.ndarray]:
    """Every output to score, [N, 2] with NaN where absent: each expert, 'fusion', 'stable'.
    The cached raw variances go through `calibration` (default: the one `config` names)."""
    out: dict[str, np.ndarray] = {}
    cal = calibration if calibration is not None else calibration_for(config)
    fl, ceil = config.fusion.var_floor, config.fusion.var_ceiling
    clean = [cal.apply(s).sanitized(fl, ceil) for s in p.series]
    for s in clean:
        va = np.stack([s.v, s.a], axis=1).astype(np.float64)
        va[~s.present] = np.nan
        out[s.name] = va
    fused, var = fuse(clean, config.fusion)
    stable, _ = stabilize(p.t, fused, var, config.stabilize, config.sample.sample_fps)
    out["fusion"] = fused
    out["stable"] = stable
    return out


def cache_key(video: Path, config: Config, names: list[str], ident: dict[str, Any]) -> str:
    """Video fingerprint + sampling config + each expert's config section + weights identity."""
    sections = {
        n: dataclasses.asdict(getattr(config, n)) if hasattr(config, n) else {} for n in names
    }
    blob = json.dumps(
        {
            "format": CACHE_FORMAT,
            "engine": __version__,
            "video": file_fingerprint(video),
            "sample": dataclasses.asdict(config.sample),
            "experts": sorted(names),
            "sections": json_clean(sections),
            "ident": json_clean(ident),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]
