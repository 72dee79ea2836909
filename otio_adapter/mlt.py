"""MLT XML (``.mlt``) out: a scored edit that melt, Shotcut and Kdenlive play with the music.

OTIO's mlt_xml adapter (otio-mlt-adapter 0.3) stacks the tracks in one multitrack with no
mixing transitions, so MLT plays only the topmost track: the music tracks, inserted below
the pictures, are never heard (and a second video track hides the first completely). This
small writer builds the same kind of document the way Shotcut and Kdenlive write theirs:

- a profile at the edit's exact rate (24000/1001 stays 24000/1001);
- one producer per media file, one playlist per track (blanks for gaps, disabled clips and
  missing media; entries in the media's own frames, its start timecode taken off);
- a dissolve between two clips as a two-track tractor with ``luma`` and ``mix`` (Shotcut's
  form), a fade against a gap as a ``volume`` (audio) or ``brightness`` (video) ramp;
- in the main tractor, a black background, the video tracks bottom (V1) to top composited
  with ``composite`` (core MLT: ``qtblend`` needs an X11 display, so headless melt drops
  it), and every track that sounds summed by a ``mix`` transition
  (``always_active``, ``sum``): the music plays over the picture's own sound. Audio tracks
  are ``hide="video"``; video tracks keep their sound only when the edit has no audio
  tracks of its own, and then only the main video track.

Markers and effects other than fades are not written.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from moodsic_engine.errors import InputError

from .timeline import is_moodsic_music, is_video, to_frames


def _prop(parent: ET.Element, name: str, value: object) -> None:
    ET.SubElement(parent, "property", name=name).text = str(value)


class _Writer:
    def __init__(self, timeline: otio.schema.Timeline) -> None:
        from .edit_track import edit_rate, main_video_track

        self.timeline = timeline
        self.main = main_video_track(timeline)
        self.fps: Fraction = edit_rate(timeline, self.main)
        self.rate = self.fps.numerator / self.fps.denominator
        self.root = ET.Element("mlt", LC_NUMERIC="C", version="7.0.0", producer="main")
        if timeline.name:
            self.root.set("title", timeline.name)
        self.producers: dict[str, str] = {}  # resource -> producer id
        self.body: list[ET.Element] = []  # producers, playlists, tractors in dependency order
        self.count = 0

    # ------------------------------------------------------------------ media
    def _id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def _producer(self, clip: otio.schema.Clip) -> tuple[str, int] | None:
        """The producer id and the media frame the clip's source range starts at (None: a
        clip with nothing to play)."""
        from .media import media_path, media_timecode_s

        if not clip.enabled:
            return None
        ref = clip.media_reference
        src = clip.trimmed_range()
        if isinstance(ref, otio.schema.GeneratorReference):
            # a colour clip (Kdenlive's SolidColor) is a colour; titles, leaders and
            # Premiere's other "Slug" generators cannot be drawn: left out (transparent),
            # rather than black over the tracks below
            colour = str(ref.parameters.get("color", "")) if ref.parameters else ""
            if not colour.startswith(("#", "0x")):
                return None
            key = f"color:{colour}"
            if key not in self.producers:
                el = ET.Element("producer", id=self._id("color"))
                _prop(el, "resource", colour)
                _prop(el, "mlt_service", "color")
                self._add_producer(key, el)
            return self.producers[key], 0
        if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
            return None
        path = media_path(ref, None)
        if path is None:
            return None
        offset = 0.0
        available = ref.available_range
        if available is not None:
            offset = available.start_time.to_seconds()
            if offset > 0 and src.start_time < available.start_time:
                offset = 0.0  # a source range counted from the file's start (see score.py)
        elif path.is_file():
            tc = media_timecode_s(path)
            if tc > 0 and src.start_time.to_seconds() >= tc - 1e-6:
                offset = tc  # EDL-style source times on the media's own clock
        start = round((Fraction(src.start_time.to_seconds()) - Fraction(offset)) * self.fps)
        key = str(path)
        if key not in self.producers:
            el = ET.Element("producer", id=self._id("producer"))
            _prop(el, "resource", key)  # the loader picks avformat, qimage, ... by content
            self._add_producer(key, el)
        return self.producers[key], start

    def _add_producer(self, key: str, el: ET.Element) -> None:
        self.producers[key] = el.get("id")
        self.body.append(el)

    # ------------------------------------------------------------------ tracks
    def _fade(
        self, entry: ET.Element, frames: int, length: int, audio: bool, fade_in: bool
    ) -> None:
        """A fade from (or to) silence / black over `frames` of an entry `length` long: a
        filter spanning just those frames (keyframes count from its in point; on an entry
        MLT counts in the producer's frames, as Kdenlive's fade filters do), the gain
        linear in amplitude like Kdenlive's fadein/fadeout."""
        frames = max(1, min(frames, length))
        first = int(entry.get("in")) if fade_in else int(entry.get("out")) - frames + 1
        filt = ET.SubElement(
            entry, "filter", attrib={"in": str(first), "out": str(first + frames - 1)}
        )
        steps = 8
        keys: dict[int, str] = {}
        for k in range(steps + 1):
            at = round(k * (frames - 1) / steps)
            share = k / steps if fade_in else 1 - k / steps
            if audio:
                value = f"{20 * math.log10(max(share, 1e-3)):.2f}"  # dB
            else:
                value = f"{share:.3f}"
            keys[at] = value  # a short fade keeps the last value per frame
        _prop(filt, "mlt_service", "volume" if audio else "brightness")
        _prop(filt, "level", ";".join(f"{at}={value}" for at, value in keys.items()))
        if not audio:
            _prop(filt, "alpha", 1)

    def _dissolve(self, a: tuple[str, int], b: tuple[str, int], length: int, audio: bool) -> str:
        """A two-track tractor playing a into b over `length` frames (Shotcut's dissolve)."""
        tractor = ET.Element("tractor", id=self._id("transition"), attrib={"in": "0"})
        tractor.set("out", str(length - 1))
        for producer, start in (a, b):
            ET.SubElement(
                tractor,
                "track",
                producer=producer,
                attrib={"in": str(start), "out": str(start + length - 1)},
            )
        if not audio:
            luma = ET.SubElement(tractor, "transition", out=str(length - 1))
            for name, value in (("a_track", 0), ("b_track", 1), ("mlt_service", "luma")):
                _prop(luma, name, value)
        mix = ET.SubElement(tractor, "transition", out=str(length - 1))
        for name, value in (
            ("a_track", 0), ("b_track", 1), ("start", 0), ("end", 1), ("mlt_service", "mix"),
        ):  # fmt: skip
            _prop(mix, name, value)
        self.body.append(tractor)
        return tractor.get("id")

    def _frames(self, t: otio.opentime.RationalTime) -> int:
        return to_frames(t, self.rate)

    def playlist(self, track: otio.schema.Track, audio: bool) -> str:
        items = list(track)
        entries: list[ET.Element] = []

        def blank(length: int) -> None:
            if length > 0:
                entries.append(ET.Element("blank", length=str(length)))

        for i, item in enumerate(items):
            if isinstance(item, otio.schema.Transition):
                continue
            rng = item.range_in_parent()
            start, end = self._frames(rng.start_time), self._frames(rng.end_time_exclusive())
            played = self._producer(item) if isinstance(item, otio.schema.Clip) else None
            if played is None:
                blank(end - start)
                continue
            before = items[i - 1] if i > 0 else None
            after = items[i + 1] if i + 1 < len(items) else None
            prev_clip = self._between(items, i - 1)
            next_clip = self._between(items, i + 1)
            head = self._frames(before.out_offset) if prev_clip else 0
            tail = self._frames(after.in_offset) if next_clip else 0
            producer, src = played
            length = end - start - head - tail
            if length > 0:
                entry = ET.Element(
                    "entry",
                    producer=producer,
                    attrib={"in": str(src + head), "out": str(src + head + length - 1)},
                )
                if isinstance(before, otio.schema.Transition) and not prev_clip:
                    self._fade(entry, self._frames(before.out_offset), length, audio, True)
                if isinstance(after, otio.schema.Transition) and not next_clip:
                    self._fade(entry, self._frames(after.in_offset), length, audio, False)
                entries.append(entry)
            if next_clip:
                nxt = items[i + 2]
                other = self._producer(nxt)
                span = self._frames(after.in_offset) + self._frames(after.out_offset)
                first = (producer, src + end - start - self._frames(after.in_offset))
                second = (other[0], other[1] - self._frames(after.in_offset))
                tractor = self._dissolve(first, second, span, audio)
                entries.append(
                    ET.Element("entry", producer=tractor, attrib={"in": "0", "out": str(span - 1)})
                )
        playlist = ET.Element("playlist", id=self._id("playlist"))
        if track.name:
            _prop(playlist, "shotcut:name", track.name)
            _prop(playlist, "kdenlive:track_name", track.name)
        if audio:
            _prop(playlist, "shotcut:audio", 1)
        playlist.extend(entries)
        self.body.append(playlist)
        return playlist.get("id")

    def _between(self, items: list[Any], k: int) -> bool:
        """Whether items[k] is a transition between two playable clips (a dissolve)."""
        if not 0 < k < len(items) - 1 or not isinstance(items[k], otio.schema.Transition):
            return False
        a, b = items[k - 1], items[k + 1]
        return all(
            isinstance(c, otio.schema.Clip) and self._producer(c) is not None for c in (a, b)
        )

    # ------------------------------------------------------------------ document
    def document(self) -> ET.Element:
        tracks = [t for t in self.timeline.tracks if isinstance(t, otio.schema.Track)]
        if len(tracks) != len(self.timeline.tracks):
            raise InputError(
                f"timeline {self.timeline.name!r}: a nested stack among the tracks; "
                "flatten the edit before writing MLT"
            )
        total = max((self._frames(t.duration()) for t in tracks), default=0)
        if total <= 0:
            raise InputError(f"timeline {self.timeline.name!r} is empty; nothing to write")
        own_audio = any(
            not is_video(t) and not is_moodsic_music(t) and t.find_clips() for t in tracks
        )
        videos = [t for t in tracks if is_video(t)]
        sounds = [t for t in tracks if not is_video(t)]
        layout: list[tuple[str, str | None, bool, bool]] = []  # id, hide, video?, sounds?
        for track in videos:
            with_sound = track is self.main and not own_audio and track.enabled
            hide = None if with_sound else "audio"
            if not track.enabled:
                hide = "both"
            layout.append((self.playlist(track, False), hide, True, with_sound))
        for track in sounds:
            hide = "video" if track.enabled else "both"
            layout.append((self.playlist(track, True), hide, False, track.enabled))

        black = ET.Element("producer", id="black", attrib={"in": "0", "out": str(total - 1)})
        for name, value in (
            ("length", total), ("eof", "pause"), ("resource", "black"),
            ("mlt_service", "color"), ("set.test_audio", 0),
        ):  # fmt: skip
            _prop(black, name, value)
        background = ET.Element("playlist", id="background")
        ET.SubElement(background, "entry", producer="black", attrib={"in": "0"}).set(
            "out", str(total - 1)
        )
        tractor = ET.Element("tractor", id="main", attrib={"in": "0", "out": str(total - 1)})
        _prop(tractor, "shotcut", 1)
        ET.SubElement(tractor, "track", producer="background")
        for playlist, hide, _, _ in layout:
            track_el = ET.SubElement(tractor, "track", producer=playlist)
            if hide:
                track_el.set("hide", hide)
        for index, (_, _, video, sound) in enumerate(layout, start=1):
            kinds = (["composite"] if video else []) + (["mix"] if sound else [])
            for service in kinds:
                trans = ET.SubElement(tractor, "transition")
                for name, value in (
                    ("a_track", 0), ("b_track", index), ("mlt_service", service),
                    ("always_active", 1),
                ):  # fmt: skip
                    _prop(trans, name, value)
                if service == "mix":
                    _prop(trans, "sum", 1)
                    _prop(trans, "accepts_blanks", 1)
                else:
                    _prop(trans, "fill", 1)  # a picture fills the frame, as on the timeline

        profile = ET.SubElement(
            self.root,
            "profile",
            description="moodsic",
            width="1920",
            height="1080",
            progressive="1",
            sample_aspect_num="1",
            sample_aspect_den="1",
            display_aspect_num="16",
            display_aspect_den="9",
            colorspace="709",
        )
        profile.set("frame_rate_num", str(self.fps.numerator))
        profile.set("frame_rate_den", str(self.fps.denominator))
        self.root.extend([black, background, *self.body, tractor])
        return self.root


def mlt_string(timeline: otio.schema.Timeline) -> str:
    """The timeline as MLT XML text (see the module docstring)."""
    root = _Writer(timeline).document()
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_mlt(timeline: otio.schema.Timeline, tmp: Path) -> None:
    """An .mlt file melt and Shotcut open (Kdenlive takes it as a clip in its bin)."""
    tmp.write_text(mlt_string(timeline), encoding="utf-8")
