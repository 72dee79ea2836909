"""Safe loading and path safety: malicious pickles never run, manifests and cue sheets cannot
point Moodsic outside their folder unless the user opts in, hostile cue sheets are refused
with one line, and the code never goes through a shell or an unsafe deserialiser."""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from moodsic_engine.cue import CueSheet
from moodsic_engine.errors import CueSheetError, LibraryError, MoodsicError, ResourceError

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("moodsic_engine", "otio_adapter", "blender_addon")


# ----------------------------------------------------------------------------- malicious pickles
class _Payload:
    """Unpickling this opens (creates) the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.marker, "w"))


def _evil_files(folder: Path, marker: Path) -> list[Path]:
    import torch

    state = {"weight": torch.zeros(2), "evil": _Payload(marker)}
    files = []
    for name in ("evil.pth", "evil.pt", "emonet_8.pth", "scene_head.pt"):
        p = folder / name
        torch.save(state, p)  # torch's zip format with the payload inside data.pkl
        files.append(p)
    legacy = folder / "legacy.ckpt"
    legacy.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))  # a bare pickle
    files.append(legacy)
    fake_st = folder / "evil.safetensors"
    fake_st.write_bytes(pickle.dumps(_Payload(marker)))  # a pickle wearing the safe suffix
    files.append(fake_st)
    return files


def test_payload_is_live(tmp_path: Path) -> None:
    """The payload does run under a plain unpickler (so the refusals below mean something)."""
    marker = tmp_path / "pwned"
    evil = _evil_files(tmp_path, marker)[-2]
    code = f"import pickle; pickle.loads(open({str(evil)!r}, 'rb').read())"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert marker.exists()


def test_weights_loader_refuses_malicious_pickles(tmp_path: Path) -> None:
    from moodsic_engine.weights import load_state_dict

    marker = tmp_path / "pwned"
    for path in _evil_files(tmp_path, marker):
        with pytest.raises(ResourceError) as exc:
            load_state_dict(path)
        assert "\n" not in str(exc.value) and path.name in str(exc.value)
        assert not marker.exists(), path.name


def test_scene_head_and_emonet_loaders_refuse_malicious_pickles(tmp_path: Path) -> None:
    from moodsic_engine.experts.emonet import load_emonet
    from moodsic_engine.experts.scene import load_head

    marker = tmp_path / "pwned"
    for path in _evil_files(tmp_path, marker):
        for loader in (load_head, load_emonet):
            with pytest.raises(MoodsicError):
                loader(path)
            assert not marker.exists(), (loader.__name__, path.name)


@pytest.mark.slow
def test_clip_checkpoint_path_refuses_malicious_pickle(tmp_path: Path) -> None:
    """A user-supplied CLIP checkpoint goes through open_clip's weights-only loader."""
    from moodsic_engine.config import Config
    from moodsic_engine.experts.scene import build_encoder, resolve_encoder
    from moodsic_engine.weights import WeightsError

    marker = tmp_path / "pwned"
    evil = _evil_files(tmp_path, marker)[0]
    cfg = Config().replace(**{"scene.model": "ViT-B-32", "scene.pretrained": str(evil)})
    with pytest.raises(WeightsError) as exc:  # named by the user: the run stops
        build_encoder(resolve_encoder(cfg.scene, tmp_path), with_text=False)
    assert not marker.exists()
    assert str(evil) in str(exc.value) and "weights_only" not in str(exc.value)


@pytest.mark.parametrize("named", [["--experts", "face,grammar"], []], ids=["face-named", "all"])
def test_cli_refuses_malicious_emonet_in_one_line(named: list[str], tmp_path: Path) -> None:
    """With or without --experts, a pickle as --emonet stops the run (it used to go on as if
    the option were not given): one line naming the file and why, never PyTorch's advice to
    turn weights_only off."""
    marker = tmp_path / "pwned"
    evil = _evil_files(tmp_path, marker)[2]
    video = tmp_path / "v.mp4"
    from media import lavfi_video

    lavfi_video(video, seconds=2)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "moodsic_engine.cli", "score", str(video), "-o",
         str(tmp_path / "c.json"), *named, "--emonet", str(evil), "--progress", "none"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("moodsic: error:"), res.stderr
    assert str(evil) in lines[0] and "not only tensors" in lines[0], lines[0]
    assert "weights_only" not in res.stderr
    assert not marker.exists()
    assert not (tmp_path / "c.json").exists()


# ----------------------------------------------------------------------------- library paths
def _wav(path: Path, seconds: float = 1.0) -> Path:
    t = np.arange(int(22050 * seconds)) / 22050
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.2 * np.sin(2 * np.pi * 440 * t), 22050)
    return path


@pytest.fixture
def lib_tree(tmp_path: Path) -> dict[str, Path]:
    """lib/ with one good track; outside/ with audio the manifests try to reach."""
    lib = tmp_path / "lib"
    inside = _wav(lib / "audio" / "in.wav")
    outside = _wav(tmp_path / "outside" / "secret.wav")
    os.symlink(outside, lib / "audio" / "link_out.wav")
    os.symlink("loop.wav", lib / "audio" / "loop.wav")
    return {"lib": lib, "inside": inside, "outside": outside}


HOSTILE_PATHS = {
    "dotdot": "../outside/secret.wav",
    "deep-dotdot": "../../../../../../../../etc/passwd",
    "absolute": "/etc/passwd",
    "symlink-out": "audio/link_out.wav",
    "symlink-loop": "audio/loop.wav",
    "nul-byte": "audio/in.wav\u0000.txt",
}


def _manifest(lib: Path, hostile: str, fmt: str) -> Path:
    rows = [
        {"id": "good", "path": "audio/in.wav", "valence": 0.5, "arousal": 0.5},
        {"id": "bad", "path": hostile, "valence": -0.5, "arousal": -0.5},
    ]
    if fmt == "json":
        p = lib / "manifest.json"
        p.write_text(json.dumps({"tracks": rows}), encoding="utf-8")
    else:
        p = lib / "manifest.csv"
        lines = ["id,path,valence,arousal"] + [
            f"{r['id']},{r['path']},{r['valence']},{r['arousal']}" for r in rows
        ]
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("kind", list(HOSTILE_PATHS))
def test_manifest_cannot_reach_outside_its_folder(
    kind: str, fmt: str, lib_tree: dict[str, Path], tmp_path: Path
) -> None:
    from moodsic_engine.library import load_library

    if kind == "nul-byte" and fmt == "csv":
        pytest.skip("CSV cannot carry a NUL byte")
    manifest = _manifest(lib_tree["lib"], HOSTILE_PATHS[kind], fmt)
    for spec in (manifest, lib_tree["lib"]):  # the file itself, or its folder
        with pytest.raises(LibraryError) as exc:
            load_library(spec, cache_dir=tmp_path / "cache")
        msg = str(exc.value)
        assert "\n" not in msg and "row" in msg
        assert ("outside" in msg) or ("cannot be resolved" in msg), msg


@pytest.mark.parametrize("kind", ["dotdot", "symlink-out"])
def test_manifest_outside_paths_allowed_on_request(
    kind: str, lib_tree: dict[str, Path], tmp_path: Path
) -> None:
    from moodsic_engine.library import load_library

    manifest = _manifest(lib_tree["lib"], HOSTILE_PATHS[kind], "json")
    lib = load_library(manifest, allow_outside=True, cache_dir=tmp_path / "cache")
    paths = {t.id: t.path for t in lib.tracks}
    assert paths["bad"] == str(lib_tree["outside"].resolve())
    assert paths["good"] == str(lib_tree["inside"].resolve())


def test_library_cli_refuses_outside_path_in_one_line(
    lib_tree: dict[str, Path], tmp_path: Path
) -> None:
    manifest = _manifest(lib_tree["lib"], HOSTILE_PATHS["dotdot"], "json")
    cmd = [sys.executable, "-m", "moodsic_engine.cli", "library", "info", str(manifest)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "outside" in lines[0] and "Traceback" not in res.stderr
    res = subprocess.run([*cmd, "--allow-outside"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


HOSTILE_MANIFESTS = {
    "deep.json": "[" * 100_000,
    "huge-int.json": '{"tracks": [{"valence": ' + "9" * 5000 + ', "arousal": 0}]}',
    "nan.json": '{"tracks": [{"valence": NaN, "arousal": 0}]}',
    "inf.json": '{"tracks": [{"valence": 1e400, "arousal": 0}]}',
    "scalar.json": "5",
    "rows-not-list.json": '{"tracks": {"a": 1}}',
    "list-values.json": '{"tracks": [{"valence": [1], "arousal": {"x": 1}}]}',
    "scale-not-string.json": '{"scale": [1, 2], "tracks": [{"valence": 0.1, "arousal": 0.2}]}',
    "out-of-scale.csv": "# scale: 1-9\nvalence,arousal\n12,3\n",
    "binary.csv": bytes(range(256)) * 8,
    "empty.csv": "",
    "garbage.parquet": b"PAR1 not really parquet PAR1",
}


@pytest.mark.parametrize("name", list(HOSTILE_MANIFESTS))
def test_hostile_manifest_content_refused_in_one_line(name: str, tmp_path: Path) -> None:
    from moodsic_engine.library import load_library

    p = tmp_path / name
    content = HOSTILE_MANIFESTS[name]
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    with pytest.raises(LibraryError) as exc:
        load_library(p, cache_dir=tmp_path / "cache")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("index", ["[]", "[" * 100_000, '{"fingerprint": 5}', "\x00garbage"])
def test_corrupt_library_index_is_rebuilt(index: str, tmp_path: Path) -> None:
    from moodsic_engine.library import load_library

    manifest = tmp_path / "m.csv"
    manifest.write_text("id,valence,arousal\na,0.1,0.2\nb,-0.5,0.4\n", encoding="utf-8")
    first = load_library(manifest, cache_dir=tmp_path / "cache")
    idx = tmp_path / ".m.csv.moodsic-index.json"
    assert idx.is_file()
    idx.write_text(index, encoding="utf-8")
    again = load_library(manifest, cache_dir=tmp_path / "cache")
    assert [t.id for t in again.tracks] == [t.id for t in first.tracks]
    assert idx.read_text(encoding="utf-8") != index  # rewritten from the manifest


def test_planted_library_index_cannot_add_outside_paths(
    lib_tree: dict[str, Path], tmp_path: Path
) -> None:
    """The index cached in a shared library folder is as untrusted as the manifest: one whose
    fingerprint matches but whose tracks point elsewhere is ignored and rebuilt."""
    from moodsic_engine.library import load_library

    lib = lib_tree["lib"]
    manifest = lib / "manifest.json"
    rows = [{"id": "good", "path": "audio/in.wav", "valence": 0.5, "arousal": 0.5}]
    manifest.write_text(json.dumps({"tracks": rows}), encoding="utf-8")
    first = load_library(manifest, cache_dir=tmp_path / "cache")
    idx_path = lib / ".manifest.json.moodsic-index.json"
    index = json.loads(idx_path.read_text(encoding="utf-8"))
    assert [t["path"] for t in index["tracks"]] == [first.tracks[0].path]
    index["tracks"][0]["path"] = str(lib_tree["outside"])  # same fingerprint, new target
    idx_path.write_text(json.dumps(index), encoding="utf-8")
    again = load_library(manifest, cache_dir=tmp_path / "cache")
    assert [t.path for t in again.tracks] == [str(lib_tree["inside"].resolve())]


@pytest.mark.slow
def test_audio_folder_skips_links_out_and_loops(lib_tree: dict[str, Path], tmp_path: Path) -> None:
    """A folder of audio: a file linked in from outside is refused unless allowed; symlink
    loops (file and directory) neither hang nor crash the scan."""
    import warnings

    from moodsic_engine.library import load_library

    folder = lib_tree["lib"] / "audio"
    os.symlink("..", folder / "up")  # a directory cycle
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = load_library(folder, cache_dir=tmp_path / "cache")
        assert [t.path for t in lib.tracks] == [str(lib_tree["inside"].resolve())]
        assert any("link_out.wav" in w and "outside" in w for w in lib.warnings)
        lib = load_library(folder, allow_outside=True, cache_dir=tmp_path / "cache")
    assert sorted(t.path for t in lib.tracks) == sorted(
        str(p.resolve()) for p in (lib_tree["inside"], lib_tree["outside"])
    )


def test_batch_manifest_cannot_write_outside_outdir(tmp_path: Path) -> None:
    from media import lavfi_video

    from moodsic_engine.batch import run_batch
    from moodsic_engine.errors import InputError

    video = lavfi_video(tmp_path / "v.mp4", seconds=2)
    manifest = tmp_path / "clips.csv"
    manifest.write_text(f"path,out\n{video},../../escaped\n", encoding="utf-8")
    with pytest.raises(InputError, match="inside the output folder"):
        run_batch(manifest, tmp_path / "out" / "deeper")
    assert not list(tmp_path.rglob("escaped*"))


# ----------------------------------------------------------------------------- hostile cue sheets
def _good_cue() -> dict:
    from moodsic_engine.cue import SCHEMA_ID

    return {
        "schema": SCHEMA_ID,
        "video": {"path": "v.mp4", "duration_s": 2.0, "fps": [25, 1], "frames": 50},
        "engine": {"version": "0.1.0", "experts": ["grammar"], "config": {}},
        "samples": [{"t": 0.0, "experts": {}, "fused": None, "stable": {"v": 0.1, "a": 0.2},
                     "held": False}],
        "cuts": [],
        "segments": [{"start_s": 0.0, "end_s": 2.0, "start_frame": 0, "end_frame": 50,
                      "mood": "calm", "mood_label": "Calm", "valence": 0.1, "arousal": 0.2,
                      "confidence": 0.9,
                      "track": {"id": "t", "title": "T", "artist": "A", "path": "t.wav",
                                "valence": 0.0, "arousal": 0.0, "in_s": 0.0}}],
    }  # fmt: skip


def _mutated(path_and_value: tuple[tuple, object]) -> str:
    keys, value = path_and_value
    d = _good_cue()
    obj = d
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value
    return json.dumps(d, allow_nan=True)


HOSTILE_CUES = {
    "garbage": "\x00\x01 not json",
    "empty": "",
    "not-object": "[1, 2, 3]",
    "deep-nesting": "[" * 100_000 + "]" * 100_000,
    "huge-int-literal": '{"schema": "moodsic.cue/1", "x": ' + "9" * 5000 + "}",
    "wrong-schema": _mutated((("schema",), "moodsic.cue/2")),
    "no-schema": _mutated((("schema",), None)),
    "nan-valence": _mutated((("segments", 0, "valence"), float("nan"))),
    "inf-duration": _mutated((("video", "duration_s"), float("inf"))),
    "nan-duration": _mutated((("video", "duration_s"), float("nan"))),
    "nan-track-in": _mutated((("segments", 0, "track", "in_s"), float("nan"))),
    "zero-fps": _mutated((("video", "fps"), [0, 0])),
    "int64-overflow-frames": _mutated((("video", "frames"), 10**30)),
    "gap-in-tiling": _mutated((("segments", 0, "end_frame"), 40)),
    "string-for-number": _mutated((("segments", 0, "valence"), "0.5")),
}


@pytest.mark.parametrize("kind", list(HOSTILE_CUES))
def test_hostile_cue_sheet_refused_in_one_line(kind: str, tmp_path: Path) -> None:
    import opentimelineio as otio

    p = tmp_path / "x.moodsic.json"
    p.write_text(HOSTILE_CUES[kind], encoding="utf-8")
    with pytest.raises(CueSheetError) as exc:
        CueSheet.from_json(p)
    assert "\n" not in str(exc.value)
    # the OTIO reader of cue sheets (file and string forms) refuses it the same way
    with pytest.raises(CueSheetError):
        otio.adapters.read_from_file(str(p), adapter_name="moodsic")
    with pytest.raises(CueSheetError):
        otio.adapters.read_from_string(HOSTILE_CUES[kind], adapter_name="moodsic")


def test_good_cue_sheet_still_reads(tmp_path: Path) -> None:
    """The hostile variants above differ from a readable sheet by one field."""
    import opentimelineio as otio

    p = tmp_path / "x.moodsic.json"
    p.write_text(json.dumps(_good_cue()), encoding="utf-8")
    assert len(CueSheet.from_json(p).segments) == 1
    assert otio.adapters.read_from_file(str(p), adapter_name="moodsic").tracks


def test_cue_sheet_never_carries_non_finite_numbers() -> None:
    """CueSheet.to_json turns NaN/inf (e.g. from an expert) into null and never writes NaN."""
    d = _good_cue()
    cue = CueSheet.from_dict(d)
    bad = CueSheet(
        video=cue.video,
        engine={**cue.engine, "x": float("nan")},
        samples=cue.samples,
        cuts=cue.cuts,
        segments=cue.segments,
        summary={"held_share": float("inf"), "nested": [float("-inf"), 1.0]},
    )
    text = bad.to_json_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back["engine"]["x"] is None and back["summary"]["nested"] == [None, 1.0]


# ----------------------------------------------------------------------------- code audit
def _code_files() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (REPO / d).rglob("*.py"))


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Calls that run a shell or deserialise code: shell=<anything but False>, os.system,
    os.popen, subprocess.getoutput, pickle/marshal/dill loads, torch.load without
    weights_only=True, numpy loads with allow_pickle=True, eval/exec."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        where = f"{filename}:{node.lineno}: {name}"
        shell = kw.get("shell")
        if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
            found.append(f"{where}(shell=...)")
        if name in {"os.system", "os.popen", "subprocess.getoutput",
                    "subprocess.getstatusoutput", "eval", "exec"}:  # fmt: skip
            found.append(where)
        if name.split(".")[-1] in {"load", "loads", "Unpickler"} and name.split(".")[0] in {
            "pickle", "cPickle", "marshal", "dill", "joblib", "shelve"}:  # fmt: skip
            found.append(where)
        if name == "torch.load":
            wo = kw.get("weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                found.append(f"{where} without weights_only=True")
        if name.endswith(("np.load", "numpy.load")):
            ap = kw.get("allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                found.append(f"{where}(allow_pickle=...)")
    return found


def test_audit_catches_what_it_should() -> None:
    bad = (
        "import subprocess, os, torch, pickle, numpy as np\n"
        "subprocess.run('ls', shell=True)\n"
        "subprocess.Popen(['a'], shell=flag)\n"
        "os.system('ls')\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "pickle.loads(b)\n"
        "np.load(p, allow_pickle=True)\n"
    )
    assert len(unsafe_calls(bad)) == 7
    ok = "subprocess.run(['ls'], shell=False)\ntorch.load(p, weights_only=True)\nnp.load(p)\n"
    assert unsafe_calls(ok) == []


def test_code_never_uses_a_shell_or_unsafe_deserialisers() -> None:
    files = _code_files()
    assert len(files) > 20
    found = []
    for p in files:
        found += unsafe_calls(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)))
    assert found == []
    # belt and braces: the literal text never appears either
    assert not [p for p in files if "shell=True" in p.read_text(encoding="utf-8")]


def test_subprocess_calls_pass_argument_lists() -> None:
    """Every subprocess call's first argument is a list/tuple expression or a name bound to
    one, never a string (a string would need a shell to be split)."""
    found = []
    for p in _code_files():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = ast.unparse(node.func)
            if name.startswith("subprocess.") and name.split(".")[-1] in {
                "run", "Popen", "call", "check_call", "check_output"}:  # fmt: skip
                first = node.args[0]
                if isinstance(first, ast.Constant | ast.JoinedStr | ast.BinOp):
                    found.append(f"{p.relative_to(REPO)}:{node.lineno}")
    assert found == []


# ----------------------------------------------------------------------------- Blender temp folder
@pytest.fixture
def addon_core(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    """blender_addon/core.py with a stand-in bpy (an unsaved .blend), temp dir = tmp_path."""
    import importlib
    import tempfile
    import types
    from unittest import mock

    fake_bpy = mock.MagicMock()
    fake_bpy.data.filepath = ""
    monkeypatch.setitem(sys.modules, "bpy", fake_bpy)
    monkeypatch.setitem(sys.modules, "bpy_extras", mock.MagicMock())
    pkg = types.ModuleType("moodsic_addon_pkg")
    pkg.__path__ = [str(REPO / "blender_addon")]
    monkeypatch.setitem(sys.modules, "moodsic_addon_pkg", pkg)
    for sub in ("core", "apply", "compat", "placement", "runner"):
        monkeypatch.delitem(sys.modules, f"moodsic_addon_pkg.{sub}", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    core = importlib.import_module("moodsic_addon_pkg.core")
    yield core
    for sub in ("core", "apply", "compat", "placement", "runner"):
        sys.modules.pop(f"moodsic_addon_pkg.{sub}", None)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership")
def test_blender_temp_folder_cannot_be_hijacked(addon_core, tmp_path: Path) -> None:
    """An unsaved .blend keeps its cue sheets in temp: in a private per-user folder, never in
    one another local user prepared (a symlink to their folder, or a folder they own)."""
    d = Path(addon_core.work_dir())
    assert d.parent == tmp_path and d.name == f"moodsic-blender-{os.getuid()}"
    assert (d.stat().st_mode & 0o777) == 0o700
    assert Path(addon_core.work_dir()) == d  # stable while nothing is wrong

    d.rmdir()
    attacker = tmp_path / "attacker"
    attacker.mkdir(mode=0o777)
    os.symlink(attacker, d)
    config = Path(addon_core.write_config(type("S", (), {
        "min_segment_s": 8.0, "target_lufs": -16.0, "duck": True, "crossfade_s": 1.0})()))  # fmt: skip
    assert not config.is_relative_to(attacker) and not list(attacker.iterdir())
    assert (config.parent.stat().st_mode & 0o777) == 0o700

    d.unlink()
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)  # a folder anyone may write into
    assert Path(addon_core.work_dir()) != d


# ----------------------------------------------------------------------------- bounded inputs
def _special(kind: str, path: Path) -> Path:
    """A FIFO (no writer: opening it blocks forever), a Unix socket, a character device or a
    folder, where a file is expected."""
    import socket

    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()  # the socket file stays
    elif kind == "device":
        return Path("/dev/zero")  # endless: a reader that trusts it never returns
    else:
        path.mkdir()
    return path


def _readers() -> dict:  # name -> (suffix, callable on the path)
    from moodsic_engine.batch.discover import discover
    from moodsic_engine.config import Config
    from moodsic_engine.eval.veatic import read_ratings
    from moodsic_engine.library import load_library
    from moodsic_engine.weights import find_weight, load_state_dict

    return {
        "config": (".toml", Config.from_toml),
        "library-manifest": (".csv", load_library),
        "cue-sheet": (".moodsic.json", CueSheet.from_json),
        "veatic-ratings": (".csv", read_ratings),
        "weights": (".pth", load_state_dict),
        "named-weights": (".pth", lambda p: find_weight(p, None, ())),
        "batch-manifest": (".csv", discover),
    }


KINDS = {"fifo": "fifo", "socket": "socket", "device": "device", "folder": "directory"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("reader", list(_readers()))
def test_non_regular_files_refused_at_once(reader: str, kind: str, tmp_path: Path) -> None:
    suffix, read = _readers()[reader]
    path = _special(kind, tmp_path / f"input{suffix}")
    if kind == "folder" and reader in ("library-manifest", "batch-manifest"):
        pytest.skip("a folder is a valid library / batch input")
    t0 = time.monotonic()
    with pytest.raises(MoodsicError) as exc:
        read(path)
    assert time.monotonic() - t0 < 5
    message = str(exc.value)
    assert "\n" not in message and KINDS[kind] in message.lower(), message


@pytest.mark.timeout(60)
def test_deam_folder_with_a_fifo_for_its_annotations(tmp_path: Path) -> None:
    from moodsic_engine.library import load_library

    os.mkfifo(tmp_path / "static_annotations_averaged_songs_1_2000.csv")
    with pytest.raises(LibraryError, match="FIFO"):
        load_library(tmp_path)
    # a planted index that is a FIFO is ignored, not read (nor replaced)
    lib = tmp_path / "lib"
    _wav(lib / "a.wav")
    (lib / "manifest.csv").write_text("id,path,valence,arousal\na,a.wav,0.5,0.5\n")
    os.mkfifo(lib / ".moodsic-index.json")
    assert [t.id for t in load_library(lib, cache_dir=tmp_path / "cache").tracks] == ["a"]
    assert (lib / ".moodsic-index.json").is_fifo()


def test_cue_sheet_and_batch_manifest_over_the_size_cap_are_refused_unread(
    tmp_path: Path,
) -> None:
    from moodsic_engine.batch.discover import discover
    from moodsic_engine.config import Config

    for name, read in (("big.moodsic.json", CueSheet.from_json), ("big.csv", discover),
                       ("big.toml", Config.from_toml)):  # fmt: skip
        big = tmp_path / name
        with big.open("wb") as f:
            f.truncate(65 << 20)  # sparse: 65 MiB declared, nothing to read quickly
        t0 = time.monotonic()
        with pytest.raises(MoodsicError, match="too large"):
            read(big)
        assert time.monotonic() - t0 < 1


def test_cli_fifo_inputs_one_line(tmp_path: Path) -> None:
    """FIFOs given as the video, the config, the library and the --reuse cue sheet: each one
    line, exit 1, within seconds (before, each blocked forever)."""
    from media import lavfi_video

    video = lavfi_video(tmp_path / "v.mp4", seconds=1)
    for name in ("f.mp4", "f.toml", "f.csv", "f.moodsic.json"):
        os.mkfifo(tmp_path / name)
    cases = {
        "video": ([str(tmp_path / "f.mp4")], "video"),
        "config": ([str(video), "--config", str(tmp_path / "f.toml")], "config file"),
        "library": ([str(video), "--library", str(tmp_path / "f.csv")], "library"),
        "reuse": ([str(video), "--reuse", str(tmp_path / "f.moodsic.json")], "cue sheet"),
    }
    for what, (args, fragment) in cases.items():
        t0 = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-m", "moodsic_engine.cli", "score", *args, "-o",
             str(tmp_path / "c.json"), "--experts", "grammar", "--progress", "none"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert time.monotonic() - t0 < 60, what
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == 1 and len(lines) == 1, (what, res.stderr)
        assert fragment in lines[0] and "FIFO" in lines[0], (what, lines[0])
    assert not (tmp_path / "c.json").exists()
