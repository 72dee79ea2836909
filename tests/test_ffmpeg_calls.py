"""One module starts ffmpeg/ffprobe: `moodsic_engine/ffmpeg.py` (binary lookup, error mapping
and stderr handling in one place). Read from the source with `ast`, nothing is imported.

A module is flagged when it starts a process (subprocess, os.system/exec/spawn, asyncio)
and names the ffmpeg or ffprobe binary ("ffmpeg", shutil.which("ffprobe"), a shell line
"ffmpeg -i ..."), except as the name passed to `moodsic_engine.ffmpeg` helpers (find_tool,
tool_version), which only look the binary up or read its version there.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("moodsic_engine", "otio_adapter", "blender_addon")
TOOLS = ("ffmpeg", "ffprobe")
# Helpers of moodsic_engine/ffmpeg.py that take the tool's name.
HELPERS = {"find_tool", "tool_version"}

ALLOWED = {
    # The one module that runs them.
    "moodsic_engine/ffmpeg.py": "the ffmpeg/ffprobe module",
}

_SUBPROCESS_FUNCS = {
    "run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput",
}  # fmt: skip
_OS_FUNCS = ("system", "popen", "exec", "spawn", "posix_spawn")
_ASYNC_FUNCS = {"create_subprocess_exec", "create_subprocess_shell"}


def _callee(node: ast.Call) -> tuple[str, str]:
    """(module-ish name, function name) of a call: ("subprocess", "run"), ("", "Popen")."""
    func = node.func
    if isinstance(func, ast.Attribute):
        base = func.value
        return (base.id if isinstance(base, ast.Name) else "", func.attr)
    if isinstance(func, ast.Name):
        return "", func.id
    return "", ""


def _names_tool(value: str) -> bool:
    """The binary ("ffmpeg", "/usr/bin/ffprobe") or a shell line that runs it ("ffmpeg -i ..."),
    not a message about it ("ffmpeg could not encode ...")."""
    text = value.strip()
    if " " not in text:
        return Path(text).name in TOOLS
    return any(text.startswith(f"{tool} -") for tool in TOOLS)


def violations(source: str) -> list[str]:
    """What in `source` starts ffmpeg/ffprobe directly: the process calls (with their line)
    when the module also names one of the binaries; [] otherwise."""
    tree = ast.parse(source)
    from_subprocess = {  # local name -> subprocess's name
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "subprocess"
        for alias in node.names
    }
    helper_args: set[int] = set()
    starts: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        mod, name = _callee(node)
        if name in HELPERS:
            helper_args.update(id(a) for a in node.args)
        if (
            (mod == "subprocess" and name in _SUBPROCESS_FUNCS)
            or (not mod and from_subprocess.get(name) in _SUBPROCESS_FUNCS)
            or (mod == "os" and name.startswith(_OS_FUNCS))
            or (mod == "asyncio" and name in _ASYNC_FUNCS)
        ):
            starts.append(f"line {node.lineno}: {mod + '.' if mod else ''}{name}")
    named = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _names_tool(node.value)
        and id(node) not in helper_args
    ]
    return starts if named and starts else []


def test_only_the_ffmpeg_module_starts_ffmpeg_or_ffprobe() -> None:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            bad = violations(path.read_text(encoding="utf-8"))
            if bad and rel not in ALLOWED:
                found[rel] = bad
    assert not found, f"call ffmpeg/ffprobe through moodsic_engine/ffmpeg.py instead: {found}"


def test_the_allow_list_is_still_needed() -> None:
    """An entry whose module no longer starts ffmpeg is stale: the ffmpeg module itself must
    be found, or the check finds nothing at all."""
    stale = [
        rel
        for rel in ALLOWED
        if (REPO / rel).is_file() and not violations((REPO / rel).read_text(encoding="utf-8"))
    ]
    assert stale == []
    assert "moodsic_engine/ffmpeg.py" not in stale and (REPO / "moodsic_engine/ffmpeg.py").is_file()


def test_the_check_finds_direct_calls_and_spares_other_tools() -> None:
    direct = 'import subprocess\nsubprocess.run(["ffmpeg", "-i", "a.mp4", "b.wav"])\n'
    found = (
        "import shutil\nfrom subprocess import Popen as P, run\n"
        'exe = shutil.which("ffprobe")\nrun([exe, "-v", "error", "x.mp4"])\nP([exe])\n'
    )
    shell = 'import os\nos.system("ffmpeg -i a.mp4 b.wav")\n'
    other = (
        "import subprocess\nfrom moodsic_engine.ffmpeg import find_tool\n"
        'exe = find_tool("ffmpeg", purpose="x")\nsubprocess.run(["espeak-ng", "-w", "a.wav"])\n'
    )
    assert violations(direct) == ["line 2: subprocess.run"]
    assert sorted(violations(found)) == ["line 4: run", "line 5: P"]
    assert violations(shell) == ["line 2: os.system"]
    assert violations(other) == []
    assert violations("x = 'ffmpeg'\n") == []  # naming it without starting a process
    message = 'import subprocess\nsubprocess.run(["ls"])\nraise OSError("ffmpeg could not")\n'
    assert violations(message) == []
