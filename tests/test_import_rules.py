"""Import rules, read from the source with `ast` (nothing is imported).

- The engine never imports a front end: modules of `moodsic_engine` outside the command
  line (`cli` and the `_cli` package) do not import it, `otio_adapter` or `blender_addon`
  (front ends import the engine, never the other way round).
- `blender_addon` runs inside Blender's Python: it imports neither `moodsic_engine` nor
  torch (it runs the engine as a `moodsic` subprocess).
- `moodsic_engine.library` and `moodsic_engine.experts` never import each other.
- `moodsic_engine.batch`: no import cycles between its modules (module-level imports), and
  no private name (`_x`) imported from one of its modules into another; the same private-name
  rule holds in `moodsic_engine.library` and `moodsic_engine.eval`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FRONT_ENDS = ("moodsic_engine.cli", "moodsic_engine._cli", "otio_adapter", "blender_addon")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((REPO / package).rglob("*.py")):
        yield _module_name(path), path


def _is_package(module: str) -> bool:
    return (REPO / Path(*module.split(".")) / "__init__.py").is_file()


def _imports(
    module: str, path: Path, *, top_level_only: bool = False
) -> Iterator[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if _is_package(module) else module.rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, "", node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if _is_package(sub) or (REPO / Path(*sub.split("."))).with_suffix(".py").is_file():
                    yield sub, "", node.lineno  # `from . import cli` imports a module
                else:
                    yield target, alias.name, node.lineno


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_engine_never_imports_a_front_end() -> None:
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for module, path in _sources("moodsic_engine")
        if not any(_within(module, m) for m in ("moodsic_engine.cli", "moodsic_engine._cli"))
        for target, _, line in _imports(module, path)
        if any(_within(target, f) for f in FRONT_ENDS)
    ]
    assert bad == []


def test_blender_addon_imports_neither_the_engine_nor_torch() -> None:
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for module, path in _sources("blender_addon")
        for target, _, line in _imports(module, path)
        if any(_within(target, f) for f in ("moodsic_engine", "torch", "torchvision"))
    ]
    assert bad == []


def test_library_and_experts_never_import_each_other() -> None:
    bad = []
    for a, b in (("library", "experts"), ("experts", "library")):
        for module, path in _sources(f"moodsic_engine/{a}"):
            for target, _, line in _imports(module, path):
                if _within(target, f"moodsic_engine.{b}"):
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert bad == []


def test_batch_package_has_no_cycles_and_no_private_imports() -> None:
    graph: dict[str, set[str]] = {}
    private = []
    for module, path in _sources("moodsic_engine/batch"):
        graph[module] = set()
        for target, name, line in _imports(module, path):
            if _within(target, "moodsic_engine.batch") and name.startswith("_"):
                private.append(f"{path.relative_to(REPO)}:{line} imports {target}.{name}")
        for target, _, _ in _imports(module, path, top_level_only=True):
            if _within(target, "moodsic_engine.batch") and target != "moodsic_engine.batch":
                graph[module].add(target)
    assert private == []
    assert len(graph) >= 8, sorted(graph)  # the package was found

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return [*trail, nxt]
                if nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = [c for m in graph if (c := cycle_from(m))]
    assert cycles == []


def test_library_and_eval_import_no_private_names_from_each_other() -> None:
    """Shared helpers of the split loaders and evaluations have public names in their home."""
    private = []
    for package in ("library", "eval"):
        for module, path in _sources(f"moodsic_engine/{package}"):
            for target, name, line in _imports(module, path):
                if _within(target, f"moodsic_engine.{package}") and name.startswith("_"):
                    private.append(f"{path.relative_to(REPO)}:{line} imports {target}.{name}")
    assert private == []


def test_the_rules_see_imports() -> None:
    """The walker itself: a relative import of a front end and of a private name are found."""
    found = list(_imports("moodsic_engine.batch.run", REPO / "moodsic_engine/batch/run.py"))
    assert ("moodsic_engine.batch.plan", "plan_batch", found[0][2]) in [
        (t, n, found[0][2]) for t, n, _ in found
    ]
    cli = list(_imports("moodsic_engine._cli.timeline", REPO / "moodsic_engine/_cli/timeline.py"))
    assert any(_within(t, "otio_adapter") for t, _, _ in cli)  # a front end may
