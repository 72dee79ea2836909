"""The bad-input corpus: broken, hostile and odd files, generated (never downloaded).

`make_corpus(folder)` writes every entry and returns {name: BadInput}. Each entry says what
a video entry point must do with it: refuse it with one line naming the problem
(`expect="error"`, with a message fragment) or score it normally (`expect="ok"`). All
media are small (160x90, 2-4 s) so the whole corpus builds in a few seconds.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from media import FFMPEG, FFPROBE, lavfi_video, run

SECONDS = 3.0


@dataclass(frozen=True)
class BadInput:
    name: str
    path: Path
    expect: str  # "error" | "ok"
    fragment: str = ""  # lower-case piece of the one-line error ("" when expect == "ok")


def _ff(*args: str) -> None:
    run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args])


def good_video(path: Path, *, seconds: float = SECONDS, audio: bool = True, **kw) -> Path:
    return lavfi_video(path, seconds=seconds, audio=audio, extra=["-shortest"], **kw)


def patch_mp4_box(data: bytes, box: bytes, field_offset: dict[int, int], value: int) -> bytes:
    """Overwrite a 32-bit big-endian field of the first `box`, offset by its version byte."""
    b = bytearray(data)
    i = b.find(box)
    assert i >= 0, f"no {box!r} box"
    version = b[i + 4]
    off = i + 4 + field_offset[version]
    b[off : off + 4] = struct.pack(">I", value)
    return bytes(b)


def zero_timescale_mp4(path: Path, src: Path) -> Path:
    """mdhd timescale 0: the stream has no usable frame rate."""
    data = src.read_bytes()
    # mdhd: version/flags(4) then v0: ctime(4) mtime(4) timescale; v1: ctime(8) mtime(8) timescale
    path.write_bytes(patch_mp4_box(data, b"mdhd", {0: 12, 1: 20}, 0))
    return path


def truncated(path: Path, src: Path, fraction: float) -> Path:
    data = src.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def huge_y4m(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A raw y4m stream whose header declares a gigantic frame; the data is a few bytes."""
    header = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + (b"FRAME\n" + b"\x80" * 4096) * 3)
    return path


def huge_frames_mkv(path: Path) -> Path:
    """MJPEG in Matroska: the container says 160x90, every JPEG header says 30000x30000."""
    src = path.with_name(path.stem + ".src.mkv")
    _ff("-f", "lavfi", "-i", f"testsrc2=s=160x90:r=25:d={SECONDS}", "-c:v", "mjpeg",
        "-pix_fmt", "yuvj420p", str(src))  # fmt: skip
    b = bytearray(src.read_bytes())
    src.unlink()
    n, i = 0, 0
    while (i := b.find(b"\xff\xc0\x00\x11\x08", i)) >= 0:  # SOF0, 8-bit, height, width
        b[i + 5 : i + 9] = struct.pack(">HH", 30000, 30000)
        n, i = n + 1, i + 1
    assert n > 0
    path.write_bytes(bytes(b))
    return path


def long_declared_mkv(path: Path, seconds: float = 1e12) -> Path:
    """Matroska whose Segment Info duration claims `seconds`; it holds 3 s of frames."""
    src = path.with_name(path.stem + ".src.mkv")
    lavfi_video(src, seconds=SECONDS)
    b = bytearray(src.read_bytes())
    src.unlink()
    i = b.find(b"\x44\x89\x88")  # Duration element, 8-byte float, in TimecodeScale units (ms)
    assert i >= 0
    b[i + 3 : i + 11] = struct.pack(">d", seconds * 1000.0)
    path.write_bytes(bytes(b))
    return path


def timestamp_gap_mkv(path: Path, gap_s: float = 1e8) -> Path:
    """Two seconds of frames, then a jump of `gap_s` in the timestamps (a ~3-year 'video')."""
    _ff("-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=2",
        "-vf", f"setpts='if(gte(N,40),PTS+{gap_s:g}/TB,PTS)'", "-fps_mode", "passthrough",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def extreme_aspect_y4m(path: Path, width: int = 2, height: int = 8000) -> Path:
    """A 2x8000 raw stream: scaling its short side to the working size must not explode."""
    header = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode()
    frame = b"FRAME\n" + bytes([128]) * (width * height * 3 // 2)
    path.write_bytes(header + frame * 50)
    return path


def nan_fps_y4m(path: Path) -> Path:
    """A y4m header with frame rate 0:0 (NaN); FFmpeg falls back to 25 fps."""
    header = b"YUV4MPEG2 W160 H90 F0:0 Ip A1:1 C420jpeg\n"
    rng = random.Random(1)
    frames = b"".join(
        b"FRAME\n" + bytes([rng.randrange(256)]) * (160 * 90 * 3 // 2) for _ in range(50)
    )
    path.write_bytes(header + frames)
    return path


def audio_only(path: Path) -> Path:
    _ff("-f", "lavfi", "-i", f"sine=f=330:d={SECONDS}", "-c:a", "aac", "-f", "mp4", str(path))
    return path


def with_cover_art(path: Path, picture: Path) -> Path:
    """A song with its cover art: a one-picture video stream marked as attached."""
    _ff("-f", "lavfi", "-i", f"sine=f=330:d={SECONDS}", "-i", str(picture), "-map", "0",
        "-map", "1", "-c:a", "libmp3lame", "-c:v", "png", "-disposition:v", "attached_pic",
        str(path))  # fmt: skip
    return path


def corrupt_audio(path: Path, src: Path) -> Path:
    """A good video stream next to an AAC stream whose every packet is random bytes."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pos,size",
         "-of", "json", str(src)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    b = bytearray(src.read_bytes())
    rng = random.Random(0)
    packets = json.loads(out)["packets"]
    assert packets
    for p in packets:
        pos, size = int(p["pos"]), int(p["size"])
        b[pos : pos + size] = rng.randbytes(size)
    path.write_bytes(bytes(b))
    return path


def make_corpus(folder: Path) -> dict[str, BadInput]:
    """Write the corpus into `folder` (created) and describe every entry."""
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / ".work"
    work.mkdir(exist_ok=True)
    good = good_video(work / "good.mp4")  # moov at the end (ffmpeg's default)
    fast = work / "fast.mp4"
    _ff("-i", str(good), "-c", "copy", "-movflags", "+faststart", str(fast))

    entries: list[BadInput] = []

    def add(name: str, path: Path, expect: str, fragment: str = "") -> None:
        entries.append(BadInput(name, path, expect, fragment.lower()))

    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    add("zero-byte", empty, "error", "empty")
    add("truncated-moov-at-end", truncated(folder / "trunc_moov_end.mp4", good, 0.5), "error",
        "not a readable video")  # fmt: skip
    add("truncated-faststart", truncated(folder / "trunc_faststart.mp4", fast, 0.4), "error",
        "truncated")  # fmt: skip
    text = folder / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 40, encoding="utf-8")
    add("text-named-mp4", text, "error", "not a readable video")
    png = folder / "picture.mov"
    _ff("-f", "lavfi", "-i", "color=c=red:s=32x32:d=1", "-frames:v", "1", "-f", "image2",
        "-c:v", "png", str(png))  # fmt: skip
    # FFmpeg opens a still as a one-frame video; scored, it would be a 0.04 s "clip".
    add("png-named-mov", png, "error", "still image")
    wrong_ext = folder / "really_a_video.txt"
    wrong_ext.write_bytes(good.read_bytes())
    add("video-named-txt", wrong_ext, "ok")
    add("huge-y4m-header", huge_y4m(folder / "huge.y4m"), "error", "")
    add("huge-frames-in-small-mkv", huge_frames_mkv(folder / "huge_frames.mkv"), "error", "")
    add("absurd-declared-duration", long_declared_mkv(folder / "long_declared.mkv"), "error",
        "truncated")  # fmt: skip
    add("timestamp-gap", timestamp_gap_mkv(folder / "gap.mkv"), "ok")
    add("zero-fps", zero_timescale_mp4(folder / "zero_fps.mp4", fast), "error", "frame-rate")
    add("nan-fps-y4m", nan_fps_y4m(folder / "nan_fps.y4m"), "ok")
    add("extreme-aspect", extreme_aspect_y4m(folder / "thin.y4m"), "ok")
    add("no-video-stream", audio_only(folder / "audio_only.mp4"), "error", "no video stream")
    add("audio-with-cover-art", with_cover_art(folder / "song.mp3", png), "error",
        "no video stream")  # fmt: skip
    add("corrupt-audio", corrupt_audio(folder / "corrupt_audio.mp4", good), "ok")
    odd = folder / "clip with spaces – ünïcödé 日本語 ✓.mp4"
    odd.write_bytes(good.read_bytes())
    add("non-ascii-spaces-name", odd, "ok")
    dash = folder / "-o.mp4"
    dash.write_bytes(good.read_bytes())
    add("dash-name", dash, "ok")
    colon = folder / "Interview: part 1.mp4"
    colon.write_bytes(good.read_bytes())
    add("colon-name", colon, "ok")  # FFmpeg would read "Interview:" as a protocol
    proto = folder / "data:x.mp4"
    proto.write_bytes(good.read_bytes())
    add("protocol-name", proto, "ok")
    dir_video = folder / "folder.mp4"
    dir_video.mkdir(exist_ok=True)
    add("directory-named-mp4", dir_video, "error", "directory")
    add("missing", folder / "does_not_exist.mp4", "error", "not found")
    loop = folder / "self_loop.mp4"
    if not loop.is_symlink():
        os.symlink(loop.name, loop)  # a symlink pointing at itself
    add("symlink-loop-file", loop, "error", "symlink loop")
    return {e.name: e for e in entries}


def make_loop_folder(folder: Path, good: Path) -> dict[str, Path]:
    """A batch input folder with good clips, bad clips, symlink loops and a directory named
    like a video. Returns {role: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir(exist_ok=True)
    a = folder / "a.mp4"
    b = folder / "sub" / "b clip ü.mp4"
    a.write_bytes(good.read_bytes())
    b.write_bytes(good.read_bytes())
    bad = folder / "broken.mp4"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = folder / "sub" / "empty.mov"
    empty.write_bytes(b"")
    (folder / "dir_like.mp4").mkdir(exist_ok=True)
    (folder / "dir_like.mp4" / "inner.txt").write_text("not a clip")
    links = {
        "loop_dir": folder / "sub" / "up",  # sub/up -> .. : a directory cycle
        "self_loop": folder / "self.mp4",  # self.mp4 -> self.mp4
        "dangling": folder / "gone.mp4",  # -> nowhere
    }
    targets = {"loop_dir": "..", "self_loop": "self.mp4", "dangling": "no/such/file.mp4"}
    for key, link in links.items():
        if not link.is_symlink():
            os.symlink(targets[key], link)
    return {"good_a": a, "good_b": b, "broken": bad, "empty": empty, **links}


def va_manifest(folder: Path, n: int = 12) -> Path:
    """A tiny V/A-only library manifest (no audio): fast to load, enough to match against."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    tracks = [
        {"id": f"t{i}", "title": f"Track {i}", "artist": "Test",
         "valence": round(rng.uniform(-0.9, 0.9), 3), "arousal": round(rng.uniform(-0.9, 0.9), 3)}
        for i in range(n)
    ]  # fmt: skip
    path = folder / "lib.json"
    path.write_text(json.dumps({"tracks": tracks}), encoding="utf-8")
    return path
