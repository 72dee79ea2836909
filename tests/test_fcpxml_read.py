"""Our FCPXML reader (otio_adapter.fcpxml_read) on real Final Cut Pro exports (tests/data/fcpxml,
see SOURCES.md there): lengths, record positions and media paths checked against each file's own
numbers, read here by a small independent walk over its storyline."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from moodsic_engine.errors import InputError
from otio_adapter.edit_io import read_edit
from otio_adapter.timeline import fps_from_rate, to_frames

DATA = Path(__file__).parent / "data" / "fcpxml"
RT = otio.opentime.RationalTime

# file -> project to pick (None: the file's only project)
PROJECTS: dict[str, str | None] = {
    "23.98.fcpxml": None,
    "24.fcpxml": None,
    "25i.fcpxml": None,
    "29.97.fcpxml": None,
    "50.fcpxml": None,
    "59.94.fcpxml": None,
    "CompoundClips.fcpxml": None,
    "MulticamSample.fcpxml": None,
    "MulticamSampleWithCuts.fcpxml": None,
    "DisabledClips.fcpxml": None,
    "ImageSample.fcpxml": None,
    "BasicMarkers_1HourProjectStart.fcpxml": None,
    "Occlusion.fcpxml": None,
    "Occlusion2.fcpxml": None,
    "AuditionSample.fcpxml": None,
    "SyncClip.fcpxml": None,
    "TransitionMarkers1.fcpxml": None,
    "HiddenMarkers.fcpxml": None,
    "AudioOnly.fcpxml": None,
    "fcpx_example.fcpxml": "OpenTimeline_Project 1",
    "fcpx_project.fcpxml": None,
}


# ----------------------------------------------------------------------------- the file's numbers
def _t(text: str | None) -> Fraction:
    """FCPXML time, parsed here on its own (not by the reader's code)."""
    if not text:
        return Fraction(0)
    num, _, den = text.removesuffix("s").partition("/")
    return Fraction(num) / Fraction(den or 1)


class Expected:
    """What a file says about its project, read straight from the XML."""

    def __init__(self, name: str, project: str | None) -> None:
        root = ET.parse(DATA / name).getroot()
        projects = list(root.iter("project"))
        chosen = next(p for p in projects if project is None or p.get("name") == project)
        self.seq = chosen.find("sequence")
        fmt = next(f for f in root.iter("format") if f.get("id") == self.seq.get("format"))
        self.fps = 1 / _t(fmt.get("frameDuration"))
        self.tc = _t(self.seq.get("tcStart"))
        self.frames = round(_t(self.seq.get("duration")) * self.fps)
        self.assets = {a.get("id"): a for a in root.iter("asset")}
        self.spine = [c for c in self.seq.find("spine") if c.tag != "transition"]

    def rec(self, t: Fraction) -> int:
        return round((t - self.tc) * self.fps)

    def url(self, asset_id: str) -> str:
        asset = self.assets[asset_id]
        rep = asset.find("media-rep")
        return rep.get("src") if rep is not None else asset.get("src")


def _read(name: str, project: str | None = None) -> otio.schema.Timeline:
    return read_edit(DATA / name, project=project)


def _main(timeline: otio.schema.Timeline) -> otio.schema.Track:
    (track,) = [t for t in timeline.tracks if t.name == "0"]
    return track


def _items(track: otio.schema.Track) -> list[otio.core.Item]:
    return [i for i in track if not isinstance(i, otio.schema.Transition)]


# ----------------------------------------------------------------------------- every file
@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_length_offsets_and_media_match_the_file(name: str) -> None:
    exp = Expected(name, PROJECTS[name])
    timeline = _read(name, PROJECTS[name])
    main = _main(timeline)
    rate = main[0].source_range.duration.rate
    assert fps_from_rate(rate) == exp.fps  # exact: 1001/24000 s is 24000/1001
    # the timeline runs exactly as long as the sequence says
    assert to_frames(timeline.duration(), rate) == exp.frames
    assert timeline.global_start_time == RT(round(exp.tc * exp.fps), rate)
    # the main track is the spine: it ends where the last spine element ends
    last = exp.spine[-1]
    spine_end = exp.rec(_t(last.get("offset")) + _t(last.get("duration") or _dur_of(last)))
    assert to_frames(main.duration(), rate) == spine_end
    starts = {to_frames(i.range_in_parent().start_time, rate): i for i in _items(main)}
    for element in exp.spine:
        rec = exp.rec(_t(element.get("offset")))
        assert rec in starts, f"{element.tag} {element.get('name')} at frame {rec}"
        item = starts[rec]
        if element.tag in ("asset-clip", "video", "title", "gap"):
            length = round(_t(element.get("duration")) * exp.fps)
            assert to_frames(item.source_range.duration, rate) == length
        if element.tag == "gap":
            assert isinstance(item, otio.schema.Gap)
        elif element.tag == "asset-clip":
            assert item.name == element.get("name")
            assert item.enabled == (element.get("enabled", "1") == "1")
            assert item.media_reference.target_url == exp.url(element.get("ref"))
            assert item.media_reference.target_url.startswith("file:///")
            asset = exp.assets[element.get("ref")]
            available = item.media_reference.available_range
            assert to_frames(available.start_time, rate) == round(_t(asset.get("start")) * exp.fps)
            src = to_frames(item.source_range.start_time, rate)
            assert src == round(_source(element) * exp.fps)


def _source(element: ET.Element) -> Fraction:
    """The media time a clip shows first: its start, through its time map when retimed
    (FCP's exports here map two points, 0 -> 0 and T -> V)."""
    start = _t(element.get("start"))
    points = element.findall("timeMap/timept")
    if not points:
        return start
    (t0, v0), (t1, v1) = [(_t(p.get("time")), _t(p.get("value"))) for p in (points[0], points[-1])]
    return v0 + (v1 - v0) * (start - t0) / (t1 - t0)


def _dur_of(element: ET.Element) -> str:
    """An audition's duration is its pick's."""
    return next(c for c in element if c.get("duration") is not None).get("duration")


def test_every_supported_version_is_covered() -> None:
    versions = {ET.parse(DATA / n).getroot().get("version") for n in PROJECTS}
    assert {"1.8", "1.9", "1.10", "1.11", "1.13", "1.14"} <= versions


# ----------------------------------------------------------------------------- containers
def _summary(track: otio.schema.Track) -> list[tuple[str, int, int]]:
    rate = track[0].source_range.duration.rate
    out = []
    for item in _items(track):
        rng = item.range_in_parent()
        name = "gap" if isinstance(item, otio.schema.Gap) else item.name
        out.append(
            (name, to_frames(rng.start_time, rate), to_frames(rng.end_time_exclusive(), rate))
        )
    return out


def test_compound_clips_are_flattened_to_what_they_show() -> None:
    # ref-clip 1 (10.04 s) holds a title; ref-clip 2 holds Clouds (10 s) then ref-clip 1 again
    timeline = _read("CompoundClips.fcpxml")
    assert timeline.global_start_time == RT(90000, 25)  # tcStart 3600 s, not an hour of gap
    assert _summary(_main(timeline)) == [
        ("Basic Title", 0, 251),
        ("Clouds", 251, 501),
        ("Basic Title", 501, 752),
    ]
    clips = _main(timeline).find_clips()
    assert all(isinstance(c.media_reference, otio.schema.GeneratorReference) for c in clips)
    assert clips[1].metadata["fcpxml"]["element"] == "video"  # a generator: <video ref=effect>
    assert clips[1].metadata["fcpxml"]["effect_uid"].endswith("Clouds.localized/Clouds.motn")


def test_compound_trimmed_by_its_start() -> None:
    # compound_clip_1 at 80 s shows its own time from 10900/3000 s for 30 s: the rest of
    # IMG_0233 (0-10 s inside it), then the compound's gaps
    main = _main(_read("fcpx_example.fcpxml", "OpenTimeline_Project 1"))
    rows = _summary(main)
    first = rows.index(("IMG_0233", 2400, 2591))  # 80 s at 30 fps; 10 s - 109/30 s = 191 frames
    assert rows[first + 1 : first + 4] == [
        ("gap", 2591, 2891),
        ("gap", 2891, 3191),
        ("gap", 3191, 3300),
    ]
    clip = next(i for i in main if i.name == "IMG_0233")
    assert clip.source_range.start_time == RT(109, 30)
    assert clip.media_reference.target_url == "file:///Volumes/Media/otio/IMG_0233.MOV"


def test_multicam_shows_the_active_video_angle() -> None:
    main = _main(_read("MulticamSampleWithCuts.fcpxml"))
    a, b = "Day2_InterviewOwners_02_A", "Day2_InterviewOwners_02_B"
    # angle A starts 260260/24000 s (260 frames) into the multicam: black before it
    assert _summary(main) == [
        ("gap", 0, 260),
        (a, 260, 1137),
        (b, 1137, 1947),
        (b, 1947, 2803),
        (a, 2803, 3632),
        (a, 3632, 5040),
        (b, 5040, 5774),
        (a, 5774, 6520),
        ("gap", 6520, 6630),  # angle A's clip ends before the last mc-clip does
    ]
    clips = main.find_clips()
    rate = 24000 / 1001
    # the mc-clip's start minus where the angle's clip sits in the multicam
    assert [to_frames(c.source_range.start_time, rate) for c in clips] == [
        0,
        1137 - 304,
        1947 - 304,
        2803 - 260,
        3632 - 260,
        5040 - 304,
        5774 - 260,
    ]
    assert clips[0].media_reference.target_url.endswith("Take%202/Day2_InterviewOwners_02_A.mov")


def test_audition_plays_its_pick_and_sync_clip_its_storyline() -> None:
    (clip,) = _main(_read("AuditionSample.fcpxml")).find_clips()
    assert clip.name == "chocolate for senses"
    assert clip.source_range == otio.opentime.TimeRange(
        RT(6031, 24000 / 1001), RT(237, 24000 / 1001)
    )
    sync = _read("SyncClip.fcpxml")
    assert _summary(_main(sync)) == [("TestVideo", 0, 738)]
    (audio,) = [t for t in sync.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert audio.name == "-1" and [c.name for c in audio.find_clips()] == ["TestAudio"]


def test_connected_clips_and_secondary_storylines_sit_at_their_record_times() -> None:
    timeline = _read("25i.fcpxml")
    assert [t.name for t in timeline.tracks] == ["0", "1"]
    # Clip 5 at 69400/5000 s, start 216883/5000 s; its storyline at 220883/5000 s: 4/5 s in
    lane = _summary(timeline.tracks[1])
    assert lane[1:5] == [
        ("Clip 5.1", 367, 372),
        ("Clip 5.2", 372, 379),
        ("Clip 5.3", 379, 386),
        ("Clip 5.4", 386, 392),
    ]
    retimed = next(c for c in _main(timeline).find_clips() if c.name == "Clip 4")
    (warp,) = retimed.effects
    assert warp.time_scalar == pytest.approx(9168210 / 4436211)
    project = _read("fcpx_project.fcpxml")
    # lane -1 holds a compound used for its sound only (srcEnable="audio"): an audio track
    assert [(t.name, t.kind) for t in project.tracks] == [
        ("0", "Video"),
        ("1", "Video"),
        ("2", "Video"),
        ("-1", "Audio"),
        ("-2", "Audio"),  # IMG_0687's sound, detached, its picture gone
    ]


def test_a_connected_clip_past_the_storyline_makes_the_sequence_longer() -> None:
    timeline = _read("Occlusion2.fcpxml")
    assert _summary(_main(timeline)) == [("Basic Title 1", 0, 126)]
    assert _summary(timeline.tracks[1]) == [("Basic Title 2", 0, 8436)]
    assert to_frames(timeline.duration(), 25) == 8436


# ----------------------------------------------------------------------------- what is shown
def test_disabled_clips_stay_disabled() -> None:
    main = _main(_read("DisabledClips.fcpxml"))
    assert [(c.name, c.enabled) for c in main.find_clips()] == [
        ("Basic Title", True),
        ("Basic Title 2", False),
        ("TestVideo", True),
        ("TestVideo", False),
    ]
    from editor_corpus import picture_items

    assert [p[0] for p in picture_items(_read("DisabledClips.fcpxml"))] == [
        "Basic Title",
        "gap",
        "TestVideo",
        "gap",
    ]


def test_still_image_is_kept_as_a_clip_of_its_file() -> None:
    (clip,) = _main(_read("ImageSample.fcpxml")).find_clips()
    assert clip.media_reference.target_url.endswith("Still%20Graphics/AWorldofStories.Still001.png")
    rate = 24000 / 1001
    assert clip.source_range == otio.opentime.TimeRange(RT(0, rate), RT(1097, rate))
    assert clip.metadata["fcpxml"]["still"] is True


def test_transitions_sit_around_the_cuts() -> None:
    main = _main(_read("TransitionMarkers1.fcpxml"))
    kinds = [type(i).__name__ for i in main]
    # fades from and to black at the ends have no clip on one side: dropped
    assert kinds == ["Clip", "Transition", "Clip", "Transition", "Clip"]
    for transition in (main[1], main[3]):
        assert transition.in_offset == RT(12, 24) and transition.out_offset == RT(12, 24)
    assert _summary(main) == [
        ("Basic Title 1", 0, 240),
        ("Basic Title 2", 240, 480),
        ("Basic Title 3", 480, 720),
    ]


def test_hour_start_is_the_global_start_time() -> None:
    timeline = _read("BasicMarkers_1HourProjectStart.fcpxml")
    assert timeline.global_start_time == RT(108000, 30000 / 1001)
    assert _summary(_main(timeline)) == [("Basic Title", 0, 1919)]


def test_event_clip_without_project_is_a_one_clip_timeline() -> None:
    timeline = _read("StandaloneAssetClip.fcpxml")
    (clip,) = _main(timeline).find_clips()
    rate = 30000 / 1001
    assert clip.source_range == otio.opentime.TimeRange(RT(107700, rate), RT(300, rate))
    assert clip.media_reference.target_url.endswith("Original%20Media/TestVideo.mov")
    assert len(_main(_read("fcpx_clips.fcpxml")).find_clips()) == 1


# ----------------------------------------------------------------------------- refusals
def test_several_projects_need_a_name() -> None:
    with pytest.raises(InputError) as info:
        _read("fcpx_example.fcpxml")
    text = str(info.value)
    assert "\n" not in text
    assert "'OpenTimeline_Project', 'OpenTimeline_Project 1'" in text
    assert "--project NAME" in text
    assert _read("fcpx_example.fcpxml", "OpenTimeline_Project").name == "OpenTimeline_Project"
    # spacing and case as a shell user types them, when only one project fits
    assert _read("fcpx_example.fcpxml", "opentimeline_project  1 ").name == "OpenTimeline_Project 1"
    with pytest.raises(InputError, match="no project named 'Nope'; it holds 'Test Project'"):
        _read("Structure.fcpxml", "Nope")
    with pytest.raises(InputError, match="project 'Test Project 3' is empty"):
        _read("Structure.fcpxml", "Test Project 3")


def test_a_storyline_that_disagrees_with_its_sequence_is_refused() -> None:
    with pytest.raises(
        InputError, match=r"SyncClipRoles.fcpxml: .*\(storyline 1922\) but its sequence says 8436"
    ):
        _read("SyncClipRoles.fcpxml")


BOMB = """<?xml version="1.0"?>
<!DOCTYPE fcpxml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<fcpxml version="1.11"><project name="&b;"/></fcpxml>
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOMB, "declares XML entities"),
        ("<fcpxml>" + "<spine>" * 500 + "</spine>" * 500 + "</fcpxml>", "nested more than"),
        ("<fcpxml><resources></fcpxml>", "not well-formed XML"),
        ("<xmeml version='5'/>", "not FCPXML"),
        ("<fcpxml version='1.11'><resources/><library/></fcpxml>", "holds no project"),
    ],
    ids=["entities", "depth", "malformed", "not-fcpxml", "empty"],
)
def test_hostile_or_broken_xml_is_refused_in_one_line(tmp_path, text: str, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "bad.fcpxml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_edit(path)
    assert "\n" not in str(info.value) and str(info.value).startswith("bad.fcpxml: ")


def test_utf16_entities_and_oversized_files_are_refused(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    path = tmp_path / "wide.fcpxml"
    path.write_bytes(BOMB.replace('"1.0"?', '"1.0" encoding="UTF-16"?').encode("utf-16"))
    with pytest.raises(InputError, match="declares XML entities"):
        read_edit(path)
    import otio_adapter.edit_io as edit_io

    monkeypatch.setattr(edit_io, "MAX_EDIT_BYTES", 1000)
    with pytest.raises(InputError, match="too large to be an edit"):
        read_edit(DATA / "23.98.fcpxml")


def test_many_elements_are_refused(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import otio_adapter.xml_input as reader

    monkeypatch.setattr(reader, "MAX_ELEMENTS", 100)
    with pytest.raises(InputError, match="more than 100 XML elements"):
        read_edit(DATA / "23.98.fcpxml")


# ----------------------------------------------------------------------------- scored end to end
END_TO_END = [
    ("23.98.fcpxml", None),
    ("MulticamSampleWithCuts.fcpxml", None),
    ("fcpx_example.fcpxml", "OpenTimeline_Project 1"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "project"), END_TO_END, ids=[n for n, _ in END_TO_END])
def test_scored_with_stand_in_media_keeps_the_picture(
    tmp_path, name: str, project: str | None
) -> None:  # noqa: ANN001
    from editor_corpus import (
        corpus_library,
        music_clips,
        picture_items,
        score_with_grammar,
        stand_in_media,
    )

    folder = stand_in_media(_read(name, project), tmp_path / "media")
    edit = read_edit(DATA / name, project=project, media_dir=folder)
    scored, report = score_with_grammar(edit, corpus_library(tmp_path / "lib"))
    assert picture_items(scored) == picture_items(edit)
    assert music_clips(scored)
    # only titles and generators have no picture to watch
    assert all("generator reference" in c.problem for c in report.missing), report.missing
    assert report.cue.video.frames == Expected(name, project).frames


@pytest.mark.slow
def test_a_still_in_the_edit_is_scored_from_its_picture(tmp_path) -> None:  # noqa: ANN001
    from editor_corpus import (
        corpus_library,
        music_clips,
        picture_items,
        score_with_grammar,
        stand_in_media,
    )

    folder = stand_in_media(_read("ImageSample.fcpxml"), tmp_path / "media")
    assert [p.name for p in folder.iterdir()] == ["AWorldofStories.Still001.png"]
    edit = read_edit(DATA / "ImageSample.fcpxml", media_dir=folder)
    scored, report = score_with_grammar(edit, corpus_library(tmp_path / "lib"))
    assert report.missing == () and music_clips(scored)
    assert picture_items(scored) == [("AWorldofStories.Still001", 0, 1097)]
    assert report.cue.video.frames == 1097 and len(report.cue.samples) > 10


# ----------------------------------------------------------------------------- markers, storylines
def _markers(item: otio.core.Item) -> list[tuple[str, int, str]]:
    rate = item.source_range.duration.rate
    return [(m.name, to_frames(m.marked_range.start_time, rate), m.comment) for m in item.markers]


def test_markers_come_back_on_their_clips_with_their_notes() -> None:
    # a title at the project's start whose markers FCP timed in the sequence's time
    basic = _read("BasicMarkers_1HourProjectStart.fcpxml")
    (title,) = _main(basic)
    assert _markers(title) == [  # (27248221/7500 s - tcStart 3603.6 s) * 30000/1001 = 884
        ("Standard Marker", 884, "some notes here"),
        ("To Do Marker, Incomplete", 885, "more notes here"),
        ("To Do Marker, Completed", 886, "notes yay"),
    ]
    assert title.markers[0].marked_range.duration == RT(1, 30000 / 1001)
    # a connected title's markers past its end are hidden in FCP: left out
    hidden = _read("HiddenMarkers.fcpxml")
    (text,) = next(t for t in hidden.tracks if t.name == "1").find_clips()
    assert _markers(text) == [("Marker 1", 267, ""), ("Marker 2", 624, "")]  # 10.68 s, 24.96 s
    # a sync-clip's own marker and its picture component's, on the clip shown
    sync = _read("SyncClip.fcpxml")
    (clip,) = _main(sync).find_clips()
    assert _markers(clip) == [("Marker on Sync Clip", 250, ""), ("Marker on TestVideo", 685, "")]


def test_secondary_storyline_fades_are_transitions_at_their_frames() -> None:
    exp = Expected("24.fcpxml", None)
    parent = next(c for c in exp.spine if c.find("spine") is not None)
    spine = parent.find("spine")
    zero = _t(parent.get("offset")) + _t(spine.get("offset")) - _t(parent.get("start"))
    clips = spine.findall("asset-clip")
    first = exp.rec(zero + _t(clips[0].get("offset")))
    last = exp.rec(zero + _t(clips[-1].get("offset")) + _t(clips[-1].get("duration")))
    fade_in, fade_out = (_t(t.get("duration")) for t in spine.findall("transition"))
    timeline = _read("24.fcpxml")  # held: OTIO frees the tracks of a dropped timeline
    (lane,) = [t for t in timeline.tracks if t.name == "1"]
    rate = float(exp.fps)
    found = [
        (to_frames(i.range_in_parent().start_time + i.in_offset, rate), i.in_offset, i.out_offset)
        for i in lane
        if isinstance(i, otio.schema.Transition)
    ]
    assert found == [  # from nothing into the first clip; out of the last into nothing
        (first, RT(0, rate), RT(round(fade_in * exp.fps), rate)),
        (last, RT(round(fade_out * exp.fps), rate), RT(0, rate)),
    ]
    assert (first, last) == (3260, 3725)
    assert found[1][1] == RT(129, rate)  # 12900/2400 s
