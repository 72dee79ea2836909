"""Every ffmpeg/ffprobe call the engine makes: decode audio to an array, probe a file's audio
(has a stream, duration, sample rate) or its streams (`probe_json`), run ffmpeg for
encoding/muxing (`run_ffmpeg`, `encode_lavfi` for generated test media), feed it through a
pipe (`open_ffmpeg_pipe`: the demo's frames, the live stream) and read its version.
No other module starts ffmpeg/ffprobe itself (tests/test_import_rules.py checks that).

Paths are passed absolute: a relative "a: b.mp4" would be read as a protocol and "-x.mp4" as
an option. A missing ffmpeg/ffprobe binary is a ResourceError (one line), except in the probes
that answer "unknown" (None) so callers can fall back.

Also here: `quiet_native_stderr`, which silences what native decoders (libsndfile's mpg123)
print on file descriptor 2 while a file is opened.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ResourceError

_QUIET_LOCK = threading.Lock()
_QUIET_STATE = {"depth": 0, "saved": -1}
_PROBE_TIMEOUT_S = 30


@contextlib.contextmanager
def quiet_native_stderr(path: str | os.PathLike[str]) -> Iterator[None]:
    """Silence what C code prints on file descriptor 2 while libsndfile opens an MP3: its
    libmpg123 writes "Note: Illegal Audio-MPEG-Header ... Trying to resync" lines for a damaged
    file, which would break the one-line error a user gets. Other formats pass through.
    Re-entrant and thread-safe: the first caller in redirects fd 2, the last one out restores
    it (two threads each saving and restoring would leave stderr silenced for good)."""
    if Path(path).suffix.lower() not in (".mp3", ".mp2", ".mpga"):
        yield
        return
    with _QUIET_LOCK:
        if _QUIET_STATE["depth"] == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError):  # no usable fd 2 (embedded interpreters)
                saved = -1
            if saved >= 0:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            _QUIET_STATE["saved"] = saved
        _QUIET_STATE["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET_STATE["depth"] -= 1
            if _QUIET_STATE["depth"] == 0 and _QUIET_STATE["saved"] >= 0:
                os.dup2(_QUIET_STATE["saved"], 2)
                os.close(_QUIET_STATE["saved"])
                _QUIET_STATE["saved"] = -1


def decode_audio(
    path: str | os.PathLike[str],
    sr: int,
    *,
    stream: str = "0:a:0",
    max_s: float | None = None,
) -> np.ndarray | None:
    """Decode a file's audio with ffmpeg.

    Parameters
    ----------
    path : the media file (audio or video).
    sr : output sample rate.
    stream : ffmpeg stream specifier of the audio to decode.
    max_s : at most this many seconds when given (the V/A estimate reads a minute, not a whole
        hour-long file into memory).

    Returns
    -------
    float32 [n, 2] at `sr`, or None when ffmpeg cannot decode it. Raises ResourceError when
    ffmpeg is not installed.
    """
    limit = ["-t", f"{max_s:g}"] if max_s is not None else []
    try:
        proc = subprocess.run(
            ["ffmpeg", "-v", "error", "-nostdin", "-i", os.path.abspath(path), "-map", stream, "-vn",
             *limit, "-ac", "2", "-ar", str(sr), "-f", "f32le", "-"],
            capture_output=True,
            check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise ResourceError("ffmpeg is not installed (needed to read this audio)") from None
    if proc.returncode != 0 or not proc.stdout:
        return None
    usable = len(proc.stdout) // 8 * 8  # whole stereo float32 frames
    return np.frombuffer(proc.stdout[:usable], dtype=np.float32).reshape(-1, 2).copy()


def has_audio_stream(path: str | os.PathLike[str]) -> bool:
    """Whether the file has at least one audio stream. Raises ResourceError without ffprobe."""
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index",
             "-of", "csv=p=0", os.path.abspath(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise ResourceError("ffprobe is not installed") from None
    return out.returncode == 0 and bool(out.stdout.strip())


def _first_audio_stream(info: dict[str, Any] | None) -> dict[str, Any] | None:
    streams = (info or {}).get("streams") or []
    return next((st for st in streams if st.get("codec_type") == "audio"), None)


def audio_duration(path: str | os.PathLike[str]) -> float | None:
    """Duration in seconds of a file that has audio, per ffprobe; None when it has no audio
    stream (a video without sound passed for a track) or cannot be probed."""
    info = probe_json(path, "stream=codec_type:format=duration")
    if _first_audio_stream(info) is None:
        return None
    try:
        duration = float((info or {}).get("format", {}).get("duration", "nan"))
    except (ValueError, TypeError, AttributeError):
        return None
    return duration if math.isfinite(duration) and duration > 0 else None


def audio_sample_rate(path: str | os.PathLike[str]) -> int | None:
    """Sample rate of the file's first audio stream per ffprobe; None when unknown."""
    stream = _first_audio_stream(probe_json(path, "stream=codec_type,sample_rate"))
    try:
        return int(stream["sample_rate"]) if stream is not None else None
    except (KeyError, ValueError, TypeError):
        return None


def find_tool(name: str = "ffmpeg", *, purpose: str = "") -> str:
    """Absolute path of `name` ("ffmpeg" or "ffprobe") on the PATH.

    Raises ResourceError (one line) when it is not installed; `purpose` says what for
    ("to stream the music" -> "ffmpeg is not installed (needed to stream the music; ...)")."""
    path = shutil.which(name)
    if path is None:
        why = f"needed {purpose}; " if purpose else ""
        raise ResourceError(f"{name} is not installed ({why}on Debian: apt install ffmpeg)")
    return path


def tool_version(name: str = "ffmpeg") -> str | None:
    """The version `name -version` prints first ("6.1.1-3ubuntu5"), None when not installed or
    unreadable."""
    path = shutil.which(name)
    if path is None:
        return None
    try:
        first = subprocess.run(
            [path, "-version"], capture_output=True, text=True, check=False,
            timeout=_PROBE_TIMEOUT_S,
        ).stdout.splitlines()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if first and " version " in first[0]:
        return first[0].split(" version ")[1].split()[0]
    return None


def probe_json(
    path: str | os.PathLike[str], entries: str, *, timeout: float = _PROBE_TIMEOUT_S
) -> dict[str, Any] | None:
    """`ffprobe -show_entries ENTRIES -of json PATH` as a dict (e.g. entries
    "stream=codec_type,width,height"); None when ffprobe is missing, fails or times out, so
    callers can answer "unknown"."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-v", "error", "-show_entries", entries, "-of", "json", os.path.abspath(path)],
            capture_output=True, text=True, timeout=timeout, check=True,
        ).stdout  # fmt: skip
        info = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def run_ffmpeg(
    *args: str,
    purpose: str = "to write the video",
    check: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `ffmpeg -v error -nostdin -y ARGS` (encode, mux) and return the finished process
    (the caller reads returncode/stderr). Raises ResourceError when ffmpeg is not installed;
    `purpose` completes that message ("ffmpeg is not installed (needed <purpose>)").

    With `check`, a failure or a run past `timeout` seconds is a ResourceError too, in one line:
    "ffmpeg failed <purpose>: <its last error line>"."""
    try:
        proc = subprocess.run(
            ["ffmpeg", "-v", "error", "-nostdin", "-y", *args],
            capture_output=True, text=True, check=False, timeout=timeout,
        )  # fmt: skip
    except FileNotFoundError:
        raise ResourceError(f"ffmpeg is not installed (needed {purpose})") from None
    except subprocess.TimeoutExpired:
        raise ResourceError(f"ffmpeg took over {timeout:g} s {purpose}") from None
    if check and proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        raise ResourceError(f"ffmpeg failed {purpose}: {lines[-1].strip()[:200]}")
    return proc


def encode_lavfi(
    out: str | os.PathLike[str],
    sources: Sequence[str],
    *args: str,
    purpose: str = "to generate test media",
    timeout: float | None = None,
) -> Path:
    """Generated media: each of `sources` (lavfi graphs such as "testsrc2=s=160x96:d=2" or
    "sine=frequency=440:duration=2") as an input, then `args` (codecs, -filter_complex, ...),
    written to `out`. Raises ResourceError (one line) when ffmpeg is missing or fails."""
    inputs = [a for src in sources for a in ("-f", "lavfi", "-i", src)]
    run_ffmpeg(*inputs, *args, os.path.abspath(out), purpose=purpose, check=True, timeout=timeout)
    return Path(out)


def open_ffmpeg_pipe(
    args: Sequence[str], *, purpose: str, exe: str | None = None
) -> subprocess.Popen[bytes]:
    """Start `ffmpeg ARGS` reading raw data from its stdin (a pipe the caller writes and closes);
    its stdout is discarded and its stderr is a pipe the caller reads after it exits (keep it
    short: -loglevel error). `exe` is a path from `find_tool` (looked up here otherwise).
    Raises ResourceError when ffmpeg is not installed."""
    path = exe or find_tool("ffmpeg", purpose=purpose)
    try:
        return subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
            [path, *args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    except FileNotFoundError:  # removed since it was found
        raise ResourceError(f"ffmpeg is not installed (needed {purpose})") from None
