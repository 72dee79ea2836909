"""`moodsic demo`: a generated 60 s clip with distinct moods, scored end to end.

The clip has five scenes separated by real cuts: a dark, cold, slow night; a bright, warm,
fast party with quick cuts; a calm pastel meadow; a portrait built on scikit-image's
astronaut photograph (a real face) with a spoken line when espeak-ng is present; and a
dark red, jittery storm. Everything is generated here, so the demo needs no download.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ResourceError
from .ffmpeg import find_tool, open_ffmpeg_pipe
from .fileio import atomic_path
from .progress import ProgressFn, no_progress

W, H, FPS = 640, 360, 25
SCENES = (  # (name, seconds)
    ("night", 12.0),
    ("party", 12.0),
    ("meadow", 12.0),
    ("portrait", 12.0),
    ("storm", 12.0),
)
SPOKEN_LINE = (
    "Houston, this is the portrait scene. Everything looks calm and beautiful from up here."
)


class _SceneRenderer:
    def __init__(self) -> None:
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        self.x = xx / W
        self.y = yy / H
        self.rng = np.random.default_rng(7)
        from skimage import data

        self.face = data.astronaut()  # 512x512 RGB, a real face photograph

    def _blobs(self, t: float, n: int, speed: float, radius: float, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        cx0, cy0, ph = rng.random(n), rng.random(n), rng.random(n) * 6.28
        field_ = np.zeros((H, W), np.float32)
        for i in range(n):
            cx = (cx0[i] + 0.25 * np.sin(speed * t + ph[i])) % 1.0
            cy = (cy0[i] + 0.25 * np.cos(1.3 * speed * t + ph[i])) % 1.0
            d2 = ((self.x - cx) * 16 / 9) ** 2 + (self.y - cy) ** 2
            field_ += np.exp(-d2 / (radius**2))
        return np.clip(field_, 0, 1)

    def frame(self, scene: str, t: float, k: int) -> np.ndarray:
        x, y = self.x, self.y
        if scene == "night":  # dark, cold, slow
            b = self._blobs(t, 3, 0.15, 0.18, 1)
            rgb = np.stack([0.02 + 0.05 * b, 0.04 + 0.08 * b, 0.12 + 0.20 * b + 0.05 * y], -1)
        elif scene == "party":  # bright, warm, saturated, fast, cut every 1.5 s
            shot = int(t / 1.5)
            palettes = [(1.0, 0.75, 0.1), (1.0, 0.45, 0.35), (1.0, 0.85, 0.3), (0.95, 0.55, 0.1)]
            base = np.array(palettes[shot % len(palettes)], np.float32)
            b = self._blobs(t, 7, 5.0, 0.10, 10 + shot)
            stripes = 0.5 + 0.5 * np.sin(40 * (x + 0.6 * t) + 10 * y)
            rgb = base * (0.75 + 0.25 * stripes[..., None]) * (0.8 + 0.2 * b[..., None])
            rgb = rgb + 0.15 * b[..., None]
        elif scene == "meadow":  # calm, soft, light
            b = self._blobs(t, 2, 0.08, 0.35, 3)
            rgb = np.stack([0.68 + 0.1 * b, 0.88 + 0.1 * b - 0.05 * y, 0.62 + 0.1 * (1 - y)], -1)
        elif scene == "portrait":  # a real face, slow push-in
            zoom = 1.0 + 0.15 * (t / 12.0)
            size = int(H * 0.95 * zoom)
            import cv2

            face = cv2.resize(self.face, (size, size), interpolation=cv2.INTER_AREA)
            canvas = np.full((H, W, 3), 40, np.uint8)
            x0 = (W - size) // 2
            y0 = (H - size) // 2
            sx0, sy0 = max(0, -x0), max(0, -y0)
            dx0, dy0 = max(0, x0), max(0, y0)
            w_ = min(size - sx0, W - dx0)
            h_ = min(size - sy0, H - dy0)
            canvas[dy0 : dy0 + h_, dx0 : dx0 + w_] = face[sy0 : sy0 + h_, sx0 : sx0 + w_]
            return canvas
        else:  # storm: dark red, jittery noise, strobe, cut every 2 s
            shot = int(t / 2.0)
            noise = self.rng.random((H // 8, W // 8)).astype(np.float32)
            noise = np.kron(noise, np.ones((8, 8), np.float32))
            flash = 0.3 if (k % 11) < 2 else 0.0
            shift = (shot % 3) * 0.05
            grey = 0.03 + 0.07 * noise
            rgb = np.stack([grey + 0.06 + 0.10 * noise + shift, grey, grey], -1)
            rgb = rgb + flash * np.array([0.6, 0.3, 0.3], np.float32)
        return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _soundtrack(path: Path, duration: float, sr: int = 48000) -> None:
    """Quiet room tone, plus a spoken line in the portrait scene when espeak-ng exists."""
    import soundfile as sf

    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(int(duration * sr)) * 0.004).astype(np.float32)
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak:
        with tempfile.TemporaryDirectory(prefix="moodsic-demo-") as tmp:
            wav = Path(tmp) / "line.wav"
            subprocess.run(
                [espeak, "-s", "150", "-w", str(wav), SPOKEN_LINE], check=True, capture_output=True
            )
            speech, ssr = sf.read(str(wav), dtype="float32", always_2d=False)
            if ssr != sr:
                import librosa

                speech = librosa.resample(speech, orig_sr=ssr, target_sr=sr)
            start = int(38.0 * sr)
            end = min(len(audio), start + len(speech))
            audio[start:end] += (
                0.5 * speech[: end - start] / max(1e-6, float(np.max(np.abs(speech))))
            )
    sf.write(str(path), audio, sr, subtype="PCM_16")


def generate_demo_video(path: str | os.PathLike[str], progress: ProgressFn = no_progress) -> Path:
    """Write the 60 s demo clip (H.264 with B-frames, AAC audio) to `path`, atomically."""
    ffmpeg = find_tool("ffmpeg", purpose="to encode the demo clip")
    renderer = _SceneRenderer()
    total = int(sum(d for _, d in SCENES) * FPS)
    target = Path(path)
    with tempfile.TemporaryDirectory(prefix="moodsic-demo-") as tmp, atomic_path(target) as out:
        wav = Path(tmp) / "sound.wav"
        _soundtrack(wav, total / FPS)
        args = [
            "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", str(FPS), "-i", "-",
            "-i", str(wav),
            "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", "-shortest", "-f", "mp4", str(out),
        ]  # fmt: skip
        proc = open_ffmpeg_pipe(args, purpose="to encode the demo clip", exe=ffmpeg)
        assert proc.stdin is not None
        k = 0
        try:
            for name, seconds in SCENES:
                for i in range(int(seconds * FPS)):
                    proc.stdin.write(renderer.frame(name, i / FPS, k).tobytes())
                    k += 1
                    if k % 25 == 0:
                        progress("generate", k, total)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            raise ResourceError(f"ffmpeg could not encode the demo clip: {err.strip()[:200]}")
        progress("generate", total, total)
    return target


@dataclass(frozen=True)
class DemoResult:
    cue_path: Path
    files: dict[str, Path] = field(default_factory=dict)
    lines: tuple[str, ...] = ()

    def summary_lines(self) -> list[str]:
        return list(self.lines)


def run_demo(output: str | os.PathLike[str], progress: ProgressFn = no_progress) -> DemoResult:
    """Generate the clip and library, score with every available expert, write all outputs."""
    from .api import score_video_to_files
    from .config import Config

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    video = out / "demo.mp4"
    if not video.exists():
        generate_demo_video(video, progress)
    result = score_video_to_files(
        video,
        out / "demo.moodsic.json",
        library="builtin",
        config=Config(),
        mix=out / "demo-mix.wav",
        bed=out / "demo-bed.wav",
        mux=out / "demo-scored.mp4",
        plot=out / "demo-plot.png",
        progress=progress,
    )
    lines = [f"demo clip: {video}", *result.summary_lines()]
    return DemoResult(
        cue_path=result.cue_path, files={"video": video, **result.extras}, lines=tuple(lines)
    )
