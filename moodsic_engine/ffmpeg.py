"""Every ffmpeg/ffprobe call the engine makes: decode audio to an array, probe a file's audio
(has a stream, duration, sample rate) and run ffmpeg for encoding/muxing.

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
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

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


def audio_duration(path: str | os.PathLike[str]) -> float | None:
    """Duration in seconds of a file that has audio, per ffprobe; None when it has no audio
    stream (a video without sound passed for a track) or cannot be probed."""
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
             "stream=codec_type:format=duration", "-of", "json", os.path.abspath(path)],
            capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            return None
        info = json.loads(out.stdout or "{}")
        if not info.get("streams"):
            return None
        duration = float(info.get("format", {}).get("duration", "nan"))
        return duration if math.isfinite(duration) and duration > 0 else None
    except (OSError, ValueError, TypeError, AttributeError, subprocess.SubprocessError):
        return None


def audio_sample_rate(path: str | os.PathLike[str]) -> int | None:
    """Sample rate of the file's first audio stream per ffprobe; None when unknown."""
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
             "stream=sample_rate", "-of", "csv=p=0", os.path.abspath(path)],
            capture_output=True, text=True, check=False, timeout=_PROBE_TIMEOUT_S,
        )  # fmt: skip
        return int(out.stdout.strip().splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def run_ffmpeg(*args: str, purpose: str = "to write the video") -> subprocess.CompletedProcess[str]:
    """Run `ffmpeg -v error -nostdin -y ARGS` (encode, mux) and return the finished process
    (the caller reads returncode/stderr). Raises ResourceError when ffmpeg is not installed;
    `purpose` completes that message ("ffmpeg is not installed (needed <purpose>)")."""
    try:
        return subprocess.run(
            ["ffmpeg", "-v", "error", "-nostdin", "-y", *args],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise ResourceError(f"ffmpeg is not installed (needed {purpose})") from None
