"""Run the `moodsic` engine CLI in a subprocess and read its JSON progress lines.

Blender's Python cannot carry torch, so the engine always runs outside Blender. No bpy
here (tested without Blender). Arguments are lists, never a shell. The engine is started
in its own process group so cancelling ends it and whatever it spawned (ffmpeg), and
nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

ENGINE_NAME = "moodsic"


class EngineError(Exception):
    """The engine is missing or failed; the message is one line for a Blender report."""


def find_engine(override: str = "") -> str:
    """The engine executable: the preference if set, else `moodsic` on PATH."""
    if override:
        path = os.path.abspath(os.path.expanduser(override))
        if not os.path.isfile(path):
            raise EngineError(f"Moodsic engine not found at {path} (see the add-on preferences)")
        if not os.access(path, os.X_OK):
            raise EngineError(f"Moodsic engine at {path} is not executable")
        return path
    found = shutil.which(ENGINE_NAME)
    if not found:
        raise EngineError(
            "Moodsic engine not found on PATH: install it (pip install moodsic) "
            "or set its path in the add-on preferences"
        )
    return found


@dataclass(frozen=True)
class ScoreRequest:
    video: str
    cue: str
    library: str = "builtin"
    sample_fps: float | None = None
    experts: str = ""  # comma list; empty: every available expert
    config: str = ""  # TOML written by the add-on (segment length, loudness, ducking)
    reroll: tuple[int, ...] = ()  # segment indices, repeated n times for the n-th next track
    reuse: str = ""  # an earlier cue sheet of this video: its analysis is reused if still valid
    extra: tuple[str, ...] = ()


def score_args(engine: str, req: ScoreRequest) -> list[str]:
    args = [engine, "score", req.video, "-o", req.cue, "--progress", "json"]
    args += ["--library", req.library or "builtin"]
    if req.sample_fps:
        args += ["--sample-fps", f"{float(req.sample_fps):g}"]
    if req.experts:
        args += ["--experts", req.experts]
    if req.config:
        args += ["--config", req.config]
    for index in req.reroll:
        args += ["--reroll", str(int(index))]
    if req.reuse:
        args += ["--reuse", req.reuse]
    args += list(req.extra)
    return args


@dataclass
class Progress:
    stage: str = ""
    done: int = 0
    total: int = 0
    stages_seen: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else max(0.0, min(1.0, self.done / self.total))


class EngineRun:
    """One engine process. `poll()` from a timer; `wait()` in background mode."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.progress = Progress()
        self.result: dict[str, Any] | None = None  # the "done" event
        self.error: str | None = None
        self.cancelled = False
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[str] = []
        kwargs: dict[str, Any] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        else:  # pragma: no cover - Windows
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - list arguments, no shell
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=env,
                **kwargs,
            )
        except OSError as exc:
            raise EngineError(
                f"cannot start the Moodsic engine {self.args[0]}: {exc.strerror}"
            ) from None
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out.start()
        self._err.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # the contract says stdout is JSON only; tolerate stray lines
            if isinstance(event, dict):
                self._events.put(event)
        self._events.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip("\n"))
            del self._stderr[:-50]

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "progress":
            stage = str(event.get("stage", ""))
            if stage and stage not in self.progress.stages_seen:
                self.progress.stages_seen.append(stage)
            self.progress.stage = stage
            self.progress.done = int(event.get("done", 0) or 0)
            self.progress.total = int(event.get("total", 0) or 0)
        elif kind == "done":
            self.result = event
        elif kind == "error":
            self.error = " ".join(str(event.get("message", "engine error")).split())

    def poll(self) -> bool:
        """Read what arrived; True once the process has ended and its output is consumed."""
        ended = False
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event is None:
                ended = True
                break
            self._handle(event)
        if ended:
            self._events.put(None)  # keep the end sentinel for later polls
            self._finish()
            return True
        return False

    def _finish(self) -> None:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return
        self._err.join(timeout=2)
        if self.cancelled:
            self.error = self.error or "cancelled"
        elif code != 0 and self.error is None:
            tail = [ln for ln in self._stderr if ln.strip()]
            msg = tail[-1] if tail else f"exit code {code}"
            prefix = "moodsic: error: "
            self.error = msg[len(prefix) :] if msg.startswith(prefix) else msg
        elif code == 0 and self.result is None and self.error is None:
            self.error = "the engine ended without reporting a cue sheet"

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(
        self, *, timeout: float | None = None, on_progress: Callable[[Progress], None] | None = None
    ) -> None:
        """Block until the engine ends (background mode, tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.poll():
            if on_progress is not None:
                on_progress(self.progress)
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                self.error = f"the engine did not finish within {timeout:g} s"
                return
            time.sleep(0.05)

    def cancel(self) -> None:
        """End this engine run (and its children) only."""
        self.cancelled = True
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            if os.name == "posix":
                os.killpg(self.proc.pid, signal.SIGTERM)
            else:  # pragma: no cover
                self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                if os.name == "posix":
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:  # pragma: no cover
                    self.proc.kill()
            self.proc.wait(timeout=5)

    def cue_path(self) -> str:
        if self.error:
            raise EngineError(self.error)
        if not self.result or not self.result.get("cue"):
            raise EngineError("the engine ended without reporting a cue sheet")
        return str(self.result["cue"])


def engine_env() -> dict[str, str]:
    """The environment for the engine: Blender's own Python variables removed."""
    env = dict(os.environ)
    for key in ("PYTHONHOME", "PYTHONPATH", "PYTHONNOUSERSITE"):
        env.pop(key, None)
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return env


def experts_status(engine: str, *, timeout: float = 60.0) -> list[dict[str, Any]]:
    """`moodsic weights status --json`: which experts the engine can run."""
    try:
        done = subprocess.run(  # noqa: S603 - list arguments, no shell
            [engine, "weights", "status", "--json"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=engine_env(),
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"cannot ask the engine for its experts: {exc}") from None
    if done.returncode != 0:
        tail = [ln for ln in done.stderr.splitlines() if ln.strip()]
        raise EngineError(tail[-1] if tail else f"engine exit code {done.returncode}")
    try:
        rows = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise EngineError("the engine's expert status is not JSON") from None
    return [r for r in rows if isinstance(r, dict)]


def speech_args(engine: str, video: str, cue: str = "", config: str = "") -> list[str]:
    """`moodsic blender speech`: with `cue`, the engine also reports the mixdown's levels for
    that cue sheet (dialogue loudness, music gain, ducking depth) as "levels"."""
    args = [engine, "blender", "speech", video, "--progress", "json"]
    if cue:
        args += ["--cue", cue]
        if config:
            args += ["--config", config]
    return args


def _has_audio(cue_path: str) -> bool:
    """False only when the cue sheet says the video has no audio track."""
    try:
        with open(cue_path, encoding="utf-8") as fh:
            return json.load(fh).get("video", {}).get("has_audio", True) is not False
    except (OSError, json.JSONDecodeError, AttributeError):
        return True


class ScoreBatch:
    """Engine runs one after another (scoring each source video, then finding its dialogue
    when ducking is on, and the mixdown's levels when `levels` is on), polled by a timer or
    waited for."""

    def __init__(
        self,
        engine: str,
        requests: Sequence[ScoreRequest],
        *,
        speech: bool = False,
        levels: bool = False,
    ) -> None:
        self.engine = engine
        self.requests = list(requests)
        self.want_speech = speech
        self.want_levels = levels
        self.levels: dict[str, dict[str, Any]] = {}  # video path -> the engine's levels
        self.cues: dict[str, str] = {}  # video path -> cue sheet path
        self.speech: dict[str, list[tuple[float, float]]] = {}  # video path -> dialogue (s)
        self.warnings: list[str] = []
        self.error: str | None = None
        self.cancelled = False
        self._steps: list[tuple[str, ScoreRequest]] = [("score", r) for r in self.requests]
        self._done_steps = 0
        self.run: EngineRun | None = None
        self._step: tuple[str, ScoreRequest] | None = None
        self._start_next()

    def _start_next(self) -> None:
        if self._done_steps < len(self._steps):
            self._step = self._steps[self._done_steps]
            kind, req = self._step
            if kind == "score":
                args = score_args(self.engine, req)
            else:
                cue = self.cues.get(req.video, "") if self.want_levels else ""
                args = speech_args(self.engine, req.video, cue, req.config)
            self.run = EngineRun(args, env=engine_env())
        else:
            self.run, self._step = None, None

    @property
    def finished(self) -> bool:
        return self.run is None

    def poll(self) -> bool:
        """Advance; True when every run has ended (or one failed)."""
        if self.run is None:
            return True
        if not self.run.poll():
            return False
        assert self._step is not None
        kind, req = self._step
        name = os.path.basename(req.video)
        if kind == "score":
            if self.run.error:
                self.error = f"{name}: {self.run.error}"
                self.run = None
                return True
            cue = self.run.cue_path()
            self.cues[req.video] = cue
            if self.want_levels or (self.want_speech and _has_audio(cue)):
                self._steps.insert(self._done_steps + 1, ("speech", req))
        else:
            # Ducking is a refinement: without it the music is still placed.
            result = self.run.result or {}
            if self.run.error or not isinstance(result.get("speech"), list):
                why = self.run.error or "no answer"
                what = "no dialogue ducking"
                if self.want_levels:
                    what += " and no engine levels (the music keeps the add-on's own level)"
                self.warnings.append(f"{name}: {what} ({why})")
            else:
                # Asked for the levels only (no ducking, or a video without sound): no speech.
                if self.want_speech and _has_audio(self.cues.get(req.video, "")):
                    self.speech[req.video] = [
                        (float(a), float(b)) for a, b in result["speech"] if float(b) > float(a)
                    ]
                if isinstance(result.get("levels"), dict):
                    self.levels[req.video] = dict(result["levels"])
        self._done_steps += 1
        self._start_next()
        return self.run is None

    @property
    def fraction(self) -> float:
        """Overall progress 0..1, never going backwards (each video is one equal share)."""
        if self.run is None or self._step is None:
            return 1.0 if self._done_steps else 0.0
        kind, req = self._step
        p = self.run.progress
        # The engine's stages are not known in advance: each one fills half of what is left.
        k = max(0, len(p.stages_seen) - 1)
        inner = 1.0 - 0.5**k + 0.5 ** (k + 1) * p.fraction if p.stages_seen else 0.0
        score_share = 0.85 if self.want_speech or self.want_levels else 1.0
        if kind == "score":
            within = score_share * inner
        else:
            within = score_share + (1.0 - score_share) * inner
        i = self.requests.index(req)
        return min(1.0, (i + within) / max(1, len(self.requests)))

    @property
    def status(self) -> str:
        if self.run is None or self._step is None:
            return "Moodsic: done"
        p = self.run.progress
        kind, req = self._step
        what = "scoring" if kind == "score" else "finding dialogue and levels in"
        stage = f"{p.stage} {p.done}/{p.total}" if p.stage else "starting"
        step = f"{self._done_steps + 1}/{len(self._steps)}"
        return f"Moodsic: {what} {os.path.basename(req.video)} ({step}) {stage} - Esc to cancel"

    def cancel(self) -> None:
        self.cancelled = True
        if self.run is not None:
            self.run.cancel()
        self.run = None
        self.error = "cancelled"

    def wait(self, *, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.poll():
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                self.error = f"the engine did not finish within {timeout:g} s"
                return
            time.sleep(0.05)
