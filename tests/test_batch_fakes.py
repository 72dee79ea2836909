"""Small stand-ins for the engine, importable by spawned batch workers and Ray actors.

They let the batch machinery (pool, timeouts, crashes, resume, signals) be tested in
seconds. The fake scorer really opens the video (so empty or truncated files fail the
way real ones do) and logs every clip it finishes to $MOODSIC_FAKE_LOG; the fake loaders
log every load to $MOODSIC_FAKE_LOADLOG, so tests can count both.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
import wave
from fractions import Fraction
from pathlib import Path

from moodsic_engine.cue import CueSheet, SampleRecord, Segment, TrackChoice, VideoRef
from moodsic_engine.errors import VideoError

FAKES = dict(
    score="test_batch_fakes:fake_score",
    load_experts="test_batch_fakes:fake_load_experts",
    load_library="test_batch_fakes:fake_load_library",
    write_mix="test_batch_fakes:fake_write_mix",
    mux="test_batch_fakes:fake_mux",
)


def _log(var: str, text: str) -> None:
    path = os.environ.get(var)
    if path:
        with open(
            path, "a", encoding="utf-8"
        ) as fh:  # O_APPEND: whole short lines, no interleaving
            fh.write(text + "\n")


def fake_load_experts(config, weights_dir=None):  # noqa: ANN001, ANN201
    _log("MOODSIC_FAKE_LOADLOG", f"experts {os.getpid()} {os.environ.get('OMP_NUM_THREADS')}")
    if os.environ.get("MOODSIC_FAKE_LOAD_FAIL"):
        from moodsic_engine.errors import ExpertUnavailable

        raise ExpertUnavailable("fake expert needs weights that are not there")
    return ("experts", tuple(config.experts))


def fake_load_library(spec, *, match_config=None, allow_outside=False):  # noqa: ANN001, ANN201
    _log("MOODSIC_FAKE_LOADLOG", f"library {os.getpid()}")
    return ("library", spec)


def _probe(path: str) -> tuple[float, Fraction, int]:
    import av

    p = Path(path)
    if p.stat().st_size == 0:
        raise VideoError(f"video file is empty (0 bytes): {p}")
    try:
        with av.open(str(p)) as container:
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate)
            frames = sum(1 for _ in container.demux(stream) if True) - 1
    except (av.FFmpegError, IndexError) as exc:
        raise VideoError(f"cannot read {p.name}: {exc}") from None
    if frames <= 0:
        raise VideoError(f"no frames in {p.name}")
    return float(frames / fps), fps, frames


def fake_score(video, library, config, *, experts=None, progress=None):  # noqa: ANN001, ANN201
    name = Path(video).name
    if "crash" in name:
        os.kill(os.getpid(), signal.SIGKILL)
    if "hang" in name:
        time.sleep(3600)
    duration, fps, frames = _probe(video)
    time.sleep(float(os.environ.get("MOODSIC_FAKE_SLEEP", "0")))
    digest = hashlib.sha256(Path(video).read_bytes()).digest()
    v = (digest[0] / 255.0) * 2 - 1 + config.seed * 0.01
    a = (digest[1] / 255.0) * 2 - 1
    half = frames // 2
    cut = float(half / fps)
    track = TrackChoice(
        id=f"t{digest[2]}",
        title=f"Track {digest[2]}",
        artist="Fake",
        path="/dev/null",
        valence=v,
        arousal=a,
    )
    segments = (
        Segment(0.0, cut, 0, half, "bright", "Bright & Engaging", v, a, 0.9, track),
        Segment(cut, duration, half, frames, "calm", "Calm & Neutral", -v, -a, 0.7, track),
    )
    samples = tuple(
        SampleRecord(
            t=t * 0.5,
            experts={},
            fused=None,
            stable={"v": v if t * 0.5 < cut else -v, "a": a},
            held=False,
        )
        for t in range(int(duration * 2))
    )
    _log("MOODSIC_FAKE_LOG", f"{os.getpid()} {video}")
    return CueSheet(
        video=VideoRef(path=str(video), duration_s=duration, fps=fps, frames=frames),
        engine={
            "version": "fake",
            "experts": list(experts[1]) if experts else [],
            "config": config.to_dict(),
        },
        samples=samples,
        cuts=(cut,),
        segments=segments,
    )


def fake_write_mix(cue, path, cfg, *, video_path=None):  # noqa: ANN001, ANN201
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * int(8000 * cue.video.duration_s))
    return Path(path)


def fake_mux(video_path, audio_path, out_path):  # noqa: ANN001, ANN201
    """Copies the video; a clip named *slowmux* hangs half-way (a work folder made and the
    output half written, as ffmpeg would leave them), one named *muxfail* fails there."""
    name = Path(video_path).name
    if "slowmux" in name or "muxfail" in name:
        from moodsic_engine.errors import InputError
        from moodsic_engine.fileio import work_dir

        with work_dir("mux") as work:
            (work / "picture.mp4").write_bytes(b"\0" * 200_000)
            Path(out_path).write_bytes(Path(video_path).read_bytes()[:1000])
            _log("MOODSIC_FAKE_LOG", f"{os.getpid()} mux-started {video_path}")
            if "muxfail" in name:
                raise InputError(f"cannot mux {name}: injected failure")
            time.sleep(3600)
    shutil.copyfile(video_path, out_path)
    return Path(out_path)


def make_clip(path: Path, seconds: float = 4.0, hue: int = 0, size: str = "160x90") -> Path:
    """A short synthetic H.264 clip (test pattern tinted by `hue`, with a tone)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds},hue=h={hue}",
            "-f", "lavfi", "-i", f"sine=frequency={220 + hue}:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def counting_score(video, library, config, *, experts=None, progress=None):  # noqa: ANN001, ANN201
    """The real pipeline, slowed by $MOODSIC_FAKE_SLEEP and logged to $MOODSIC_FAKE_LOG."""
    from moodsic_engine.pipeline import score_video

    time.sleep(float(os.environ.get("MOODSIC_FAKE_SLEEP", "0")))
    kwargs = {"progress": progress} if progress is not None else {}
    cue = score_video(video, library, config, experts=experts, **kwargs)
    _log("MOODSIC_FAKE_LOG", f"{os.getpid()} {video}")
    return cue


def write_library_csv(path: Path) -> Path:
    """A 12-track library spread over the V/A plane (no audio: enough for cue sheets)."""
    rows = ["id,title,artist,valence,arousal"]
    k = 0
    for v in (-0.7, -0.2, 0.3, 0.8):
        for a in (-0.6, 0.0, 0.6):
            rows.append(f"t{k},Track {k},Test,{v},{a}")
            k += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
