"""FCPXML writing: scored edits as Final Cut Pro projects that validate against Apple's DTD,
with the music's crossfades and fades as <transition>s at the right frames, audio assets
marked as audio, exact NTSC times, and a picture track that reads back item by item."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from otio_adapter import read_edit, write_timeline
from otio_adapter.score import add_score, media_path
from otio_adapter.testing import make_cue, make_edit, write_video
from otio_adapter.timeline import moodsic_meta, rate_of, to_frames

sys.path.insert(0, str(Path(__file__).parent))
from editor_corpus import picture_items  # noqa: E402

DATA = Path(__file__).parent / "data" / "fcpxml-dtd"
RATES = [Fraction(25), Fraction(24000, 1001), Fraction(30000, 1001)]
RT = otio.opentime.RationalTime


def _valid(path: Path, version: str = "1.8") -> None:
    dtd = DATA / f"Final_Cut_Pro_XML_DTD_version_{version}.dtd"
    res = subprocess.run(
        ["xmllint", "--noout", "--dtdvalid", str(dtd), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr


def _time(text: str) -> Fraction:
    num, _, den = text.removesuffix("s").partition("/")
    return Fraction(int(num), int(den or 1))


def _f(text: str, fps: Fraction) -> int:
    """An FCPXML time as whole frames (asserting it is whole)."""
    frames = _time(text) * fps
    assert frames.denominator == 1, text
    return int(frames)


def _storyline(root: ET.Element, name: str) -> ET.Element:
    (found,) = [s for s in root.iter("spine") if s.get("name") == name]
    return found


def _transitions(spine: ET.Element, fps: Fraction) -> list[tuple[int, int]]:
    return [
        (_f(t.get("offset"), fps), _f(t.get("duration"), fps)) for t in spine.findall("transition")
    ]


def _otio_transitions(track: otio.schema.Track, rate: float) -> list[tuple[int, int]]:
    """(start frame, length) of each transition: cut minus in_offset, in + out."""
    out = []
    for item in track:
        if isinstance(item, otio.schema.Transition):
            cut = to_frames(item.range_in_parent().start_time, rate) + to_frames(
                item.in_offset, rate
            )
            before, after = to_frames(item.in_offset, rate), to_frames(item.out_offset, rate)
            out.append((cut - before, before + after))
    return out


def _music(timeline: otio.schema.Timeline, rate: float) -> list[tuple[str, int, int]]:
    clips = [c for t in timeline.tracks if str(t.kind).lower() == "audio" for c in t.find_clips()]
    out = []
    for c in clips:
        rng = c.range_in_parent()
        start = to_frames(rng.start_time, rate)
        out.append((c.name, start, start + to_frames(rng.duration, rate)))
    return sorted(out, key=lambda x: (x[1], x[0]))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("fcpxw") / "shot 1.mp4", 2, size="160x96")


def _scored(folder: Path, video: Path, fps: Fraction, layout: str, tc_hours: int = 0):  # noqa: ANN202
    """A three-item edit (clip, gap, clip) scored with the four-segment test cue: music
    WAVs beside the output, so their relative paths resolve there."""
    cue = make_cue(folder, fps=fps)
    frames = cue.video.frames
    edit = make_edit(
        [(video, 5, 100, 10000), (None, 0, 30), (video, 40, frames - 130, 10000)], fps=fps
    )
    rate = rate_of(fps)
    edit.global_start_time = RT(tc_hours * 3600 * round(fps), rate)
    return add_score(edit, cue, layout=layout), cue


@pytest.mark.parametrize("layout", ["alternate", "single"])
@pytest.mark.parametrize("fps", RATES, ids=["25", "23.976", "29.97"])
def test_scored_edit_as_valid_fcpxml_with_transitions(tmp_path, video, fps, layout) -> None:  # noqa: ANN001
    rate = rate_of(fps)
    scored, cue = _scored(tmp_path, video, fps, layout, tc_hours=1 if fps.denominator > 1 else 0)
    out = write_timeline(scored, tmp_path / "scored.fcpxml")
    _valid(out)
    root = ET.parse(out).getroot()
    assert root.get("version") == "1.8"
    (sequence,) = root.iter("sequence")
    (fmt,) = [f for f in root.iter("format") if f.get("id") == sequence.get("format")]
    assert fmt.get("frameDuration") == {25: "1/25s"}.get(fps, f"1001/{fps.numerator}s")
    assert (fmt.get("width"), fmt.get("height")) == ("160", "96")  # the first clip's media
    tc = to_frames(scored.global_start_time, rate)
    assert tc == (0 if fps == 25 else 3600 * round(fps))
    assert _f(sequence.get("tcStart"), fps) == tc
    assert _f(sequence.get("duration"), fps) == cue.video.frames

    # the crossfades: centred on each mood change, a second either side
    half = round(fps)  # crossfade_s 2.0
    bounds = [s.start_frame for s in cue.segments[1:]]
    centred = [(b - half, 2 * half) for b in bounds]
    names = [t.name for t in scored.tracks[1:]]
    got = {n: _transitions(_storyline(root, n), fps) for n in names}
    want = {t.name: _otio_transitions(t, rate) for t in scored.tracks[1:]}
    assert got == want
    if layout == "single":
        assert got == {"Music": centred}
    else:  # the outgoing track fades out and the incoming one fades in over the same frames
        assert sorted(got["Music A"] + got["Music B"]) == sorted(centred * 2)
        spine_a = _storyline(root, "Music A")
        assert [e.tag for e in spine_a] == [
            "asset-clip", "transition", "gap", "transition", "asset-clip", "transition", "gap",
        ]  # fmt: skip
        for t in spine_a.findall("transition"):  # FCP's own transition pair
            assert [c.get("name") for c in t] == ["Cross Dissolve", "Audio Crossfade"]
    if fps == 25 and layout == "alternate":
        assert got["Music A"] == [(125, 50), (287, 50), (475, 50)]
        assert got["Music B"] == [(125, 50), (287, 50), (475, 50)]
    # storylines hang from the first picture clip at its own start (record frame 0)
    first = root.find("./project/sequence/spine/asset-clip")
    assert [s.get("lane") for s in first.findall("spine")] == [
        str(-k) for k in range(1, len(names) + 1)
    ]
    assert {s.get("offset") for s in first.findall("spine")} == {first.get("start")}

    # assets: the music is audio only, read from the WAVs; the picture has no sound
    assets = {a.get("name"): a for a in root.iter("asset")}
    for i in range(4):
        a = assets[f"track{i}"]
        assert (a.get("hasVideo"), a.get("hasAudio")) == ("0", "1")
        assert (a.get("audioChannels"), a.get("audioRate")) == ("1", "48000")
        assert a.get("duration") == "40s" and a.get("start") == "0s"
        assert a.get("src") == (tmp_path / f"track{i}.wav").resolve().as_uri()
        assert a.get("format") is None
    shot = assets["shot 1"]
    assert (shot.get("hasVideo"), shot.get("hasAudio")) == ("1", "0")
    assert shot.get("src") == video.resolve().as_uri() and "%20" in shot.get("src")
    assert _f(shot.get("duration"), fps) == 10000
    music_clips = [c for c in root.iter("asset-clip") if c.get("audioRole") == "music"]
    assert len(music_clips) == 4
    # each music clip's Moodsic metadata in its <note>, the cue sheet in the sequence's
    kept = [json.loads(c.findtext("note"))["moodsic"] for c in music_clips]
    assert sorted((m["role"], m["segment"], m["track"]["id"]) for m in kept) == [
        ("music", i, f"t{i}") for i in range(4)
    ]
    assert json.loads(sequence.findtext("note"))["moodsic"] == moodsic_meta(scored)
    assert [c.tag for c in sequence] == ["note", "spine"]
    # the mood markers ride on the music clips, at the mood change in the clip's own time
    labels = sorted(m.get("value") for c in music_clips for m in c.findall("marker"))
    assert labels == sorted(s.mood_label for s in cue.segments)
    # each note carries the exact segment, so a reader can rebuild the cue sheet from FCP
    notes = [json.loads(m.get("note"))["moodsic"] for c in music_clips for m in c.iter("marker")]
    assert sorted(n["segment"] for n in notes) == [0, 1, 2, 3]
    for n in notes:
        seg = json.loads(n["segment_json"])
        assert (seg["start_frame"], seg["mood"]) == (
            cue.segments[n["segment"]].start_frame,
            cue.segments[n["segment"]].mood,
        )

    # read back: the same picture, item by item, and the music at the same record frames
    back = read_edit(out)
    assert to_frames(back.global_start_time or RT(0, rate), rate) == tc
    assert picture_items(back) == picture_items(scored)
    assert picture_items(back) == [
        ("shot 1.mp4", 0, 100), ("gap", 100, 130), ("shot 1.mp4", 130, cue.video.frames),
    ]  # fmt: skip
    assert _music(back, rate) == _music(scored, rate)
    for clip in back.find_clips():
        assert media_path(clip.media_reference, None).is_file()


def test_fcpxml_1_10_media_rep_and_percent_encoded_paths(tmp_path, video) -> None:  # noqa: ANN001
    from otio_adapter.fcpxml_write import fcpxml_string

    odd = tmp_path / "take 1 é#2%.mp4"
    shutil.copy(video, odd)
    fps = Fraction(24000, 1001)
    scored, cue = _scored(tmp_path, odd, fps, "single")
    out = tmp_path / "scored.fcpxml"
    out.write_text(fcpxml_string(scored, base_dir=tmp_path, version="1.10"), encoding="utf-8")
    _valid(out, "1.10")
    root = ET.parse(out).getroot()
    assert root.get("version") == "1.10"
    reps = {a.get("name"): a.find("media-rep") for a in root.iter("asset")}
    assert all(a.get("src") is None for a in root.iter("asset"))  # 1.10 keeps it in media-rep
    assert reps["take 1 é#2%"].get("src") == odd.resolve().as_uri()
    assert reps["take 1 é#2%"].get("src").endswith("take%201%20%C3%A9%232%25.mp4")
    assert reps["track0"].get("kind") == "original-media"
    # the 1.8 DTD refuses what 1.10 writes (media-rep): each file validates as the version it is
    res = subprocess.run(
        ["xmllint", "--noout", "--dtdvalid", str(DATA / "Final_Cut_Pro_XML_DTD_version_1.8.dtd"),
         str(out)], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode != 0
    transitions = _transitions(_storyline(root, "Music"), fps)
    assert transitions == [(s.start_frame - 24, 48) for s in cue.segments[1:]]
    assert [_f(c.get("offset"), fps) for c in _storyline(root, "Music").findall("asset-clip")] == [
        s.start_frame for s in cue.segments
    ]


@pytest.mark.slow
@pytest.mark.parametrize("fps", RATES[1:], ids=["23.976", "29.97"])
def test_otioconvert_writes_exact_ntsc_fcpxml_with_transitions(tmp_path, video, fps) -> None:  # noqa: ANN001
    # OTIO's own CLI, outside Moodsic's code: the plugin's pre_adapter_write hook routes the
    # .fcpxml write to Moodsic's writer (the adapter's own crashes on 24000/1001)
    rate = rate_of(fps)
    scored, cue = _scored(tmp_path, video, fps, "alternate", tc_hours=1)
    for clip in scored.find_clips():  # absolute paths: otioconvert runs in another folder
        ref = clip.media_reference
        if not Path(ref.target_url).is_absolute():
            ref.target_url = str(tmp_path / ref.target_url)
    otio.adapters.write_to_file(scored, str(tmp_path / "scored.otio"))
    exe = Path(sys.executable).with_name("otioconvert")
    work = tmp_path / "elsewhere"
    work.mkdir()
    for src, dst in (("../scored.otio", "scored.fcpxml"), ("../clip.moodsic.json", "cue.fcpxml")):
        if src.endswith(".json"):
            cue.to_json(tmp_path / "clip.moodsic.json")
        res = subprocess.run(
            [str(exe), "-i", src, "-o", dst], cwd=work, capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, res.stderr
        _valid(work / dst)
    root = ET.parse(work / "scored.fcpxml").getroot()
    (sequence,) = root.iter("sequence")
    assert _f(sequence.get("tcStart"), fps) == 3600 * round(fps)
    assert len(list(root.iter("transition"))) == 6
    back = read_edit(work / "scored.fcpxml")
    assert picture_items(back) == picture_items(scored)
    assert _music(back, rate) == _music(scored, rate)
    # a cue sheet converted by otioconvert (the moodsic adapter reads it): the same music
    cue_root = ET.parse(work / "cue.fcpxml").getroot()
    want = {t.name: _otio_transitions(t, rate) for t in scored.tracks[1:]}
    assert {n: _transitions(_storyline(cue_root, n), fps) for n in want} == want
    assets = {a.get("name"): a for a in cue_root.iter("asset")}
    assert assets["track0"].get("src") == (tmp_path / "track0.wav").resolve().as_uri()
    assert assets["track0"].get("hasVideo") == "0"


def test_transitions_in_the_picture_and_a_retimed_clip(tmp_path, video) -> None:  # noqa: ANN001
    fps = Fraction(25)
    edit = make_edit([(video, 10, 50, 1000), (video, 200, 50, 1000), (video, 400, 40, 1000)])
    track = edit.tracks[0]
    track.insert(1, otio.schema.Transition(in_offset=RT(5, 25), out_offset=RT(7, 25)))
    track[3].effects.append(otio.schema.LinearTimeWarp(time_scalar=2.0))
    out = write_timeline(edit, tmp_path / "edit.fcpxml")
    _valid(out)
    spine = ET.parse(out).getroot().find("./project/sequence/spine")
    assert [e.tag for e in spine] == ["asset-clip", "transition", "asset-clip", "asset-clip"]
    assert _transitions(spine, fps) == [(45, 12)]
    retimed = spine.findall("asset-clip")[2]
    assert _time(retimed.get("start")) == Fraction(400, 25) / 2  # its own (retimed) time
    points = [(_time(p.get("time")), _time(p.get("value"))) for p in retimed.iter("timept")]
    assert points == [
        (0, 0),
        (Fraction(8) + Fraction(40, 25), (Fraction(8) + Fraction(40, 25)) * 2),
    ]
    (asset,) = ET.parse(out).getroot().iter("asset")
    assert _f(asset.get("duration"), fps) == 1000  # covers 400 + 2 * 40 frames of source
    back = read_edit(out)
    assert picture_items(back) == [
        ("shot 1.mp4", 0, 50),
        ("shot 1.mp4", 50, 100),
        ("shot 1.mp4", 100, 140),
    ]
    speeds = [[e.time_scalar for e in c.effects] for c in back.tracks[0].find_clips()]
    assert speeds[2] == [pytest.approx(2.0)]
    assert [to_frames(c.source_range.start_time, 25) for c in back.tracks[0].find_clips()] == [
        10,
        200,
        400,
    ]


@pytest.mark.slow
def test_real_final_cut_export_scored_and_written_back(tmp_path) -> None:  # noqa: ANN001
    from editor_corpus import corpus_library, score_with_grammar, stand_in_media

    src = DATA / "29.97.fcpxml"  # FCP 1.11: cuts, a compound clip, speed ramps, a lane above
    edit = read_edit(src)
    media = stand_in_media(edit, tmp_path / "media")
    edit = read_edit(src, media_dir=media)
    scored, report = score_with_grammar(edit, corpus_library(tmp_path / "lib"), base_dir=tmp_path)
    assert report.missing == ()
    out = write_timeline(scored, tmp_path / "scored.fcpxml")
    _valid(out)
    root = ET.parse(out).getroot()
    fps = Fraction(30000, 1001)
    assert len(list(root.iter("timeMap"))) == 2  # FCP's two speed ramps, as constant speeds
    music = [s for s in root.iter("spine") if (s.get("name") or "").startswith("Music")]
    assert music and all(int(s.get("lane")) < 0 for s in music)
    rate = rate_of(fps)
    for track in scored.tracks:
        if track.name.startswith("Music") and track.find_clips():  # a track of gaps: none
            assert _transitions(_storyline(root, track.name), fps) == _otio_transitions(track, rate)
    back = read_edit(out)
    assert picture_items(back) == picture_items(scored) == picture_items(edit)
    assert [i[1:] for i in picture_items(back)] == [
        (0, 103), (103, 209), (209, 317), (317, 417), (417, 554), (554, 678), (678, 887),
    ]  # fmt: skip
    assert _music(back, rate) == _music(scored, rate)
    # the same real edit under a four-segment score: crossfades on FCP's own cut points
    cue = make_cue(
        tmp_path / "cue",
        fps=fps,
        duration_s=float(Fraction(887 * 1001, 30000)),
        boundaries_s=(0.0, 5.0, 12.0, 20.0),
    )
    for layout in ("single", "alternate"):
        scored = add_score(edit, cue, layout=layout)
        out = write_timeline(scored, tmp_path / "cue" / f"{layout}.fcpxml")
        _valid(out)
        root = ET.parse(out).getroot()
        found = sorted(t for s in root.iter("spine") for t in _transitions(s, fps))
        want = [(s.start_frame - 30, 60) for s in cue.segments[1:]]
        assert found == (want if layout == "single" else sorted(want * 2))
        back = read_edit(out)
        assert picture_items(back) == picture_items(edit)
        assert _music(back, rate) == _music(scored, rate)


CORPUS = sorted((Path(__file__).parent / "data" / "fcpxml").glob("*.fcpxml"))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_real_exports_written_back_valid_with_the_same_picture(tmp_path, path) -> None:  # noqa: ANN001
    # every project of every real FCP export read (titles, stills, compounds, multicams,
    # auditions, speed ramps, disabled clips, connected storylines) written back as 1.8
    from otio_adapter.fcpxml_read import _projects, parse_fcpxml

    names = [p.get("name") for p in _projects(parse_fcpxml(path))] or [None]
    for k, name in enumerate(names):
        try:
            edit = read_edit(path, project=name if len(names) > 1 else None)
        except Exception as exc:  # an empty project or one the reader refuses: not ours
            assert "empty" in str(exc) or "reads as" in str(exc), exc
            continue
        out = write_timeline(edit, tmp_path / f"{k}.fcpxml")
        _valid(out)
        assert picture_items(read_edit(out)) == picture_items(edit)


def test_markers_generators_and_the_callers_timeline_untouched(tmp_path, video) -> None:  # noqa: ANN001
    rate = 25.0
    edit = make_edit([(video, 10, 50, 1000), (None, 0, 20), (video, 100, 30, 1000)])
    track = edit.tracks[0]
    track[0].markers.append(
        otio.schema.Marker(name="editor note", marked_range=otio.opentime.TimeRange(RT(20, rate)))
    )
    edit.tracks.markers.append(
        otio.schema.Marker(name="on the gap", marked_range=otio.opentime.TimeRange(RT(80, rate)))
    )
    title = otio.schema.Clip(
        name="Opening",
        media_reference=otio.schema.GeneratorReference(generator_kind="title"),
        source_range=otio.opentime.TimeRange(RT(0, rate), RT(25, rate)),
    )
    track.insert(0, title)
    before = otio.adapters.write_to_string(edit)
    otio.adapters.write_to_file(edit, str(tmp_path / "edit.fcpxml"))  # OTIO's API: the hook
    assert otio.adapters.write_to_string(edit) == before  # pre_adapter_write changed nothing
    out = tmp_path / "edit.fcpxml"
    _valid(out)
    spine = ET.parse(out).getroot().find("./project/sequence/spine")
    assert [e.tag for e in spine] == ["title", "asset-clip", "gap", "asset-clip"]
    # a clip marker in the clip's source time; a timeline marker on the gap under it
    assert [(m.get("start"), m.get("value")) for m in spine[1].findall("marker")] == [
        ("4/5s", "editor note")
    ]
    assert [(m.get("start"), m.get("value")) for m in spine[2].findall("marker")] == [
        ("1/5s", "on the gap")
    ]
    back = read_edit(out)
    assert picture_items(back) == [
        ("Opening", 0, 25), ("shot 1.mp4", 25, 75), ("gap", 75, 95), ("shot 1.mp4", 95, 125),
    ]  # fmt: skip


def test_fcpxmld_bundle_target_refused_in_one_line(tmp_path, video) -> None:  # noqa: ANN001
    from moodsic_engine.errors import InputError
    from otio_adapter.fcpxml_write import check_fcpxml

    with pytest.raises(InputError, match=r"^out.fcpxmld: Moodsic writes FCPXML as one .fcpxml"):
        check_fcpxml(tmp_path / "out.fcpxmld")
    with pytest.raises(InputError, match=r"^out.fcpxmld: .*name the output .fcpxml"):
        write_timeline(make_edit([(video, 0, 10)]), tmp_path / "out.fcpxmld")
    assert list(tmp_path.iterdir()) == []


def test_media_inside_an_otiod_bundle_linked_absolutely(tmp_path, video) -> None:  # noqa: ANN001
    otio.adapters.write_to_file(make_edit([(video, 0, 40, 50)]), str(tmp_path / "e.otiod"))
    edit = read_edit(tmp_path / "e.otiod")
    assert [c.media_reference.target_url for c in edit.find_clips()] == ["media/shot 1.mp4"]
    out = write_timeline(edit, tmp_path / "elsewhere" / "e.fcpxml")
    _valid(out)
    (asset,) = ET.parse(out).getroot().iter("asset")
    assert asset.get("src") == (tmp_path / "e.otiod" / "media" / "shot 1.mp4").as_uri()
    assert media_path(read_edit(out).tracks[0][0].media_reference, None).is_file()
