"""CMX 3600 EDLs in and out: real editors' lists read with exact timing, rates inferred,
mismatched events kept at their record length, and the scored edit written back as one EDL
whose music is audio events with dissolves. Expectations come from the EDL text itself,
parsed here independently of otio_adapter, and from OTIO's own CMX 3600 reader."""

from __future__ import annotations

import re
import warnings
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from moodsic_engine.errors import InputError
from otio_adapter.edit_io import check_writable, read_edit, write_timeline
from otio_adapter.score import add_score, score_timeline_report
from otio_adapter.testing import make_cue

DATA = Path(__file__).parent / "data" / "edl"
RATES = {"25fps": 25, "timecode_mismatch": 25, "test_25": 25, "test_24psf": 25}
PICTURE = [p.stem for p in sorted(DATA.glob("*.edl")) if p.stem != "multi_audio"]

# --------------------------------------------------------------------------- independent parse
_EVENT = re.compile(
    r"^(\d+)\s+(\S+)\s+(\S+)\s+(C|D|W\d{3})\s+(?:(\d+)\s+)?"
    r"(\d\d:\d\d:\d\d[:;]\d\d)\s+(\d\d:\d\d:\d\d[:;]\d\d)\s+"
    r"(\d\d:\d\d:\d\d[:;]\d\d)\s+(\d\d:\d\d:\d\d[:;]\d\d)\s*$"
)


def _events(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        m = _EVENT.match(line.strip())
        if m:
            num, reel, chan, trans, dur, *tcs = m.groups()
            out.append(
                {
                    "num": num,
                    "reel": reel,
                    "chan": chan,
                    "trans": trans,
                    "dur": int(dur) if dur else 0,
                    "tcs": tcs,
                }  # fmt: skip
            )
    return out


def _f(tc: str, rate: float) -> int:
    return round(otio.opentime.from_timecode(tc, rate).value)


def _filled(text: str, rate: float, channel: str) -> list[dict]:
    """Events filling record time on a channel: a transition's zero-length "from" line is
    left out (the line after it fills the time)."""
    evs = _events(text)
    out = []
    for i, ev in enumerate(evs):
        nxt = evs[i + 1] if i + 1 < len(evs) else None
        if nxt is not None and nxt["trans"] != "C" and ev["tcs"][2] == ev["tcs"][3]:
            continue
        if channel in ev["chan"] or (channel == "V" and ev["chan"] == "B"):
            ev = dict(ev, rec=(_f(ev["tcs"][2], rate), _f(ev["tcs"][3], rate)))
            out.append(ev)
    return out


def _picture(text: str, rate: float) -> list[tuple[int, int]]:
    """The V events' record (in, out) in frames, in record order; an event a later one
    records over entirely is gone, as on tape."""
    evs = _filled(text, rate, "V")
    kept = [
        e["rec"]
        for i, e in enumerate(evs)
        if not any(o["rec"][0] <= e["rec"][0] and e["rec"][1] <= o["rec"][1] for o in evs[i + 1 :])
    ]
    return sorted(kept)


def _start(tl: otio.schema.Timeline, rate: float) -> int:
    g = tl.global_start_time
    return round(g.value_rescaled_to(rate)) if g is not None else 0


def _read(path: Path, **kw: object) -> tuple[otio.schema.Timeline, list[str]]:
    """The timeline and its warnings, less the one every EDL without --media-dir gets."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tl = read_edit(path, **kw)
    return tl, [str(w.message) for w in caught if "--media-dir" not in str(w.message)]


def _main_clips(tl: otio.schema.Timeline, rate: float) -> list[tuple[int, int]]:
    from editor_corpus import picture_items

    start = _start(tl, rate)
    return [(start + a, start + b) for name, a, b in picture_items(tl) if name != "gap"]


# --------------------------------------------------------------------------- reading
@pytest.mark.parametrize("stem", PICTURE)
def test_real_edl_reads_with_exact_record_times(stem: str) -> None:
    path = DATA / f"{stem}.edl"
    rate = RATES.get(stem, 24)
    tl, caught = _read(path)
    assert any(f"assumed {rate} fps" in w and "--rate" in w for w in caught), caught
    expected = _picture(path.read_text(errors="replace"), rate)
    assert expected, "the file has picture events"
    assert _main_clips(tl, rate) == expected


def test_rate_given_must_hold_the_frames() -> None:
    with pytest.raises(InputError, match=r"01:00:01:24 \(event 004\) has frame 24.*--rate"):
        read_edit(DATA / "25fps.edl", rate=24)
    tl, caught = _read(DATA / "25fps.edl", rate=25)
    assert caught == []
    assert _main_clips(tl, 25)[-1] == (_f("00:00:17:22", 25), _f("00:00:19:21", 25))


def _edl(tmp_path: Path, body: str, name: str = "x.edl") -> Path:
    path = tmp_path / name
    path.write_text("TITLE: t\n" + body)
    return path


def test_rate_inferred_from_frames_and_drop_frame(tmp_path: Path) -> None:
    thirty = _edl(tmp_path, "001  AX V C 01:00:00:00 01:00:00:28 01:00:00:00 01:00:00:28\n")
    tl, caught = _read(thirty)
    assert len(caught) == 1 and "assumed 30 fps" in caught[0] and "up to 28" in caught[0]
    assert _main_clips(tl, 30) == [(108000, 108028)]
    df = _edl(tmp_path, "001  AX V C 01:00:59;29 01:01:00;02 01:00:00;00 01:00:00;01\n", "d.edl")
    tl, caught = _read(df)
    assert caught == []  # ';' says 29.97 drop frame
    assert tl.global_start_time.rate == pytest.approx(30000 / 1001)
    fcm = _edl(tmp_path, "FCM: DROP FRAME\n001  AX V C 00:00:00:00 00:00:01:00 "
               "00:00:00:00 00:00:01:00\n", "f.edl")  # fmt: skip
    tl, caught = _read(fcm)
    assert caught == [] and next(iter(tl.find_clips())).duration().rate == pytest.approx(
        29.97, abs=0.01
    )


def test_m2_at_normal_speed_names_the_rate(tmp_path: Path) -> None:
    body = "001  AX V C 00:00:00:00 00:00:01:10 00:00:00:00 00:00:01:10\nM2   AX  -025.0  00:00:00:00\n"
    tl, caught = _read(_edl(tmp_path, body))
    assert "assumed 25 fps" in caught[0]


def test_mismatched_lengths_play_the_record_length() -> None:
    tl, caught = _read(DATA / "timecode_mismatch.edl")
    mismatch = [w for w in caught if "differ" in w]
    assert len(mismatch) == 1 and "004, 005, 009, 010" in mismatch[0]
    clip = next(c for c in tl.find_clips() if c.name == "sq001_s004")
    assert clip.source_range.start_time.value == 90000  # 01:00:00:00 at 25
    assert clip.source_range.duration.value == _f("00:00:19:19", 25) - _f("00:00:17:22", 25)


def test_avid_48fps_clip_without_m2_keeps_its_cut() -> None:
    tl, caught = _read(DATA / "ToD_R4_LOCK3.1_030618_Video.edl")
    assert any("061, 063" in w for w in caught)
    clip = next(c for c in tl.find_clips() if c.name == "R102-6* 48FPS")
    assert clip.duration().value == _f("04:03:49:23", 24) - _f("04:03:49:10", 24)


def test_misnumbered_dissolve_reads() -> None:
    tl, _ = _read(DATA / "dissolve_test_fail.edl")
    track = tl.tracks[0]
    trans = [t for t in track if isinstance(t, otio.schema.Transition)]
    assert len(trans) == 1 and trans[0].out_offset.value == 10
    assert [c.name for c in track.find_clips()] == ["clip_A", "clip_B", "clip_B"]


def test_audio_only_list_is_refused_in_one_line() -> None:
    tl, _ = _read(DATA / "multi_audio.edl")
    with pytest.raises(InputError) as err:
        score_timeline_report(tl, None)
    assert "no video track" in str(err.value) and "\n" not in str(err.value)


def test_cli_says_what_it_assumed_and_what_to_do(tmp_path: Path) -> None:
    import subprocess
    import sys

    edl = _edl(tmp_path, "001  AX V C 01:00:00:00 01:00:01:00 01:00:00:28 01:00:00:10\n")
    cmd = [sys.executable, "-m", "moodsic_engine.cli", "score-timeline", str(edl), "-o", "o.edl"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        "moodsic: warning: x.edl: no --rate given and an EDL names no frame rate; assumed 30 "
        "fps from its timecodes (frame numbers up to 28); pass --rate to override",
        "moodsic: error: x.edl: event(s) 001 end before they start",
    ]
    assert not (tmp_path / "o.edl").exists()


def test_without_media_dir_the_reader_says_to_pass_it(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"25fps.edl: its events name no media file.*--media-dir"):
        read_edit(DATA / "25fps.edl", rate=25)


def test_not_an_edl_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no events found"):
        read_edit(_edl(tmp_path, "hello\n"))


# --------------------------------------------------------------------------- writing
def _scored(stem_or_path: str | Path, rate: Fraction, layout: str, tmp_path: Path):  # noqa: ANN202
    path = stem_or_path if isinstance(stem_or_path, Path) else DATA / f"{stem_or_path}.edl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tl = read_edit(path, rate=float(rate))
    dur = tl.tracks[0].duration().to_seconds()
    cue = make_cue(tmp_path / "cue", fps=rate, boundaries_s=[0, dur / 3, 2 * dur / 3],
                   duration_s=dur, track_seconds=min(dur + 10, 40), crossfade_s=1.0)  # fmt: skip
    return path, add_score(tl, cue, layout=layout)


def _music_spans(scored: otio.schema.Timeline, rate: float) -> list[tuple[int, int]]:
    from editor_corpus import music_clips

    start = _start(scored, rate)
    return sorted(
        (start + round(c.range_in_parent().start_time.value),
         start + round(c.range_in_parent().end_time_exclusive().value))
        for c in music_clips(scored)
    )  # fmt: skip


def _music_starts(scored: otio.schema.Timeline, rate: float) -> list[int]:
    return [a for a, _ in _music_spans(scored, rate)]


def _crossfades(scored: otio.schema.Timeline, rate: float) -> list[int]:
    """The frames consecutive music clips overlap by in the scored timeline."""
    spans = _music_spans(scored, rate)
    return [
        max(0, a_end - b_start) for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)
    ]


def _otio_read(text: str, rate: float) -> dict[str, list[tuple[int, int]]]:
    """Each track of OTIO's own reading of `text` as absolute record (in, out) per clip."""
    tl = otio.adapters.read_from_string(text, "cmx_3600", rate=rate)
    out = {}
    for track in tl.tracks:
        offset = -round(track.source_range.start_time.value) if track.source_range else 0
        out[track.name] = [
            (offset + round(c.range_in_parent().start_time.value),
             offset + round(c.range_in_parent().end_time_exclusive().value))
            for c in track.find_clips()
        ]  # fmt: skip
        out[track.name + ":dissolves"] = [
            round(t.out_offset.value) for t in track if isinstance(t, otio.schema.Transition)
        ]
    return out


@pytest.mark.parametrize(
    "stem, rate, music",
    [("dissolve_test_4", Fraction(24), "AA"), ("test_25", Fraction(25), "A3"),
     ("speed_effects_small", Fraction(24), "AA"), ("gap_test", Fraction(24), "AA")],
)  # fmt: skip
def test_written_edl_keeps_the_picture_and_carries_the_music(
    stem: str, rate: Fraction, music: str, tmp_path: Path
) -> None:
    path, scored = _scored(stem, rate, "alternate", tmp_path)
    r = float(rate)
    check_writable(tmp_path / "out.edl")
    out = write_timeline(scored, tmp_path / "out.edl")
    text = out.read_text()
    assert text.startswith(f"TITLE: {scored.name}\nFCM: NON-DROP FRAME\n")
    # picture: every V event where the input had it
    assert _picture(text, r) == _picture(path.read_text(errors="replace"), r)
    # music: one event per music clip, at its record frame, crossfades as dissolves
    starts = _music_starts(scored, r)
    lane = _filled(text, r, music)
    assert [e["rec"][0] for e in lane] == starts
    xfades = _crossfades(scored, r)
    # make_cue's 1 s crossfade, to the frame; 0 where a long segment loops its track
    assert any(xfades) and all(x == 0 or abs(x - r) <= 1 for x in xfades)
    assert [e["dur"] for e in lane] == [0, *xfades]
    assert all(e["trans"] == ("D" if x else "C") for e, x in zip(lane[1:], xfades, strict=True))
    assert lane[-1]["rec"][1] == _start(scored, r) + round(scored.duration().value)
    assert "* SOURCE FILE: track1.wav" in text and "* TO CLIP NAME:  Tone 1" in text
    # OTIO's own reader agrees
    theirs = _otio_read(text, r)
    assert theirs["V"] == _main_clips(_read(path, rate=r)[0], r)
    channel = "A1" if music == "AA" else music
    assert [a for a, _ in theirs[channel]] == starts
    assert theirs[channel + ":dissolves"] == [x for x in xfades if x]


def test_single_layout_dissolves_are_centred_on_the_boundary(tmp_path: Path) -> None:
    path, scored = _scored("dissolve_test", Fraction(24), "single", tmp_path)
    music = next(t for t in scored.tracks if t.name == "Music")
    trans = [t for t in music if isinstance(t, otio.schema.Transition)]
    cuts = [round(c.range_in_parent().start_time.value) for c in music.find_clips()][1:]
    text = write_timeline(scored, tmp_path / "s.edl").read_text()
    lane = _filled(text, 24, "AA")
    start = _start(scored, 24)
    assert [e["rec"][0] for e in lane[1:]] == [
        start + cut - round(t.in_offset.value) for cut, t in zip(cuts, trans, strict=True)
    ]
    assert [e["dur"] for e in lane[1:]] == [
        round(t.in_offset.value + t.out_offset.value) for t in trans
    ]
    assert _picture(text, 24) == _picture(path.read_text(), 24)


def test_drop_frame_written_as_drop_frame(tmp_path: Path) -> None:
    body = (
        "FCM: DROP FRAME\n"
        "001  A001 V C 01:00:00;00 01:00:20;00 01:00:00;00 01:00:20;00\n"
        "002  A002 V C 02:00:00;00 02:00:05;00 01:00:20;00 01:00:25;00\n"
        "002  A003 V D 015 03:00:00;00 03:01:10;00 01:00:25;00 01:01:35;00\n"
    )
    path = _edl(tmp_path, body, "df.edl")
    path, scored = _scored(path, Fraction(30000, 1001), "alternate", tmp_path)
    text = write_timeline(scored, tmp_path / "o.edl").read_text()
    assert "FCM: DROP FRAME" in text
    assert "01:00:59;28 01:01:00;02" not in text  # no ';00'/';01' after a minute: dropped
    r = 30000 / 1001
    events = _events(text)
    assert all(";" in tc for e in events for tc in e["tcs"])
    assert _picture(text, r) == [(107892, 108492), (108492, 108642), (108642, 110740)]
    assert _otio_read(text, r)["V:dissolves"] == [15]


def test_written_list_reads_back_through_moodsic(tmp_path: Path) -> None:
    path, scored = _scored("test_25", Fraction(25), "alternate", tmp_path)
    out = write_timeline(scored, tmp_path / "back.edl")
    again, caught = _read(out, rate=25)
    assert caught == []
    assert _main_clips(again, 25) == _main_clips(_read(path, rate=25)[0], 25)
    names = {t.name for t in again.tracks}
    assert {"V", "A1", "A2", "A3", "A4"} <= names  # the edit's audio and the music


# --------------------------------------------------------------------------- end to end
_MAX_EVENTS = 6  # long reels are cut to their first events: stand-ins and scoring stay quick


def _head(text: str, events: int = _MAX_EVENTS) -> str:
    """The EDL up to its `events`-th event number (a transition's two lines are one)."""
    seen: list[str] = []
    out = []
    for line in text.splitlines():
        m = _EVENT.match(line.strip())
        if m and m.group(1) not in seen:
            if len(seen) == events:
                break
            seen.append(m.group(1))
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from editor_corpus import corpus_library

    return corpus_library(tmp_path_factory.mktemp("library"))


# test_24psf and dissolve_test_fail differ from test_25 and dissolve_test only in what the
# reading tests above check
SCORED = [s for s in PICTURE if s not in ("test_24psf", "dissolve_test_fail")]


@pytest.mark.slow
@pytest.mark.parametrize("stem", SCORED)
def test_real_edl_scored_and_written_back(
    stem: str, tmp_path: Path, library: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import editor_corpus
    from editor_corpus import grammar_config as score_config
    from editor_corpus import music_clips, picture_items, score_with_grammar, stand_in_media

    # score.media_timecode_s reads a stand-in's timecode tag through OTIO, which has no
    # timecode at the harness's 10 fps: stand-ins at 25 fps keep EDL-style media timed
    monkeypatch.setattr(editor_corpus, "_STAND_IN_FPS", 25)
    rate = RATES.get(stem, 24)
    path = tmp_path / f"{stem}.edl"
    path.write_text(_head((DATA / f"{stem}.edl").read_text(errors="replace")))
    edit, _ = _read(path, rate=rate)
    media = stand_in_media(edit, tmp_path / "media")
    edit, _ = _read(path, rate=rate, media_dir=media)
    for clip in edit.find_clips():
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.GeneratorReference):
            assert ref.target_url.startswith(media.resolve().as_uri()), clip.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scored, report = score_with_grammar(edit, library)
    # stills are not decoded yet; a clip shorter than the sampling step may get no sample
    step = round(rate / score_config().sample.sample_fps)
    for c in report.missing:
        assert Path(c.name).suffix.lower() == ".jpg" or (
            c.problem == "no frames in the used range" and c.rec_end - c.rec_start < step
        ), report.notes
    assert music_clips(scored)

    out = write_timeline(scored, tmp_path / "scored.edl")
    text = out.read_text()
    assert _picture(text, rate) == _picture(path.read_text(), rate)
    has_audio = any(e["chan"][0] in "AB" for e in _events(path.read_text()))
    lane = _filled(text, rate, "A3" if has_audio else "AA")
    assert [e["rec"][0] for e in lane] == _music_starts(scored, rate)
    back, _ = _read(out, rate=rate)
    assert _main_clips(back, rate) == _main_clips(edit, rate)

    otio_out = write_timeline(scored, tmp_path / "scored.otio")
    assert picture_items(read_edit(otio_out)) == picture_items(edit)


def test_later_event_records_over_the_middle_of_an_earlier_one(tmp_path: Path) -> None:
    body = (
        "001  A V C 01:00:00:00 01:00:04:04 01:00:00:00 01:00:04:04\n"
        "002  B V C 02:00:00:00 02:00:00:20 01:00:01:16 01:00:02:12\n"
    )
    tl, caught = _read(_edl(tmp_path, body), rate=24)
    assert any("event(s) 001 are recorded over" in w for w in caught)
    clips = tl.tracks[0].find_clips()
    assert _main_clips(tl, 24) == [(86400, 86440), (86440, 86460), (86460, 86500)]
    assert [round(c.source_range.start_time.value) for c in clips] == [86400, 172800, 86460]


def test_single_layout_dissolve_stays_inside_the_music_file(tmp_path: Path) -> None:
    """A crossfade whose outgoing music ends with its file: the dissolve keeps only what the
    file holds (the incoming head), instead of reaching past the end of the media."""
    from otio_adapter.edl_writer import edl_text

    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    tl = otio.schema.Timeline(name="t")
    video = otio.schema.Track(name="V", kind=otio.schema.TrackKind.Video)
    video.append(otio.schema.Clip(name="pic", source_range=tr(rt(0, 25), rt(200, 25))))
    music = otio.schema.Track(name="Music", kind=otio.schema.TrackKind.Audio)
    for name, start in (("a", 50), ("b", 30)):
        ref = otio.schema.ExternalReference(
            target_url=f"file:///lib/{name}.wav", available_range=tr(rt(0, 25), rt(150, 25))
        )
        clip = otio.schema.Clip(name=name, media_reference=ref,
                                source_range=tr(rt(start, 25), rt(100, 25)),
                                metadata={"moodsic": {"role": "music"}})  # fmt: skip
        music.append(clip)
    music.insert(1, otio.schema.Transition(in_offset=rt(12, 25), out_offset=rt(12, 25)))
    tl.tracks.extend([video, music])
    lane = _filled(edl_text(tl), 25, "AA")
    # a plays 50..150 of 150 frames: no tail left; b's head of 12 frames is there
    assert [(e["rec"], e["dur"]) for e in lane] == [((0, 88), 0), ((88, 200), 12)]
    assert lane[1]["tcs"][0] == "00:00:00:18"  # b from frame 30 - 12


def test_m2_lines_without_or_with_drop_frame_timecode(tmp_path: Path) -> None:
    body = (
        "FCM: DROP FRAME\n"
        "001  AX V C 01:00:00;00 01:00:02;00 01:00:00;00 01:00:01;00\n"
        "M2   AX       059.9\n"
        "002  AX V C 01:00:10;00 01:00:12;00 01:00:01;00 01:00:02;00\n"
        "M2   AX       059.9                01:00:10;00\n"
    )
    tl, caught = _read(_edl(tmp_path, body))
    assert caught == []
    clips = tl.tracks[0].find_clips()
    speeds = [e.time_scalar for c in clips for e in c.effects]
    assert speeds == pytest.approx([59.9 / (30000 / 1001)] * 2)
    assert [c.duration().value for c in clips] == [30, 30]


def test_key_events_are_read_as_cuts(tmp_path: Path) -> None:
    body = (
        "001  BG V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n"
        "002  BG V C 01:00:02:00 01:00:02:00 01:00:02:00 01:00:02:00\n"
        "002  TITLE V K 000 00:00:00:00 00:00:01:00 01:00:02:00 01:00:03:00\n"
    )
    tl, caught = _read(_edl(tmp_path, body), rate=24)
    assert any("event(s) 002 are keys" in w for w in caught)
    assert _main_clips(tl, 24) == [(86400, 86448), (86448, 86472)]
