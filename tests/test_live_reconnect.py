"""Runs for days: when the camera or stream drops, the source reconnects with backoff and the
music keeps playing; each problem is one line in the log; a wrong camera is one clear error."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from live_media import BUSY, act_video, live_library

from moodsic_engine.config import Config
from moodsic_engine.experts import load_experts
from moodsic_engine.live import LiveOptions, SourceError, SourceSpec, run_live, source_spec
from moodsic_engine.live.sources import open_container


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("reconnect")
    return {
        "ts": act_video(root / "room.ts", [BUSY], 16.0),
        "lib": live_library(root / "lib", per_mood=2, seconds=20.0),
        "root": root,
    }


def _events(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _gapless(wav: Path, events: list[dict]) -> float:
    """Deepest 50 ms dip (dB below the median) between the first track's full level and the
    fade-out."""
    y, sr = sf.read(str(wav), dtype="float32")
    first = next(e for e in events if e["event"] == "track_start")
    stop = next(e for e in events if e["event"] == "stop")
    body = y[int((first["t"] + 2.5) * sr) : int((stop["t"] - 3.5) * sr), 0]
    rms = np.sqrt(np.mean(body[: len(body) // 2400 * 2400].reshape(-1, 2400) ** 2, axis=1))
    return float(20 * np.log10(rms.min() / np.median(rms)))


class _Dropping:
    """A container whose decoding fails after `after` frames, as a network camera that drops."""

    def __init__(self, container, after: int) -> None:  # noqa: ANN001
        self._c, self._after = container, after

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._c, name)

    def decode(self, stream):  # noqa: ANN001, ANN201
        for i, frame in enumerate(self._c.decode(stream)):
            if i >= self._after:
                raise OSError("Connection reset by peer")
            yield frame

    def close(self) -> None:
        self._c.close()


def test_a_dropping_source_reconnects_with_backoff_and_the_music_goes_on(media, tmp_path):
    opens: list[int] = []

    def opener(spec: SourceSpec):  # noqa: ANN202
        n = len(opens)
        opens.append(n)
        if n in (1, 2):  # the camera is away for two attempts
            raise SourceError("cannot open stream cam: Connection refused")
        container = av.open(spec.location)
        return _Dropping(container, 60) if n == 0 else container  # drops after 6 s

    cfg = Config(experts=("grammar",))
    opts = LiveOptions(
        speed=10.0,
        duration_s=40.0,
        min_dwell_s=15.0,
        out_audio=tmp_path / "music.wav",
        events=tmp_path / "events.jsonl",
    )
    spec = SourceSpec(str(media["ts"]), "stream")
    report = run_live(spec, media["lib"], load_experts(cfg, None), cfg, opts, opener=opener)
    ev = _events(tmp_path / "events.jsonl")
    src = [e for e in ev if e["event"] == "source"]
    assert [e["state"] for e in src][:5] == ["connected", "lost", "lost", "lost", "connected"]
    lost_at = src[1]["t"]
    # backoff: 1 s, then 2 s, then 4 s between attempts (session seconds; opening the source
    # adds its own time on top, multiplied by the speed)
    gaps = np.diff([e["t"] for e in src[1:5]])
    assert np.all(gaps >= np.array([1.0, 2.0, 4.0]) - 0.05), gaps
    assert np.all(gaps <= np.array([1.0, 2.0, 4.0]) + 4.0), gaps
    problems = [e for e in ev if e["event"] == "problem"]
    assert len(problems) >= 3 and all("\n" not in p["message"] for p in problems)
    assert "Connection reset" in problems[0]["message"]
    # analysis goes on after the reconnect, and the music never stopped
    assert any(e["event"] == "sample" and e["t"] > src[4]["t"] + 2 for e in ev)
    assert report.reconnects >= 1 and report.stop_reason == "duration reached"
    dip = _gapless(tmp_path / "music.wav", ev)
    print(f"reconnect after {src[4]['t'] - lost_at:.1f} s; deepest dip {dip:.1f} dB")
    assert dip > -10.0


class _HalfThenFull(BaseHTTPRequestHandler):
    """Serves one file; the first request is cut off half-way (a dropped stream)."""

    data = b""
    served = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802
        with self.lock:
            first = type(self).served == 0
            type(self).served += 1
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        body = self.data[: len(self.data) // 2] if first else self.data
        try:
            self.wfile.write(body)
        except OSError:
            pass
        if first:
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002, ANN001, ANN002
        pass


def test_an_http_stream_that_disconnects_midway_is_reconnected(media, tmp_path):
    _HalfThenFull.data = media["ts"].read_bytes()
    _HalfThenFull.served = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HalfThenFull)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/room.ts"
    try:
        cfg = Config(experts=("grammar",))
        opts = LiveOptions(
            speed=10.0,
            duration_s=24.0,
            min_dwell_s=15.0,
            out_audio=tmp_path / "music.wav",
            events=tmp_path / "events.jsonl",
        )
        report = run_live(source_spec(url), media["lib"], load_experts(cfg, None), cfg, opts)
    finally:
        server.shutdown()
        server.server_close()
    ev = _events(tmp_path / "events.jsonl")
    states = [e["state"] for e in ev if e["event"] == "source"]
    assert states[:3] == ["connected", "lost", "connected"]
    assert _HalfThenFull.served >= 2
    lost = next(e for e in ev if e["event"] == "source" and e["state"] == "lost")
    before = [e for e in ev if e["event"] == "sample" and e["t"] < lost["t"]]
    after = [e for e in ev if e["event"] == "sample" and e["t"] > lost["t"]]
    assert 5 <= len(before) <= 9  # about half of 16 s at 1/s
    assert len(after) >= 5
    assert report.reconnects >= 1
    assert _gapless(tmp_path / "music.wav", ev) > -10.0


def test_a_missing_or_wrong_camera_is_one_clear_error():
    with pytest.raises(SourceError, match=r"^camera /dev/video97 not found"):
        source_spec("/dev/video97")
    # the v4l2 path itself: a device node that is not a camera
    with pytest.raises(SourceError) as info:
        open_container(SourceSpec("/dev/null", "device"))
    assert str(info.value).startswith("cannot open camera /dev/null:")
    assert "\n" not in str(info.value)
    with pytest.raises(SourceError, match="cannot open stream rtsp://127.0.0.1:9/x"):
        open_container(source_spec("rtsp://user:secret@127.0.0.1:9/x"), 2.0)
    with pytest.raises(SourceError) as info:
        open_container(source_spec("rtsp://user:secret@127.0.0.1:9/x"), 2.0)
    assert "secret" not in str(info.value)  # credentials never reach the log
