"""`moodsic live` as a process: SIGTERM fades the music out and exits 0, the music is streamed to
an HTTP listener through ffmpeg, and user errors are one line with exit code 1."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from live_media import BUSY, CALM, act_video, live_library

from moodsic_engine.errors import ResourceError
from moodsic_engine.live.sinks import DeviceSink

MOODSIC = str(Path(sys.executable).parent / "moodsic")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manifest(folder: Path) -> Path:
    lib = live_library(folder, per_mood=2, seconds=20.0)
    rows = ["id,path,valence,arousal,title"]
    rows += [f"{t.id},{Path(t.path).name},{t.valence},{t.arousal},{t.title}" for t in lib.tracks]
    path = folder / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_sigterm_fades_out_and_exits_zero_while_streaming_to_http(tmp_path):
    video = act_video(tmp_path / "room.mp4", [BUSY, CALM], 20.0)
    manifest = _manifest(tmp_path / "lib")
    port = _free_port()
    received = tmp_path / "received.mp3"
    listener = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-listen", "1",
         "-i", f"http://127.0.0.1:{port}/live.mp3", "-c", "copy", str(received)],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    events = tmp_path / "events.jsonl"
    wav = tmp_path / "music.wav"
    time.sleep(0.5)
    proc = subprocess.Popen(
        [MOODSIC, "live", str(video), "--library", str(manifest), "--experts", "grammar",
         "--loop", "--speed", "4", "--out-audio", str(wav), "--events", str(events),
         "--stream", f"http://127.0.0.1:{port}/live.mp3", "--progress", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the music plays, then a little more
            if events.exists() and '"track_start"' in events.read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out and err.strip() == ""
    ev = [json.loads(x) for x in events.read_text().splitlines()]
    assert ev[-1]["event"] == "stop" and ev[-1]["reason"] == "stopped"
    y, sr = sf.read(str(wav), dtype="float32")
    assert len(y) / sr == pytest.approx(ev[-1]["t"], abs=0.2)
    # a 3 s fade: 0.5 s windows fall steadily to silence
    win = [float(np.sqrt(np.mean(y[len(y) - int((k + 0.5) * sr) : len(y) - int(k * sr)] ** 2)))
           for k in (3.0, 2.0, 1.0, 0.0)]  # fmt: skip
    assert win[0] > win[1] > win[2] > win[3] and win[3] < 0.25 * win[0]
    assert float(np.max(np.abs(y[-10:]))) < 1e-3
    # the stream carried the same music: the listener wrote an MP3 about as long
    listener.wait(timeout=30)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(received)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert float(probe.stdout) == pytest.approx(len(y) / sr, abs=1.5)


def test_no_sound_device_is_one_clear_line():
    with pytest.raises(ResourceError) as info:
        DeviceSink(48000, "no-such-sound-device-here")
    text = str(info.value)
    assert text.startswith("no sound device to play on") and "\n" not in text
    assert "--out-audio" in text


def test_cli_missing_camera_exits_1_with_one_line(tmp_path):
    proc = subprocess.run(
        [MOODSIC, "live", "/dev/video97", "--experts", "grammar"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == ["moodsic: error: camera /dev/video97 not found (is it plugged in?)"]
    assert list(tmp_path.iterdir()) == []


class _FakeCard:
    """A stand-in for sounddevice: an output stream whose write() blocks for the block's
    duration, as a sound card does."""

    class OutputStream:
        written: list[np.ndarray] = []

        def __init__(self, samplerate, channels, dtype, device, latency):  # noqa: ANN001
            assert channels == 2 and dtype == "float32" and device is None
            self.sr = samplerate

        def start(self) -> None:
            pass

        def write(self, block: np.ndarray) -> None:
            type(self).written.append(block.copy())
            time.sleep(len(block) / self.sr)

        def stop(self) -> None:
            pass

        def close(self) -> None:
            pass


def test_the_sound_card_plays_in_real_time_and_paces_the_session(tmp_path, monkeypatch):
    from moodsic_engine.config import Config
    from moodsic_engine.experts import load_experts
    from moodsic_engine.live import LiveOptions, run_live

    monkeypatch.setitem(sys.modules, "sounddevice", _FakeCard)
    _FakeCard.OutputStream.written = []
    video = act_video(tmp_path / "room.mp4", [BUSY], 10.0)
    lib = live_library(tmp_path / "lib", per_mood=1, seconds=20.0)
    cfg = Config(experts=("grammar",))
    opts = LiveOptions(duration_s=6.0, min_dwell_s=15.0, fade_out_s=1.0)  # the card by default
    t0 = time.monotonic()
    report = run_live(str(video), lib, load_experts(cfg, None), cfg, opts)
    wall = time.monotonic() - t0
    y = np.concatenate(_FakeCard.OutputStream.written)
    assert len(y) == int(round(6.0 * 48000))
    assert report.tracks == 1 and wall >= 5.5  # the card's pace, not faster
    assert float(np.sqrt(np.mean(y[-int(1.5 * 48000) : -int(1.0 * 48000)] ** 2))) > 0.05
