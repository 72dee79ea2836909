"""The expert registry is the one list of experts: every consumer (the experts package, the
config check, the pipeline's analysis sections, the CLI's --experts, `weights status`,
`weights fetch`, `bench speed`) takes its names and functions from it; an unknown name is
refused with the registry's names; the rule-based film-grammar expert is reported as
"rules"; fetch and benchmark code lives outside scene.py and face.py and is reached through
the registry."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from moodsic_engine.cli import app
from moodsic_engine.config import Config
from moodsic_engine.errors import InputError
from moodsic_engine.experts import (
    EXPERT_NAMES,
    Availability,
    Estimates,
    load_experts,
    probe_experts,
    registry,
)
from moodsic_engine.experts.registry import (
    EXPERTS,
    ExpertSpec,
    expert_spec,
    fetch_spec,
    fetchable,
    function,
    mode_label,
    parse_expert_names,
)

REPO = Path(__file__).resolve().parent.parent
NAMES = ("scene", "face", "grammar")


# ----------------------------------------------------------------------------- a toy expert
class _Toy:
    name = "toy"
    mode = "rules"

    def predict(self, batch):  # noqa: ANN001, ANN201
        n = len(batch)
        return Estimates(
            np.full(n, 0.5), np.full(n, -0.5), np.full(n, 0.1), np.full(n, 0.1), np.ones(n, bool)
        )

    def finalize(self, series, context):  # noqa: ANN001, ANN201, ARG002
        return series


FETCHED: list[str] = []


def toy_load(config: Config, weights_dir: Path | None = None) -> _Toy:  # noqa: ARG001
    return _Toy()


def toy_probe(config: Config, weights_dir: Path | None = None) -> Availability:  # noqa: ARG001
    return Availability("toy", True, "", "toy rules")


def toy_fetch(config, weights_dir, *, accept_license=False, echo=print):  # noqa: ANN001, ANN201, ARG001
    FETCHED.append(str(weights_dir))
    echo("toy: fetched")


def toy_bench(config: Config, weights_dir: Path | None = None) -> list[str]:  # noqa: ARG001
    return ["toy: 1000 frames/s"]


TOY = ExpertSpec(
    "toy",
    "rules",
    "a test expert",
    load=f"{__name__}:toy_load",
    probe=f"{__name__}:toy_probe",
    fetch=f"{__name__}:toy_fetch",
    benchmark=f"{__name__}:toy_bench",
    fetch_as=("toyweights",),
)


@pytest.fixture
def with_toy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry with grammar and the toy only (no model expert is imported)."""
    monkeypatch.setattr(registry, "EXPERTS", (expert_spec("grammar"), TOY))


# ----------------------------------------------------------------------------- the table
def test_the_table() -> None:
    assert tuple(e.name for e in EXPERTS) == NAMES == EXPERT_NAMES
    assert {e.name: e.kind for e in EXPERTS} == {
        "scene": "trained",
        "face": "trained",
        "grammar": "rules",
    }
    for e in EXPERTS:
        for spec in (e.load, e.probe, e.verify, e.fetch, e.benchmark):
            if spec is not None:
                assert callable(function(spec)), spec
    from moodsic_engine.experts import face, scene

    assert expert_spec("face").weights == face.CHECKPOINT_NAMES
    head = scene.head_candidates(Config().scene)[0]
    assert re.fullmatch(
        expert_spec("scene").weights[1].replace("<model>", ".+").replace("<pretrained>", ".+"),
        head,
    )
    assert expert_spec("grammar").weights == () and expert_spec("grammar").fetch is None


def test_fetch_and_bench_code_left_scene_and_face() -> None:
    moved = {"fetch", "benchmark", "_download", "_verify", "_remote_size", "_bench_parts",
             "bench_frame", "write_bench_video", "_Timed"}  # fmt: skip
    for name in ("scene", "face", "grammar"):
        tree = ast.parse((REPO / "moodsic_engine/experts" / f"{name}.py").read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        assert not defined & moved, (name, defined & moved)
    from moodsic_engine.experts import bench_experts, fetch_weights

    assert function(expert_spec("scene").fetch) is fetch_weights.fetch_scene
    assert function(expert_spec("face").fetch) is fetch_weights.fetch_face
    assert function(expert_spec("scene").benchmark) is bench_experts.bench_scene
    assert function(expert_spec("face").benchmark) is bench_experts.bench_face


# ----------------------------------------------------------------------------- consumers
def _experts_helps():  # noqa: ANN202 - (command, help) pairs
    import typer

    def walk(cmd, prefix: str):  # noqa: ANN001, ANN202 - typer's own click classes
        if hasattr(cmd, "commands"):  # a group
            for name, sub in cmd.commands.items():
                yield from walk(sub, f"{prefix} {name}".strip())
            return
        for p in cmd.params:
            if p.name == "experts" and (p.help or "").startswith("Comma list"):
                yield prefix, p.help

    return walk(typer.main.get_command(app), "")


def test_every_consumer_lists_the_registry() -> None:
    from moodsic_engine import pipeline
    from moodsic_engine._cli import common

    assert pipeline._ANALYSIS_SECTIONS[2:5] == NAMES  # each expert's config section
    assert common.EXPERTS_HELP == "Comma list from scene,face,grammar."
    assert fetchable() == ("scene", "face", "emonet")
    # the config check
    with pytest.raises(InputError, match="choose from scene, face, grammar"):
        Config.from_dict({"experts": ["grammar", "bogus"]})
    # every command's --experts names registered experts only; the general ones all of them
    helps = dict(_experts_helps())
    assert {"score", "batch", "score-timeline", "eval veatic"} <= set(helps)
    for command, text in helps.items():
        listed = re.fullmatch(r"Comma list from ([a-z,]+)\.", text)
        assert listed and set(listed.group(1).split(",")) <= set(NAMES), (command, text)
        if command in ("score", "batch", "score-timeline", "eval veatic"):
            assert text == common.EXPERTS_HELP
    # the Blender add-on cannot import the engine: its text must name the same experts
    addon = (REPO / "blender_addon/__init__.py").read_text()
    assert "(scene,face,grammar)" in addon


def test_consumers_follow_a_changed_registry(with_toy: None, tmp_path: Path) -> None:
    """Add an expert to the table and every consumer has it: nothing else lists experts."""
    from moodsic_engine._cli.common import parse_experts
    from moodsic_engine.bench import _expert_benchmark

    assert parse_expert_names("toy, grammar,toy") == ("toy", "grammar")
    assert parse_experts("grammar,toy") == ("grammar", "toy")
    assert [a.name for a in probe_experts(Config())] == ["grammar", "toy"]
    loaded = load_experts(Config())
    assert loaded.names == ["grammar", "toy"] and loaded.unavailable == {}
    assert _expert_benchmark("toy", Config(), None) == ["toy: 1000 frames/s"]

    runner = CliRunner()
    res = runner.invoke(app, ["weights", "status", "--json", "--weights-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [(r["name"], r["state"], r["kind"]) for r in rows] == [
        ("grammar", "ready", "rules"),
        ("toy", "ready", "rules"),
    ]
    res = runner.invoke(app, ["weights", "fetch", "toyweights", "--weights-dir", str(tmp_path)])
    assert res.exit_code == 0 and "toy: fetched" in res.output
    assert FETCHED[-1] == str(tmp_path)
    res = runner.invoke(app, ["weights", "fetch", "emonet"])
    assert res.exit_code == 2 and "choose from toy, toyweights" in res.stderr


# ----------------------------------------------------------------------------- unknown names
def test_an_unknown_name_lists_the_registry() -> None:
    for call in (
        lambda: expert_spec("bogus"),
        lambda: parse_expert_names("grammar,bogus"),
        lambda: load_experts(Config(), names=("bogus",)),
        lambda: probe_experts(Config(), names=("bogus",)),
    ):
        with pytest.raises(InputError) as err:
            call()
        assert str(err.value).endswith("scene, face, grammar)") or str(err.value).endswith(
            "choose from scene, face, grammar"
        )
        assert "bogus" in str(err.value) and "\n" not in str(err.value)
    runner = CliRunner()
    res = runner.invoke(app, ["score", "x.mp4", "--experts", "grammar,bogus"])
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        "moodsic: error: --experts: unknown expert(s) 'bogus'; choose from scene, face, grammar"
    )
    res = runner.invoke(app, ["weights", "fetch", "bogus"])
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        "moodsic: error: unknown weights 'bogus': choose from scene, face, emonet"
    )
    res = runner.invoke(app, ["weights", "fetch", "grammar"])
    assert res.exit_code == 2 and "grammar needs no weights" in res.stderr


# ----------------------------------------------------------------------------- "rules"
def test_the_grammar_expert_is_reported_as_rules(tmp_path: Path) -> None:
    import dataclasses

    from media import lavfi_video

    from moodsic_engine.api import ScoreResult
    from moodsic_engine.cue import CueSheet
    from moodsic_engine.pipeline import analyze_video
    from otio_adapter.testing import make_cue

    config = Config().replace(experts=("grammar",))
    video = lavfi_video(tmp_path / "clip.mp4", seconds=3.0)
    analysis = analyze_video(video, load_experts(config), config)
    assert analysis.modes == {"grammar": "rules"}
    cue = make_cue(tmp_path, write_audio=False)
    cue = dataclasses.replace(cue, engine={**cue.engine, "modes": dict(analysis.modes)})
    assert "experts: grammar (rules)" in ScoreResult(tmp_path / "cue.json", cue).summary_lines()
    # a cue sheet written before the registry said "trained": still summarised as rules
    cue.to_json(tmp_path / "cue.json")
    old = json.loads((tmp_path / "cue.json").read_text())
    old["engine"]["modes"] = {"grammar": "trained"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    again = ScoreResult(tmp_path / "old.json", CueSheet.from_json(tmp_path / "old.json"))
    assert "experts: grammar (rules)" in again.summary_lines()
    assert mode_label("scene", "zero-shot") == "zero-shot" and mode_label("face", None) == "trained"


# ----------------------------------------------------------------------------- fetch / bench
def test_fetch_and_bench_through_the_registry(tmp_path: Path) -> None:
    from moodsic_engine.bench import _expert_benchmark

    assert fetch_spec("emonet").name == "face" and fetch_spec("scene").name == "scene"
    line = _expert_benchmark("grammar", Config(), None)[0]
    assert float(re.match(r"grammar: (\d+) frames/s", line).group(1)) > 0
    runner = CliRunner()
    # EmoNet through its alias: the licence is shown and nothing is fetched without consent
    res = runner.invoke(app, ["weights", "fetch", "emonet", "--weights-dir", str(tmp_path)])
    assert res.exit_code == 1 and "--accept-license" in res.stderr
    assert "CC BY-NC-ND" in res.output or "NonCommercial" in res.output
    assert list(tmp_path.iterdir()) == []
