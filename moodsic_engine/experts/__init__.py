"""PERCEIVE: loading, probing and checking experts, by their entries in the registry
(`registry.EXPERTS`). Expert modules are imported lazily, so a grammar-only run never
imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ExpertUnavailable
from .base import (
    Availability,
    ClipContext,
    Estimates,
    Expert,
    ExpertSeries,
    FrameBatch,
)
from .registry import (
    EXPERT_NAMES,
    EXPERTS,
    ExpertSpec,
    expert_names,
    expert_spec,
    function,
    parse_expert_names,
)

__all__ = [
    "EXPERT_NAMES",
    "EXPERTS",
    "Availability",
    "ClipContext",
    "Estimates",
    "Expert",
    "ExpertSeries",
    "ExpertSpec",
    "FrameBatch",
    "LoadedExperts",
    "expert_names",
    "expert_spec",
    "load_experts",
    "parse_expert_names",
    "probe_experts",
    "verify_experts",
]


def probe_experts(
    config: Config, weights_dir: Path | None = None, names: tuple[str, ...] | None = None
) -> list[Availability]:
    """Whether each expert could run (every registered one without `names`), without loading
    models."""
    return [function(expert_spec(n).probe)(config, weights_dir) for n in names or expert_names()]


def verify_experts(
    config: Config, weights_dir: Path | None = None, names: tuple[str, ...] | None = None
) -> list[Availability]:
    """Like probe_experts, but every weights file reported is loaded and its layout checked
    against the model that would use it (slow: builds the models). `invalid` marks a file
    that is there but unusable."""
    out = []
    for n in names or expert_names():
        spec = expert_spec(n)
        out.append(function(spec.verify or spec.probe)(config, weights_dir))
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
    for name in requested or expert_names():
        load = function(expert_spec(name).load)
        try:
            experts.append(load(config, weights_dir))
        except ExpertUnavailable as exc:
            if strict:
                raise
            unavailable[name] = str(exc)
    if not experts:
        raise ExpertUnavailable("no expert is available: " + "; ".join(unavailable.values()))
    return LoadedExperts(tuple(experts), unavailable)
