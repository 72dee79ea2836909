"""Muxing: the video with the finished mix as its only audio, the picture copied when the
container can hold it, and a lossy audio codec kept under the true-peak ceiling.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..ffmpeg import audio_sample_rate, decode_audio, quiet_native_stderr, run_ffmpeg
from ..fileio import atomic_path, work_dir
from .audio import encode_under_ceiling, peak_db, read_audio


def mux(
    video_path: str | os.PathLike[str],
    audio_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    ceiling_db: float | None = None,
) -> Path:
    """The video with `audio_path` as its only audio; the video stream is copied, not re-encoded.

    Only when the output container cannot hold the video's codec as it is (ProRes, FFV1, raw
    or GIF video in an .mp4; H.264 in a .webm) is the picture encoded once, visually lossless
    (H.264 CRF 18; VP9 for .webm), with a warning that names a container that would keep it.

    A lossy audio codec (AAC, Opus) is checked like an MP3 output: when its decoded true peak
    lands above `ceiling_db` (default: the audio file's own true peak), the audio is limited by
    the overshoot and encoded again."""
    import warnings

    video, audio, out = Path(video_path), Path(audio_path), Path(out_path)
    for p in (video, audio):
        if not p.is_file():
            raise InputError(f"file not found: {p}")
    suffix = out.suffix.lower()
    codec = {
        ".mkv": ["-c:a", "flac"],
        ".webm": ["-c:a", "libopus", "-b:a", "160k"],
    }.get(suffix, ["-c:a", "aac", "-b:a", "192k"])
    picture = video  # the file whose video stream is copied

    def ffmpeg(*args: str) -> subprocess.CompletedProcess[str]:
        return run_ffmpeg(*args, purpose="to write the video")

    def run(tmp: Path, source: Path) -> None:
        nonlocal picture

        def copy() -> subprocess.CompletedProcess[str]:
            return ffmpeg("-i", os.path.abspath(picture), "-i", os.path.abspath(source),
                          "-map", "0:V:0", "-map", "1:a:0", "-c:v", "copy", *codec,
                          "-map_metadata", "0", os.path.abspath(tmp))  # fmt: skip

        proc = copy()
        if proc.returncode != 0 and picture == video and _container_refuses(proc.stderr):
            # Encoded once into the work folder; every audio re-encode then copies it.
            encoding = _REENCODE.get(suffix, _REENCODE[".mp4"])
            encoded = Path(work) / f"picture{suffix}"
            proc = ffmpeg("-i", os.path.abspath(video), "-map", "0:V:0", *encoding,
                          "-map_metadata", "0", os.path.abspath(encoded))  # fmt: skip
            if proc.returncode == 0:
                picture = encoded
                warnings.warn(
                    f"{video.name}: its video codec cannot go into {suffix or 'this file'} as "
                    f"it is, so the picture was encoded again ({encoding[1]}); use --mux "
                    "NAME.mkv (or .mov) to keep it untouched",
                    stacklevel=4,
                )
                proc = copy()
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ["ffmpeg failed"]
            why = next((ln for ln in lines if _container_refuses(ln)), lines[-1])
            raise InputError(f"cannot mux {video.name}: {why.strip()[:200]}")

    # work_dir names the folder after this process, so a parent can remove it if we are killed.
    with atomic_path(out) as tmp, work_dir("mux") as work:
        if codec[1] == "flac":
            run(tmp, audio)
        else:
            sr = _file_rate(audio)
            y = read_audio(audio, sr)
            ceiling = peak_db(y) if ceiling_db is None else float(ceiling_db)
            limited = Path(work) / "limited.wav"

            def encode(alt: np.ndarray | None) -> None:
                if alt is None:
                    run(tmp, audio)
                    return
                import soundfile as sf

                sf.write(str(limited), np.clip(alt, -1.0, 1.0), sr, subtype="FLOAT")
                run(tmp, limited)

            encode_under_ceiling(y, sr, ceiling, encode, lambda: decode_audio(tmp, sr))
    return out


# Picture encodings for a container that cannot carry the source's video codec.
_REENCODE = {
    ".mp4": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
             "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"],
    ".webm": ["-c:v", "libvpx-vp9", "-crf", "30", "-b:v", "0", "-deadline", "realtime",
              "-cpu-used", "8", "-row-mt", "1"],
}  # fmt: skip


def _container_refuses(stderr: str) -> bool:
    """FFmpeg's words for 'this container cannot hold that codec' (mp4 and webm muxers)."""
    return any(
        phrase in stderr
        for phrase in ("not currently supported in container", "Only VP8 or VP9 or AV1 video")
    )


def _file_rate(path: Path) -> int:
    """An audio file's sample rate (48 kHz when neither soundfile nor ffprobe can tell)."""
    try:
        import soundfile as sf

        with quiet_native_stderr(path):
            return int(sf.info(str(path)).samplerate)
    except Exception:  # noqa: BLE001 - not a soundfile format
        pass
    return audio_sample_rate(path) or 48000
