"""MLT XML out: melt plays the music of a scored edit, measured in the rendered sound.

The stand-in video sounds at 300 Hz; each music segment is a tone of its own (500, 700,
900 Hz). Inside each segment (clear of the crossfades) its tone must be loud, the other
tones absent, and the picture's own sound still there."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from otio_adapter.edit_io import write_timeline
from otio_adapter.score import add_score
from otio_adapter.testing import make_cue, make_edit
from otio_adapter.timeline import is_moodsic_music

pytestmark = pytest.mark.skipif(shutil.which("melt") is None, reason="melt is not installed")

VIDEO_HZ = 300.0
MUSIC_HZ = (500.0, 700.0, 900.0)
BOUNDS = (0.0, 3.0, 6.5, 10.0)
SR = 48000


def _video(path: Path, seconds: float = 12.0, rate: str = "25") -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=red:s=64x36:r={rate}:d={seconds}",
         "-f", "lavfi", "-i", f"sine=f={VIDEO_HZ}:d={seconds}:r={SR}", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


def _scored(tmp_path: Path, layout: str, fps: Fraction = Fraction(25)) -> otio.schema.Timeline:
    video = _video(tmp_path / "v.mp4", rate=f"{fps.numerator}/{fps.denominator}")
    per_s = fps
    cut = int(4 * per_s)
    edit = make_edit([(video, 0, cut), (video, cut + 50, int(10 * per_s) - cut)], fps=fps)
    cue = make_cue(
        tmp_path, fps=fps, boundaries_s=BOUNDS[:-1], duration_s=BOUNDS[-1], track_seconds=15.0,
        freqs=MUSIC_HZ, crossfade_s=1.0, video_name=str(video),
    )  # fmt: skip
    scored = add_score(edit, cue, layout=layout)
    for track in scored.tracks:  # a library's tracks are absolute paths
        for clip in track.find_clips() if is_moodsic_music(track) else ():
            clip.media_reference.target_url = (tmp_path / clip.media_reference.target_url).as_uri()
    return scored


def _render(mlt: Path) -> np.ndarray:
    import soundfile

    wav = mlt.with_suffix(".wav")
    done = subprocess.run(
        ["melt", str(mlt), "-consumer", f"avformat:{wav}", "terminate_on_pause=1", "real_time=0",
         f"frequency={SR}"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-500:]
    y, sr = soundfile.read(str(wav))
    assert sr == SR
    return y.mean(axis=1) if y.ndim > 1 else y


def _level(y: np.ndarray, start_s: float, end_s: float, hz: float) -> float:
    """Amplitude of the `hz` component inside [start_s, end_s) (Hann-windowed FFT peak)."""
    seg = y[int(start_s * SR) : int(end_s * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) / len(seg) * 4
    freqs = np.fft.rfftfreq(len(seg), 1 / SR)
    return float(spec[(freqs > hz - 4) & (freqs < hz + 4)].max())


@pytest.mark.parametrize("layout", ["alternate", "single"])
def test_melt_plays_each_segments_music(layout: str, tmp_path: Path) -> None:
    out = write_timeline(_scored(tmp_path, layout), tmp_path / "scored.mlt")
    y = _render(out)
    assert abs(len(y) / SR - BOUNDS[-1]) < 0.05
    for i, hz in enumerate(MUSIC_HZ):
        start, end = BOUNDS[i] + 0.6, BOUNDS[i + 1] - 0.6  # clear of the 1 s crossfades
        own = _level(y, start, end, hz)
        assert own > 0.2, (i, own)  # the tones are written at 0.4 (x0.8..1.0 tremolo)
        for other in MUSIC_HZ:
            if other != hz:
                assert _level(y, start, end, other) < own / 50, (i, other)
        assert _level(y, start, end, VIDEO_HZ) > 0.05  # the picture's own sound stays


def test_crossfade_overlaps_both_tones(tmp_path: Path) -> None:
    y = _render(write_timeline(_scored(tmp_path, "alternate"), tmp_path / "x.mlt"))
    # the 1 s crossfade centred on 3.0 s: the outgoing tone falls as the incoming one rises
    assert _level(y, 2.55, 2.8, 500) > _level(y, 2.55, 2.8, 700)
    assert _level(y, 3.2, 3.45, 700) > _level(y, 3.2, 3.45, 500)
    assert _level(y, 2.9, 3.1, 500) > 0.01 and _level(y, 2.9, 3.1, 700) > 0.01


def test_document_shape(tmp_path: Path) -> None:
    scored = _scored(tmp_path, "alternate", fps=Fraction(24000, 1001))
    scored.video_tracks()[0][1].enabled = False  # a disabled clip plays as a blank
    root = ET.parse(write_timeline(scored, tmp_path / "s.mlt")).getroot()
    profile = root.find("profile")
    assert (profile.get("frame_rate_num"), profile.get("frame_rate_den")) == ("24000", "1001")
    main = root.find("tractor[@id='main']")
    tracks = main.findall("track")
    assert [t.get("hide") for t in tracks] == [None, None, "video", "video"]
    mixed = {
        int(t.findtext("property[@name='b_track']"))
        for t in main.findall("transition")
        if t.findtext("property[@name='mlt_service']") == "mix"
    }
    assert mixed == {1, 2, 3}
    v1 = root.find(f"playlist[@id='{tracks[1].get('producer')}']")
    assert [c.tag for c in v1] == ["property", "property", "entry", "blank"]
    assert v1.find("blank").get("length") == str(240 - 96)  # 10 s at 23.976 less the 1st clip


@pytest.mark.slow
def test_scored_premiere_edit_plays_its_music(tmp_path: Path) -> None:
    """A real Premiere edit (FCP7 XML, 25 fps: disabled clips on V1, a disabled track, its own
    audio tracks), scored with the grammar expert and written as .mlt."""
    from editor_corpus import corpus_library, score_with_grammar, stand_in_media

    from otio_adapter.edit_io import read_edit

    source = Path(__file__).parent / "data" / "fcp7" / "premiere_enable_property.xml"
    media = stand_in_media(read_edit(source), tmp_path / "media")
    timeline = read_edit(source, media_dir=media)
    scored, report = score_with_grammar(timeline, corpus_library(tmp_path / "lib"))
    y = _render(write_timeline(scored, tmp_path / "scored.mlt"))
    assert abs(len(y) / SR - 256 / 25) < 0.05
    tones = {f"q{q}k0": 200.0 + 40 * q for q in range(4)}  # corpus_library's tracks
    for seg in report.cue.segments:
        start, end = seg.start_frame / 25 + 0.6, seg.end_frame / 25 - 0.6
        hz = tones[seg.track.id]
        assert _level(y, start, end, hz) > 0.2
        assert all(_level(y, start, end, f) < 0.01 for f in tones.values() if f != hz)


def _colour_at(video: Path, seconds: float) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{seconds}", "-i", str(video), "-frames:v", "1",
         "-vf", "scale=4:4", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, 3).mean(axis=0)


@pytest.mark.slow
def test_upper_video_tracks_composite_over_v1(tmp_path: Path) -> None:
    """V2's clip shows over V1 where it has one, V1 shows through V2's gaps, and a title
    generator (which MLT cannot draw) does not black out the tracks below."""
    red = _video(tmp_path / "red.mp4", seconds=4.0)
    blue = tmp_path / "blue.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=64x36:r=25:d=2",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(blue)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    edit = make_edit([(red, 0, 100)])
    v2 = make_edit([(None, 0, 40), (blue, 0, 20)]).tracks[0]
    title = otio.schema.Clip(
        name="title",
        media_reference=otio.schema.GeneratorReference(generator_kind="Slug"),
        source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, 25), otio.opentime.RationalTime(100, 25)
        ),
    )
    v3 = otio.schema.Track(name="V3", children=[title])
    edit.tracks.extend([v2.clone(), v3])
    mp4 = tmp_path / "out.mp4"
    mlt = write_timeline(edit, tmp_path / "out.mlt")
    done = subprocess.run(
        ["melt", str(mlt), "-consumer", f"avformat:{mp4}", "terminate_on_pause=1",
         "real_time=0", "width=64", "height=36"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-500:]
    for seconds, channel in ((0.8, 0), (2.0, 2), (3.2, 0)):  # red, blue, red
        colour = _colour_at(mp4, seconds)
        assert colour[channel] > 150 and np.delete(colour, channel).max() < 60, (seconds, colour)
