"""FCP7 XML (Premiere Pro, DaVinci Resolve, Hiero) in and out, on real exports in tests/data/fcp7.

Expected timings come from walking the XML itself (``<clipitem><start>/<end>``, transitions'
cut points for ``-1``), not from the adapter."""

from __future__ import annotations

import copy
import gzip
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest
from editor_corpus import (
    corpus_library,
    media_name,
    picture_items,
    score_with_grammar,
    stand_in_media,
)

from moodsic_engine.errors import InputError
from otio_adapter.edit_io import read_edit, write_timeline
from otio_adapter.score import add_score, edit_rate, main_video_track
from otio_adapter.testing import make_cue
from otio_adapter.timeline import is_moodsic_music, to_frames

DATA = Path(__file__).parent / "data" / "fcp7"
FILES = [
    "premiere_example.xml",
    "premiere_enable_property.xml",
    "premiere_generators.xml",
    "hiero_xml_export.xml",
    "premiere_challenges_2997.xml.gz",
]


def _file(name: str, tmp_path: Path) -> Path:
    """A real file from the data folder (the large one is stored gzipped)."""
    src = DATA / name
    if name.endswith(".gz"):
        out = tmp_path / name.removesuffix(".gz")
        out.write_bytes(gzip.decompress(src.read_bytes()))
        return out
    return src


# ----------------------------------------------------------------------------- the XML itself
def _cut(trans: ET.Element) -> int:
    start, end = int(trans.findtext("start")), int(trans.findtext("end"))
    align = (trans.findtext("alignment") or "center").strip()
    if align in ("start", "start-black"):
        return start
    if align in ("end", "end-black"):
        return end
    return (start + end) // 2


def _track_items(track: ET.Element) -> list[tuple[str, int, int, bool]]:
    """(name, record start, record end, enabled) of a <track>'s clips, -1 resolved at the
    neighbouring transition's cut point (FCP7 XML's rule)."""
    children = [c for c in track if c.tag in ("clipitem", "generatoritem", "transitionitem")]
    out = []
    for i, el in enumerate(children):
        if el.tag == "transitionitem":
            continue
        start, end = int(el.findtext("start")), int(el.findtext("end"))
        if start == -1:
            start = _cut(children[i - 1])
        if end == -1:
            end = _cut(children[i + 1])
        enabled = (el.findtext("enabled") or "TRUE").strip().upper() != "FALSE"
        out.append(((el.findtext("name") or "").strip(), start, end, enabled))
    return out


def expected_picture(path: Path) -> tuple[list[tuple[str, int, int]], Fraction]:
    """The main picture track as the file declares it: the lowest enabled video track with an
    enabled clip; disabled clips and holes are gaps. Also the sequence's exact rate."""
    seq = ET.parse(path).getroot().find(".//sequence")
    timebase = int(seq.findtext("rate/timebase"))
    ntsc = (seq.findtext("rate/ntsc") or "FALSE").strip().upper() == "TRUE"
    rate = Fraction(timebase * 1000, 1001) if ntsc else Fraction(timebase)
    for track in seq.findall("./media/video/track"):
        if (track.findtext("enabled") or "TRUE").strip().upper() == "FALSE":
            continue
        items = _track_items(track)
        if not any(enabled for *_, enabled in items):
            continue
        out, cursor = [], 0
        for name, start, end, enabled in items:
            if start > cursor:
                out.append(("gap", cursor, start))
            out.append((name if enabled else "gap", start, end))
            cursor = end
        return out, rate
    raise AssertionError("no picture track")


# ----------------------------------------------------------------------------- reading
@pytest.mark.parametrize("name", FILES)
def test_reads_exact_picture_track(name: str, tmp_path: Path) -> None:
    path = _file(name, tmp_path)
    timeline = read_edit(path)
    expected, rate = expected_picture(path)
    assert picture_items(timeline) == expected
    track = main_video_track(timeline)
    assert edit_rate(timeline, track) == rate
    assert to_frames(track.duration(), float(rate)) == expected[-1][2]


def test_ntsc_rates_are_exact(tmp_path: Path) -> None:
    assert edit_rate(
        read_edit(DATA / "premiere_generators.xml"),
        main_video_track(read_edit(DATA / "premiere_generators.xml")),
    ) == Fraction(24000, 1001)
    big = read_edit(_file("premiere_challenges_2997.xml.gz", tmp_path))
    assert edit_rate(big, main_video_track(big)) == Fraction(30000, 1001)
    items = picture_items(big)
    assert len(items) == 67 and items[-1][2] == 28982  # the sequence's <duration>


def test_disabled_clip_is_a_gap_and_disabled_track_is_skipped() -> None:
    timeline = read_edit(DATA / "premiere_enable_property.xml")
    v1 = main_video_track(timeline)
    assert [(c.name, c.enabled) for c in v1.find_clips()] == [
        ("source.mp4", True),
        ("video_track_1_disabled_1", False),
        ("source3.mp4", True),
        ("video_track_1_disabled_2", False),
    ]
    assert [t.enabled for t in timeline.video_tracks()] == [True, True, False]


def test_pathurl_is_kept_and_relinks_by_name(tmp_path: Path) -> None:
    timeline = read_edit(DATA / "premiere_example.xml")
    urls = {c.media_reference.target_url for c in main_video_track(timeline).find_clips()}
    assert urls == {"file://localhost/D%3a/media/sc01_sh010_anim.mov"}
    assert media_name(main_video_track(timeline).find_clips()[0]) == "sc01_sh010_anim.mov"


def _two_sequences(tmp_path: Path) -> Path:
    first = ET.parse(DATA / "premiere_enable_property.xml").getroot().find("sequence")
    second = ET.parse(DATA / "premiere_generators.xml").getroot().find("sequence")
    root = ET.Element("xmeml", version="4")
    project = ET.SubElement(root, "project")
    ET.SubElement(project, "name").text = "two"
    children = ET.SubElement(project, "children")
    children.extend([first, second])
    out = tmp_path / "two.xml"
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return out


def test_several_sequences_pick_by_name_or_refuse(tmp_path: Path) -> None:
    path = _two_sequences(tmp_path)
    with pytest.raises(InputError) as err:
        read_edit(path)
    message = str(err.value)
    assert "\n" not in message and "'disabled_test_sequence'" in message
    assert "'Generators'" in message and "--project" in message
    picked = read_edit(path, project="Generators")
    assert picture_items(picked) == expected_picture(DATA / "premiere_generators.xml")[0]
    with pytest.raises(InputError, match="no sequence named 'nope'"):
        read_edit(path, project="nope")


@pytest.mark.parametrize(
    "text, words",
    [
        (None, "no clips on any track"),
        ("<fcpxml version='1.9'/>", "not a Final Cut Pro 7 XML"),
        ("<xmeml version='4'><sequence>", "not well-formed XML"),
        ("<xmeml version='4'><project/></xmeml>", "holds no sequence"),
    ],
)
def test_refusals_are_one_line(text: str | None, words: str, tmp_path: Path) -> None:
    path = DATA / "sample_just_track.xml"
    if text is not None:
        path = tmp_path / "bad.xml"
        path.write_text(text)
    with pytest.raises(InputError) as err:
        read_edit(path)
    assert words in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- writing
def _music_layout(timeline: otio.schema.Timeline, rate: float) -> list[list[tuple]]:
    """Each audio track's clips and transitions in record frames (gaps implied)."""
    out = []
    for track in timeline.audio_tracks():
        items = []
        for item in track:
            if isinstance(item, otio.schema.Transition):
                items.append(
                    ("T", to_frames(item.in_offset, rate), to_frames(item.out_offset, rate))
                )
            elif isinstance(item, otio.schema.Clip):
                rng = item.range_in_parent()
                start = to_frames(rng.start_time, rate)
                items.append(("C", start, to_frames(rng.end_time_exclusive(), rate)))
        out.append(items)
    return out


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return corpus_library(tmp_path_factory.mktemp("lib"))


def _stand_ins(timeline: otio.schema.Timeline, folder: Path) -> Path:
    """Stand-ins for the clips that name a file (Hiero's '/' clip names none and sits at
    source 03:46:40:00: its stand-in would be hours long)."""
    named = copy.deepcopy(timeline)
    for track in named.tracks:
        for i in reversed(range(len(track))):
            item = track[i]
            if isinstance(item, otio.schema.Clip) and not isinstance(
                item.media_reference, otio.schema.ExternalReference
            ):
                track[i] = otio.schema.Gap(source_range=item.trimmed_range())
    return stand_in_media(named, folder)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, missing",
    [("premiere_example.xml", 0), ("premiere_enable_property.xml", 0), ("hiero_xml_export.xml", 1)],
)
def test_scored_edit_round_trips(name: str, missing: int, library: Any, tmp_path: Path) -> None:
    path = DATA / name
    media = _stand_ins(read_edit(path), tmp_path / "media")
    timeline = read_edit(path, media_dir=media)
    scored, report = score_with_grammar(timeline, library)
    assert len(report.missing) == missing  # Hiero's '/' clip has no media file
    rate = float(edit_rate(scored, main_video_track(scored)))
    music = [t for t in scored.tracks if t.name in ("Music A", "Music B")]
    assert len(music) == 2 and is_moodsic_music(music[0])
    expected_music = _music_layout(scored, rate)[-2:]
    assert expected_music[0][0][1] == 0  # the music starts with the edit
    for suffix in (".xml", ".otio"):
        back = read_edit(write_timeline(scored, tmp_path / f"scored{suffix}"))
        assert picture_items(back) == picture_items(timeline) == expected_picture(path)[0]
        assert _music_layout(back, rate)[-2:] == expected_music
        assert [t.name for t in back.audio_tracks()][-2:] == ["Music A", "Music B"]


def test_generators_only_edit_has_nothing_to_score(library: Any) -> None:
    timeline = read_edit(DATA / "premiere_generators.xml")
    with pytest.raises(InputError) as err:
        score_with_grammar(timeline, library)
    assert "no clip could be scored" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", FILES)
def test_written_back_unchanged(name: str, tmp_path: Path) -> None:
    path = _file(name, tmp_path)
    timeline = read_edit(path)
    for suffix in (".xml", ".otio"):
        back = read_edit(write_timeline(timeline, tmp_path / f"back{suffix}"))
        assert picture_items(back) == expected_picture(path)[0]
        assert edit_rate(back, main_video_track(back)) == expected_picture(path)[1]


def test_crossfades_are_audio_transitions_premiere_imports(tmp_path: Path) -> None:
    timeline = read_edit(DATA / "premiere_enable_property.xml")  # 25 fps, 256 frames
    cue = make_cue(
        tmp_path, boundaries_s=(0.0, 3.0, 6.5), duration_s=256 / 25, track_seconds=15.0,
        crossfade_s=1.0, video_name="source.mp4",
    )  # fmt: skip
    scored = add_score(timeline, cue)
    for track in scored.tracks:  # a library's tracks have absolute paths
        for clip in track.find_clips() if is_moodsic_music(track) else ():
            clip.media_reference.target_url = (tmp_path / clip.media_reference.target_url).as_uri()
    out = write_timeline(scored, tmp_path / "scored.xml")
    root = ET.parse(out).getroot()
    audio = root.findall(".//sequence/media/audio/track")
    fades = [t for track in audio for t in track.findall("transitionitem")]
    assert len(fades) == 4  # in and out of the middle segment, out of the 1st, in of the 3rd
    for fade in fades:
        assert fade.findtext("effect/effectid") == "KGAudioTransCrossFade3dB"
        assert fade.findtext("effect/mediatype") == "audio"
    music_clips = [c for track in audio[-2:] for c in track.findall("clipitem")]
    assert all(c.findtext("sourcetrack/mediatype") == "audio" for c in music_clips)
    wavs = [p.text for p in root.iter("pathurl") if p.text.endswith(".wav")]
    assert sorted(wavs) == [f"file://localhost{tmp_path}/track{i}.wav" for i in range(3)]
    back = read_edit(out)
    assert picture_items(back) == picture_items(timeline)
    layout = _music_layout(scored, 25.0)
    assert _music_layout(back, 25.0)[-2:] == layout[-2:]
    # segment 1 (3.0 s to 6.5 s) plays on Music B from frame 75 - 12 (half the 1 s fade)
    assert layout[-1][0][0] == "T" and layout[-1][1][1] <= 75 < 6.5 * 25 <= layout[-1][1][2]


def test_disabled_clip_stays_disabled_when_written(tmp_path: Path) -> None:
    timeline = read_edit(DATA / "premiere_enable_property.xml")
    back = read_edit(write_timeline(copy.deepcopy(timeline), tmp_path / "out.xml"))
    assert picture_items(back) == picture_items(timeline)
    assert [t.enabled for t in back.video_tracks()] == [True, True, False]
