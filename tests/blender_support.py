"""Helpers for the Blender add-on tests: load add-on modules without bpy, fake engine, media,
and Blender's Python (bpy from PyPI) in its own venv."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import wave
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ADDON = REPO / "blender_addon"


def addon_module(name: str) -> ModuleType:
    """Import blender_addon/<name>.py by path (the package's __init__ needs bpy; these do not).

    The module lives in a stand-in package over blender_addon/ whose __init__ is never run, so
    its relative imports of other bpy-free modules (placement -> music_plan) work."""
    key = f"moodsic_addon_{name}"
    if key in sys.modules:
        return sys.modules[key]
    package = "moodsic_addon_src"
    if package not in sys.modules:
        stand_in = ModuleType(package)
        stand_in.__path__ = [str(ADDON)]
        sys.modules[package] = stand_in
    module = importlib.import_module(f"{package}.{name}")
    sys.modules[key] = module
    return module


# ----------------------------------------------------------------------------- media
def make_video(
    path: Path, *, seconds: float = 20.0, rate: str = "30000/1001", audio: bool = False
) -> Path:
    args = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi"]
    args += ["-i", f"testsrc=size=160x90:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=200:duration={seconds}", "-c:a", "aac"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30"]
    args += ["-shortest", str(path)] if audio else [str(path)]
    subprocess.run(args, check=True)
    return path


def write_tone(
    path: Path, freq: float, seconds: float, *, amp: float = 0.3, rate: int = 48000
) -> Path:
    """A stereo music stand-in: a tone with a little tremolo, 16-bit WAV (stdlib writer)."""
    t = np.arange(int(seconds * rate)) / rate
    x = amp * np.sin(2 * np.pi * freq * t) * (0.8 + 0.2 * np.sin(2 * np.pi * 2 * t))
    pcm = (np.clip(np.stack([x, x], 1), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def make_library(folder: Path, n: int = 4, seconds: float = 30.0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_tone(folder / f"track{i}.wav", 220.0 * (1 + i / 4), seconds) for i in range(n)]


# ----------------------------------------------------------------------------- fake engine
FAKE_ENGINE = r"""
import json, os, subprocess, sys, time, wave

MOODS = [("calm-neutral", "Calm & Neutral", 0.0, -0.4),
         ("bright-engaging", "Bright & Engaging", 0.6, 0.5),
         ("tense-intense", "Tense & Intense", -0.5, 0.6)]


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def probe(video):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets,r_frame_rate", "-of", "json", video],
                         capture_output=True, text=True, check=True).stdout
    s = json.loads(out)["streams"][0]
    num, den = (int(x) for x in s["r_frame_rate"].split("/"))
    return int(s["nb_read_packets"]), num, den


def main(argv):
    log = os.environ.get("FAKE_ENGINE_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps(argv) + "\n")
    if argv[:3] == ["weights", "status", "--json"]:
        print(json.dumps([{"name": "grammar", "ready": True, "uses": "film grammar", "reason": ""},
                          {"name": "face", "ready": False, "uses": "", "reason": "no EmoNet weights"}]))
        return 0
    if argv[:2] == ["blender", "speech"]:
        emit(event="progress", stage="speech", done=1, total=1)
        spans = []
        if os.environ.get("FAKE_ENGINE_SPEECH"):
            spans = [[float(x) for x in os.environ["FAKE_ENGINE_SPEECH"].split("-")]]
        emit(event="done", speech=spans)
        return 0
    if not argv or argv[0] != "score":
        print("moodsic: error: usage", file=sys.stderr)
        return 2
    video, args = argv[1], argv[2:]
    opts, reroll = {}, {}
    i = 0
    while i < len(args):
        if args[i] == "--reroll":
            reroll[int(args[i + 1])] = reroll.get(int(args[i + 1]), 0) + 1
        else:
            opts[args[i]] = args[i + 1]
        i += 2
    assert opts["--progress"] == "json"
    if os.environ.get("FAKE_ENGINE_FAIL"):
        emit(event="error", message=os.environ["FAKE_ENGINE_FAIL"])
        print("moodsic: error: " + os.environ["FAKE_ENGINE_FAIL"], file=sys.stderr)
        return 1
    if os.environ.get("FAKE_ENGINE_CRASH"):
        print("moodsic: error: " + os.environ["FAKE_ENGINE_CRASH"], file=sys.stderr)
        return 1
    if not os.path.exists(video):
        emit(event="error", message=f"video not found: {video}")
        return 1
    if os.environ.get("FAKE_ENGINE_SLEEP"):
        child = subprocess.Popen(["sleep", "600"])
        with open(os.environ["FAKE_ENGINE_SLEEP"], "w") as fh:
            fh.write(str(child.pid))
        emit(event="progress", stage="perceive", done=0, total=10)
        time.sleep(600)
    video = os.environ.get("FAKE_ENGINE_VIDEO", video)  # simulate a sheet for another video
    frames, num, den = probe(video)
    for stage in ("sample", "perceive"):
        for k in range(3):
            emit(event="progress", stage=stage, done=k + 1, total=3)
    lib = opts["--library"]
    tracks = sorted(os.path.join(lib, f) for f in os.listdir(lib) if f.endswith(".wav"))
    bounds = [0, frames // 3, 2 * frames // 3, frames]
    segments = []
    for s in range(3):
        slug, label, v, a = MOODS[s]
        path = tracks[(s + reroll.get(s, 0)) % len(tracks)]
        with wave.open(path) as w:
            dur = w.getnframes() / w.getframerate()
        segments.append({
            "start_s": bounds[s] * den / num, "end_s": bounds[s + 1] * den / num,
            "start_frame": bounds[s], "end_frame": bounds[s + 1],
            "mood": slug, "mood_label": label, "valence": v, "arousal": a, "confidence": 0.8,
            "track": {"id": os.path.basename(path), "title": os.path.splitext(os.path.basename(path))[0],
                      "artist": "test", "path": os.environ.get("FAKE_ENGINE_TRACK", os.path.abspath(path)), "valence": v, "arousal": a,
                      "in_s": float(os.environ.get("FAKE_ENGINE_IN_S", "0")), "duration_s": dur,
                      "rank": reroll.get(s, 0)}})
    cue = {"schema": "moodsic.cue/1",
           "video": {"path": os.path.abspath(video), "duration_s": frames * den / num,
                     "fps": [num, den], "frames": frames},
           "engine": {"version": "fake", "experts": ["grammar"], "config": {}},
           "samples": [], "cuts": [], "segments": segments, "summary": {}}
    out = opts["-o"]
    with open(out + ".tmp", "w") as fh:
        json.dump(cue, fh)
    os.replace(out + ".tmp", out)
    emit(event="done", cue=os.path.abspath(out))
    return 0


sys.exit(main(sys.argv[1:]))
"""


def fake_engine(folder: Path, python: str | None = None) -> Path:
    """An executable that speaks the `moodsic score --progress json` protocol."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fake-moodsic"
    path.write_text(f"#!{python or sys.executable}\n" + textwrap.dedent(FAKE_ENGINE))
    path.chmod(0o755)
    return path


# ----------------------------------------------------------------------------- Blender
def blender_python(create: bool = True) -> str | None:
    """Blender's Python (bpy from PyPI): $MOODSIC_BLENDER_PYTHON, else <repo>/.venv-blender,
    created with tests/blender_env.sh when missing (slow: ~1 GB download)."""
    env = os.environ.get("MOODSIC_BLENDER_PYTHON")
    if env:
        return env if Path(env).exists() else None
    py = REPO / ".venv-blender" / "bin" / "python"
    if not py.exists() and create and shutil.which("bash"):
        subprocess.run(["bash", str(REPO / "tests" / "blender_env.sh")], check=True)
    return str(py) if py.exists() else None


def run_blender_script(
    python: str, script: str, payload: dict, tmp: Path, timeout: float = 600
) -> dict:
    """Run `script` in Blender's Python with `payload` as JSON; return the JSON it writes."""
    src = tmp / "blender_script.py"
    src.write_text(script)
    inp, out = tmp / "payload.json", tmp / "result.json"
    inp.write_text(json.dumps(payload))
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = str(tmp / "blender-user")
    env["TMPDIR"] = str(tmp)  # the add-on keeps cue sheets of unsaved files in the temp folder
    done = subprocess.run(
        [python, str(src), str(inp), str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if done.returncode != 0 or not out.exists():
        raise AssertionError(
            f"Blender script failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    return json.loads(out.read_text())
