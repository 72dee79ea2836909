"""The add-on's pure placement module: cue sheet + scene facts -> strips, keys, markers (no bpy)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from blender_support import addon_module

P = addon_module("placement")
NTSC = Fraction(30000, 1001)


def cue(video="/media/clip.mp4", frames=600, bounds=(0, 200, 400, 600), in_s=0.0, duration_s=None):
    moods = [
        ("calm-neutral", "Calm & Neutral"),
        ("bright-engaging", "Bright & Engaging"),
        ("tense-intense", "Tense & Intense"),
    ]
    segs = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        slug, label = moods[i % 3]
        segs.append(
            {
                "start_s": a / float(NTSC),
                "end_s": b / float(NTSC),
                "start_frame": a,
                "end_frame": b,
                "mood": slug,
                "mood_label": label,
                "valence": 0.1,
                "arousal": 0.2,
                "confidence": 0.9,
                "track": {
                    "id": f"t{i}",
                    "title": f"Track {i}",
                    "artist": "x",
                    "path": f"/music/t{i}.wav",
                    "valence": 0.0,
                    "arousal": 0.0,
                    "in_s": in_s,
                    "duration_s": duration_s,
                },
            }
        )
    return {
        "schema": "moodsic.cue/1",
        "video": {
            "path": video,
            "duration_s": frames / float(NTSC),
            "fps": [30000, 1001],
            "frames": frames,
        },
        "engine": {"version": "0", "experts": [], "config": {}},
        "samples": [],
        "cuts": [],
        "segments": segs,
    }


def movie(
    name="clip",
    path="/media/clip.mp4",
    frame_start=100,
    trim_start=45,
    trim_end=0,
    channel=2,
    frames=600,
):
    return P.MovieFacts(
        name=name,
        source_path=path,
        frame_start=frame_start,
        final_start=frame_start + trim_start,
        final_end=frame_start + frames - trim_end,
        channel=channel,
        frame_duration=frames,
    )


def scene(channels=(1, 2)):
    return P.SceneFacts(fps=NTSC, frame_start=1, frame_end=1000, user_channels=frozenset(channels))


def test_scene_fps_is_exact_rational():
    assert P.scene_fps(30, 1.001) == NTSC
    assert P.scene_fps(24, 1.001) == Fraction(24000, 1001)
    assert P.scene_fps(25, 1.0) == 25
    with pytest.raises(P.PlacementError):
        P.scene_fps(0, 1.0)


def test_strips_follow_offset_and_trim_with_crossfades_and_markers():
    plan = P.plan([P.Job(movie(), cue(), "/cues/a.json")], scene())
    assert plan.channels == (3, 4)
    got = [(s.name, s.channel, s.start, s.end, s.in_frame) for s in plan.sounds]
    # Segment boundaries 200/400 map to 100 + 200/400; the trim hides frames 100..144.
    # Crossfade 2 s = 60 frames at 29.97, centred on each boundary (30 each side).
    assert got == [
        ("Track 0", 3, 145, 330, 0),
        ("Track 1", 4, 270, 530, 0),
        ("Track 2", 3, 470, 700, 0),
    ]
    assert [(m.name, m.frame) for m in plan.markers] == [
        ("Calm & Neutral", 145),
        ("Bright & Engaging", 300),
        ("Tense & Intense", 500),
    ]
    first, middle, last = plan.sounds
    edge = round(0.5 * float(NTSC))  # 15 frames
    assert first.keys == ((145, 0.0), (145 + edge, 1.0), (270, 1.0), (330, 0.0))
    assert middle.keys == ((270, 0.0), (330, 1.0), (470, 1.0), (530, 0.0))
    assert last.keys == ((470, 0.0), (530, 1.0), (700 - edge, 1.0), (700, 0.0))
    # Overlapping strips never share a channel.
    for a, b in zip(plan.sounds, plan.sounds[1:], strict=False):
        assert a.end > b.start and a.channel != b.channel
    assert all(s.tags["moodsic"] == 1 and s.tags["cue"] == "/cues/a.json" for s in plan.sounds)
    assert [s.tags["segment"] for s in plan.sounds] == [0, 1, 2]


def test_crossfade_sums_to_constant_gain_at_each_frame():
    plan = P.plan([P.Job(movie(), cue(), "c")], scene())

    def vol(s, f):
        keys = s.keys or ((s.start, s.volume), (s.end, s.volume))
        for (f0, v0), (f1, v1) in zip(keys, keys[1:], strict=False):
            if f0 <= f <= f1:
                return v0 + (v1 - v0) * (f - f0) / (f1 - f0)
        return 0.0

    for f in range(270, 331, 5):  # inside the first crossfade
        total = sum(vol(s, f) for s in plan.sounds if s.start <= f < s.end)
        assert total == pytest.approx(1.0, abs=1e-6)


def test_music_in_point_moves_back_by_the_crossfade_lead_in():
    plan = P.plan([P.Job(movie(trim_start=0), cue(in_s=10.0), "c")], scene())
    in10 = round(10 * float(NTSC))
    assert plan.sounds[0].in_frame == in10  # first strip: no lead-in
    assert (
        plan.sounds[1].in_frame == in10 - 30
    )  # starts 30 frames early, so 30 frames earlier in the track


def test_sliver_left_by_a_trim_joins_the_next_segment():
    # Trim 195 of 200 frames of segment 0: 5 visible frames (< 1 s) belong to segment 1's music.
    plan = P.plan([P.Job(movie(trim_start=195), cue(), "c")], scene())
    assert [s.tags["segment"] for s in plan.sounds] == [1, 2]
    assert plan.sounds[0].start == 295
    assert [m.frame for m in plan.markers] == [295, 500]


def test_higher_channel_movie_decides_the_music_where_strips_overlap():
    low = movie("low", "/media/a.mp4", frame_start=0, trim_start=0, channel=1)
    high = movie("high", "/media/b.mp4", frame_start=300, trim_start=0, channel=3, frames=600)
    jobs = [P.Job(low, cue("/media/a.mp4"), "a"), P.Job(high, cue("/media/b.mp4"), "b")]
    assert P.visible_ranges([low, high]) == [(0, 0, 300), (1, 300, 900)]
    plan = P.plan(jobs, scene(channels=(1, 3)))
    assert plan.channels == (4, 5)
    sources = [(s.tags["source"], s.tags["span_start"], s.tags["span_end"]) for s in plan.sounds]
    assert sources == [
        ("low", 0, 200),
        ("low", 200, 300),
        ("high", 300, 500),
        ("high", 500, 700),
        ("high", 700, 900),
    ]
    # The cut between the two clips is crossfaded like any boundary.
    assert plan.sounds[1].end == 330 and plan.sounds[2].start == 270


def test_gap_between_strips_fades_each_run_at_its_edges():
    a = movie("a", "/media/a.mp4", frame_start=0, trim_start=0, channel=1)
    b = movie("b", "/media/a.mp4", frame_start=700, trim_start=0, channel=1)
    plan = P.plan(
        [P.Job(a, cue("/media/a.mp4"), "a"), P.Job(b, cue("/media/a.mp4"), "a")], scene((1,))
    )
    run_end = [s for s in plan.sounds if s.tags["source"] == "a"][-1]
    run_start = [s for s in plan.sounds if s.tags["source"] == "b"][0]
    assert run_end.end == 600 and run_end.keys[-1] == (600, 0.0)
    assert run_start.start == 700 and run_start.keys[0] == (700, 0.0)
    # Markers mark mood changes: the second run starts calm after a tense ending.
    assert [m.frame for m in plan.markers] == [0, 200, 400, 700, 900, 1100]


def test_channels_full_is_refused():
    with pytest.raises(P.PlacementError, match="no free channels"):
        P.plan([P.Job(movie(), cue(), "c")], P.SceneFacts(NTSC, 1, 100, frozenset({2, 127})))
    assert P.choose_channels(P.SceneFacts(NTSC, 1, 100, frozenset({126}))) == (127, 128)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (cue(video="/media/other.mp4"), "was made for other.mp4"),
        (cue(frames=900, bounds=(0, 300, 600, 900)), "describes 900 frames"),
        ({**cue(), "schema": "moodsic.cue/0"}, "not a moodsic.cue/1"),
        (
            {
                **cue(),
                "segments": cue()["segments"][:1] + cue(bounds=(0, 210, 400, 600))["segments"][1:],
            },
            "do not tile",
        ),
        ({**cue(), "segments": cue()["segments"][:2]}, "segments end at frame 400"),
        ({**cue(), "segments": []}, "no segments"),
    ],
)
def test_cue_sheet_from_another_video_or_malformed_is_refused(bad, message):
    with pytest.raises(P.PlacementError, match=message):
        P.plan([P.Job(movie(), bad, "c")], scene())


def test_nothing_selected_is_refused():
    with pytest.raises(P.PlacementError, match="select"):
        P.plan([], scene())


def test_short_track_loops_on_its_channel():
    plan = P.plan([P.Job(movie(trim_start=0), cue(duration_s=3.0), "c")], scene())
    first = [s for s in plan.sounds if s.tags["segment"] == 0]
    length = round(3.0 * float(NTSC))  # 90 frames
    assert [(s.start, s.end, s.in_frame) for s in first] == [
        (100, 190, 0),
        (190, 280, 0),
        (280, 330, 0),
    ]
    assert {s.channel for s in first} == {3}
    assert first[0].keys[0] == (100, 0.0) and first[-1].keys[-1] == (330, 0.0)
    assert all(s.end - s.start <= length for s in plan.sounds)


def test_ducking_under_dialogue_dips_the_music():
    job = P.Job(movie(trim_start=0), cue(), "c", speech=((2.0, 4.0),))
    opts = P.PlaceOptions(duck_db=-10.0)
    plan = P.plan([job], scene(), opts)
    s = plan.sounds[0]
    dialogue_gain = 10 ** (-6 / 20)  # music sits 6 dB lower in a clip with dialogue
    duck = 10 ** (-10 / 20)
    a, b = 100 + round(2 * float(NTSC)), 100 + round(4 * float(NTSC))
    keys = dict(s.keys)
    assert keys[a] == pytest.approx(dialogue_gain * duck, rel=1e-4)
    assert keys[b] == pytest.approx(dialogue_gain * duck, rel=1e-4)
    assert keys[a - round(0.15 * float(NTSC))] == pytest.approx(dialogue_gain, rel=1e-4)
    no_duck = P.plan([job], scene(), P.PlaceOptions(duck=False)).sounds[0]
    assert a not in dict(no_duck.keys)


def test_track_loudness_sets_the_gain_towards_the_target():
    lufs = {"/music/t0.wav": -20.0, "/music/t1.wav": -8.0}
    plan = P.plan(
        [P.Job(movie(), cue(), "c")], scene(), P.PlaceOptions(target_lufs=-14.0), track_lufs=lufs
    )
    assert plan.sounds[0].volume == pytest.approx(10 ** (6 / 20), rel=1e-5)
    assert plan.sounds[1].volume == pytest.approx(10 ** (-6 / 20), rel=1e-5)
    assert plan.sounds[2].volume == pytest.approx(1.0)  # unknown loudness: left as it is
    assert max(v for _, v in plan.sounds[0].keys) == pytest.approx(10 ** (6 / 20), rel=1e-5)


def test_reroll_helpers_touch_one_segment_only():
    old = cue()
    new = cue()
    new["segments"][1]["track"] = {
        **new["segments"][1]["track"],
        "id": "other",
        "path": "/music/o.wav",
    }
    new["segments"][2]["track"] = {**new["segments"][2]["track"], "id": "changed-too"}
    merged = P.replace_track(old, 1, new)
    assert [s["track"]["id"] for s in merged["segments"]] == ["t0", "other", "t2"]
    assert [s["track"]["id"] for s in old["segments"]] == ["t0", "t1", "t2"]
    with pytest.raises(P.PlacementError, match="different segments"):
        P.replace_track(old, 1, cue(bounds=(0, 250, 400, 600)))
    plan = P.plan([P.Job(movie(), merged, "c")], scene())
    assert P.segment_at(plan, 300) == ("c", 1)
    assert P.segment_at(plan, 299) == ("c", 0)  # inside the crossfade: the nominal owner
    assert P.segment_at(plan, 5000) is None
    only = plan.for_segment("c", 1)
    assert [s.filepath for s in only.sounds] == ["/music/o.wav"]


def test_scene_rate_differs_from_the_movie_rate():
    # Blender shows one source frame per timeline frame whatever the scene rate, so the
    # boundaries stay at frame_start + source frame; crossfades are seconds at the scene rate.
    sc = P.SceneFacts(fps=Fraction(25), frame_start=1, frame_end=1000, user_channels=frozenset({2}))
    plan = P.plan([P.Job(movie(trim_start=0), cue(), "c")], sc)
    assert [(s.start, s.end) for s in plan.sounds] == [(100, 325), (275, 525), (475, 700)]
    assert [m.frame for m in plan.markers] == [100, 300, 500]
