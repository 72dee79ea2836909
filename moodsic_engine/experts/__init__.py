"""PERCEIVE: the expert registry. Expert modules are imported lazily, so a grammar-only
run never imports torch."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ExpertUnavailable, InputError
from .base import (
    Availability,
    ClipContext,
    Estimates,
    Expert,
    ExpertSeries,
    FrameBatch,
)

EXPERT_NAMES: tuple[str, ...] = ("scene", "face", "grammar")

__all__ = [
    "EXPERT_NAMES",
    "Availability",
    "ClipContext",
    "Estimates",
    "Expert",
    "ExpertSeries",
    "FrameBatch",
    "LoadedExperts",
    "load_experts",
    "probe_experts",
    "verify_experts",
]


def _module(name: str):  # noqa: ANN202 - a module object
    if name not in EXPERT_NAMES:
        raise InputError(f"unknown expert {name!r} (choose from {', '.join(EXPERT_NAMES)})")
    return importlib.import_module(f"{__name__}.{name}")


def probe_experts(
    config: Config, weights_dir: Path | None = None, names: tuple[str, ...] = EXPERT_NAMES
) -> list[Availability]:
    """Whether each expert could run, without loading models."""
    return [_module(n).probe(config, weights_dir) for n in names]


def verify_experts(
    config: Config, weights_dir: Path | None = None, names: tuple[str, ...] = EXPERT_NAMES
) -> list[Availability]:
    """Like probe_experts, but every weights file reported is loaded and its layout checked
    against the model that would use it (slow: builds the models). `invalid` marks a file
    that is there but unusable."""
    out = []
    for n in names:
        module = _module(n)
        check = getattr(module, "verify", None) or module.probe
        out.append(check(config, weights_dir))
    return out


@dataclass(frozen=True)
class LoadedExperts:
    experts: tuple[Expert, ...]
    unavailable: dict[str, str]  # name -> one-line reason

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.experts]


def load_experts(
    config: Config, weights_dir: Path | None = None, names: tuple[str, ...] | None = None
) -> LoadedExperts:
    """Load the requested experts once.

    With `names` given (or `config.experts` non-empty), every named expert must load, or
    ExpertUnavailable says why. Without, every available expert is loaded and the rest are
    reported in `unavailable`.
    """
    requested = tuple(dict.fromkeys(names or config.experts))  # "grammar,grammar" runs once
    strict = bool(requested)
    experts: list[Expert] = []
    unavailable: dict[str, str] = {}
    for name in requested or EXPERT_NAMES:
        module = _module(name)
        try:
            experts.append(module.load(config, weights_dir))
        except ExpertUnavailable as exc:
            if strict:
                raise
            unavailable[name] = str(exc)
    if not experts:
        raise ExpertUnavailable("no expert is available: " + "; ".join(unavailable.values()))
    return LoadedExperts(tuple(experts), unavailable)
