"""The one list of experts: every expert's name, kind, weights and the code that loads,
checks, fetches and benchmarks it.

Every expert is an `ExpertSpec`. Its functions are named ``"module:function"`` and imported
on first use, so reading this table (for `--experts` parsing, `weights status`, a config
check) imports no model code: a grammar-only run never imports torch. The CLI (`--experts`,
`weights status`, `weights fetch`), the config check, `moodsic bench speed` and the pipeline
(`load_experts`) all take their lists from `EXPERTS`; nothing else names the experts.

Signatures:

- ``load(config, weights_dir) -> Expert``: raise ExpertUnavailable with one line.
- ``probe(config, weights_dir) -> Availability``: whether it could run; loads no model.
- ``verify(config, weights_dir) -> Availability``: probe, and every file it lists loaded
  into the model that would use it (slow); `invalid` marks a file that is there but unusable.
- ``fetch(config, weights_dir, *, accept_license, echo) -> Path | list[Path]``: download
  its weights ahead of a run.
- ``benchmark(config, weights_dir) -> list[str]``: the lines `moodsic bench speed` prints.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

KINDS = ("trained", "rules")


@dataclass(frozen=True)
class ExpertSpec:
    """One expert: what it is and which functions handle it."""

    name: str  # as written in --experts, config files and cue sheets
    kind: str  # "trained": a learned model with weights; "rules": hand-written rules, no weights
    summary: str  # one line for help texts and docs
    load: str  # "module:function" -> the loaded expert
    probe: str  # "module:function" -> Availability, loads no model
    verify: str | None = None  # "module:function" -> Availability after loading its files
    fetch: str | None = None  # "module:function" that downloads its weights; None: nothing to fetch
    benchmark: str | None = None  # "module:function" -> lines for `moodsic bench speed`
    weights: tuple[str, ...] = ()  # the files it looks for (names, or a pattern in <>)
    fetch_as: tuple[str, ...] = ()  # other names `weights fetch` takes for these weights


EXPERTS: tuple[ExpertSpec, ...] = (
    ExpertSpec(
        "scene",
        "trained",
        "open_clip image encoder + a trained V/A head (zero-shot prompts without one)",
        load="moodsic_engine.experts.scene:load",
        probe="moodsic_engine.experts.scene:probe",
        verify="moodsic_engine.experts.scene:verify",
        fetch="moodsic_engine.experts.fetch_weights:fetch_scene",
        benchmark="moodsic_engine.experts.bench_experts:bench_scene",
        weights=(
            "<open_clip checkpoint of scene.model/scene.pretrained>",
            "scene_head_<model>_<pretrained>.safetensors",
        ),
    ),
    ExpertSpec(
        "face",
        "trained",
        "face detection + EmoNet with test-time augmentation (face-mesh geometry without it)",
        load="moodsic_engine.experts.face:load",
        probe="moodsic_engine.experts.face:probe",
        verify="moodsic_engine.experts.face:verify",
        fetch="moodsic_engine.experts.fetch_weights:fetch_face",
        benchmark="moodsic_engine.experts.bench_experts:bench_face",
        weights=("emonet_8.pth", "emonet_8.safetensors", "emonet_5.pth", "emonet_5.safetensors"),
        fetch_as=("emonet",),
    ),
    ExpertSpec(
        "grammar",
        "rules",
        "film grammar: colour, motion and cut-rate rules (no weights)",
        load="moodsic_engine.experts.grammar:load",
        probe="moodsic_engine.experts.grammar:probe",
        benchmark="moodsic_engine.experts.bench_experts:bench_grammar",
    ),
)

EXPERT_NAMES: tuple[str, ...] = tuple(e.name for e in EXPERTS)


def expert_names() -> tuple[str, ...]:
    """The registered names, read from `EXPERTS` at call time (what every function here uses)."""
    return tuple(e.name for e in EXPERTS)


def function(spec: str) -> Callable[..., Any]:
    """The function a ``"module:function"`` string names (its module imported now)."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def expert_spec(name: str) -> ExpertSpec:
    """The registered expert called `name`; InputError listing the registry's names if none."""
    for spec in EXPERTS:
        if spec.name == name:
            return spec
    raise InputError(f"unknown expert {name!r} (choose from {', '.join(expert_names())})")


def parse_expert_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """A comma list ("scene, face") or a sequence of names as registered names, in the order
    given and each once; InputError naming the unknown ones and the registry's names."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    known = expert_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            f"unknown expert{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
            f"choose from {', '.join(known)}"
        )
    return names


def fetchable() -> tuple[str, ...]:
    """The names `moodsic weights fetch` takes: experts with a fetch, then their aliases."""
    return tuple(n for e in EXPERTS if e.fetch for n in (e.name, *e.fetch_as))


def fetch_spec(what: str) -> ExpertSpec:
    """The expert whose weights `weights fetch WHAT` downloads (its name or an alias)."""
    for spec in EXPERTS:
        if spec.fetch and what in (spec.name, *spec.fetch_as):
            return spec
    rules = [e.name for e in EXPERTS if not e.fetch]
    why = f" ({', '.join(rules)} needs no weights)" if what in rules else ""
    raise InputError(f"unknown weights {what!r}{why}: choose from {', '.join(fetchable())}")


def mode_label(name: str, mode: str | None) -> str:
    """How a run reports an expert's mode: a rule-based expert is "rules" whatever an older
    cue sheet recorded ("trained"); otherwise the recorded mode, "trained" when none."""
    spec = next((e for e in EXPERTS if e.name == name), None)
    if spec is not None and spec.kind == "rules":
        return "rules"
    return mode or "trained"
