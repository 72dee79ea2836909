"""Where the live music goes: the sound card (sounddevice/PortAudio), a WAV file, an HTTP or
Icecast stream through an ffmpeg subprocess. Each sink takes float32 [n, 2] blocks.

The sound card paces the session by itself (its writes block); the file and the stream do
not, so a session without the sound card paces itself on the session clock.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import InputError, ResourceError
from ..ffmpeg import find_tool, open_ffmpeg_pipe


class Sink(Protocol):
    name: str
    paces: bool  # True when write() blocks in real time (a sound card)

    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


class DeviceSink:
    """The default (or named) sound device through PortAudio.

    Raises ResourceError with one line when sounddevice, PortAudio or an output device is missing.
    """

    name = "sound card"
    paces = True

    def __init__(self, sr: int, device: str | int | None = None) -> None:
        try:
            import sounddevice as sd
        except ImportError as exc:  # the package, or the PortAudio library under it
            raise ResourceError(
                f"no sound output: {exc} (pip install sounddevice; Debian: apt install "
                "libportaudio2), or record with --out-audio / --stream"
            ) from None
        try:
            self._stream = sd.OutputStream(
                samplerate=sr,
                channels=2,
                dtype="float32",
                device=int(device) if isinstance(device, str) and device.isdigit() else device,
                latency="high",
            )
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudioError, ValueError for a bad name
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ResourceError(
                f"no sound device to play on ({text}); record with --out-audio or --stream"
            ) from None

    def write(self, block: np.ndarray) -> None:
        self._stream.write(np.ascontiguousarray(block, dtype=np.float32))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.stop()
            self._stream.close()


class WavSink:
    """A 16-bit WAV (or FLAC by extension) written as the session goes, renamed into place
    when the session ends (a crash leaves only a `.part` file beside it)."""

    paces = False

    def __init__(self, path: str | Path, sr: int) -> None:
        import soundfile as sf

        from ..fileio import atomic_path

        self.path = Path(path)
        self.name = str(self.path)
        fmt = "FLAC" if self.path.suffix.lower() == ".flac" else "WAV"
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        try:
            self._file = sf.SoundFile(
                str(tmp), "w", samplerate=sr, channels=2, format=fmt, subtype="PCM_16"
            )
        except (RuntimeError, OSError) as exc:
            self._stack.close()
            raise InputError(f"cannot write {self.path}: {exc}") from None
        self.frames = 0

    def write(self, block: np.ndarray) -> None:
        self._file.write(block)
        self.frames += len(block)

    def close(self) -> None:
        self._file.close()
        self._stack.close()


class StreamSink:
    """Encode with ffmpeg and send to an HTTP/Icecast URL (icecast://source:pw@host:port/mount,
    http://host:port/path, ...). Blocks go through a bounded queue on a writer thread, so a
    slow or dead server never stalls the music; ffmpeg is restarted with backoff if it exits.
    """

    paces = False

    def __init__(
        self,
        url: str,
        sr: int,
        *,
        bitrate: str = "192k",
        on_problem: Callable[[str], None] | None = None,
        max_restarts: int = 1_000_000,
    ) -> None:
        self._ffmpeg = find_tool("ffmpeg", purpose="for --stream")  # now, not in the thread
        self.url = url
        self.name = url.split("@", 1)[-1] if "@" in url else url
        self.sr = sr
        self._args = [
            "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "f32le", "-ar", str(sr), "-ac", "2", "-i", "pipe:0",
            "-c:a", "libmp3lame", "-b:a", bitrate, "-content_type", "audio/mpeg",
            "-f", "mp3", url,
        ]  # fmt: skip
        self._on_problem = on_problem or (lambda msg: None)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=50)
        self._max_restarts = max_restarts
        self.dropped = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="moodsic-live-stream", daemon=True)
        self._thread.start()

    def write(self, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype=np.float32).tobytes()
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped += 1  # the server is not keeping up: the stream skips, the room does not

    def _start(self) -> subprocess.Popen[bytes]:
        return open_ffmpeg_pipe(self._args, purpose="for --stream", exe=self._ffmpeg)

    def _run(self) -> None:
        import time

        restarts, delay = 0, 1.0
        while True:
            self._proc = proc = self._start()
            ok = True
            while True:
                data = self._queue.get()
                if data is None:
                    break
                try:
                    assert proc.stdin is not None
                    proc.stdin.write(data)
                except (BrokenPipeError, OSError):
                    ok = False
                    break
            with contextlib.suppress(OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.close()  # ffmpeg finishes the stream and exits
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err = proc.stderr.read() if proc.stderr is not None else b""  # -loglevel error: short
            if ok and data is None:
                return
            line = (err or b"").decode("utf-8", "replace").strip().splitlines()
            self._on_problem(
                f"stream {self.name}: ffmpeg stopped ({line[-1] if line else 'exit ' + str(proc.returncode)}); "
                f"restarting in {delay:.0f} s"
            )
            restarts += 1
            if restarts > self._max_restarts:
                return
            time.sleep(delay)
            delay = min(30.0, delay * 2)
            # drop what queued up while the stream was down: a listener hears now, not then
            with contextlib.suppress(queue.Empty):
                while True:
                    if self._queue.get_nowait() is None:
                        return

    def close(self) -> None:
        # make room for the end marker (the writer may be stuck on a full queue)
        while True:
            try:
                self._queue.put(None, timeout=1.0)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
        self._thread.join(timeout=15)
        if self._thread.is_alive() and self._proc is not None:
            self._proc.kill()
