"""Walking an FCPXML storyline into flat pieces: what is on screen, from when to when.

Every FCPXML story element sits at an `offset` in its parent's local time and shows its own
local time from `start` (default 0) for `duration`. Containers (compound `ref-clip`,
multicam `mc-clip`, `sync-clip`, `clip`, `audition`, a nested `spine`) are flattened: their
primary storyline is cut to the window they show and placed where they sit, recursively, so a
timeline holds only the clips actually shown (no nested stacks).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from fractions import Fraction

from moodsic_engine.errors import InputError

from .fcpxml_time import parse_time

ZERO = Fraction(0)
LEAVES = {"asset-clip", "video", "audio", "title", "generator", "gap"}
CONTAINERS = {"ref-clip", "mc-clip", "sync-clip", "clip", "audition", "spine"}
STORY = LEAVES | CONTAINERS
STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".psd", ".bmp", ".heic", ".gif")
MAX_NESTING = 64  # compounds inside compounds: deeper than this is a loop or an attack


@dataclass(frozen=True)
class Piece:
    """One stretch of one storyline: a clip, a generator/title, or a gap."""

    start: Fraction  # in the containing element's local time, seconds
    end: Fraction
    kind: str  # "clip" (media), "generator" (title, generator: no media), "gap"
    name: str = ""
    asset: ET.Element | None = None
    src: Fraction = ZERO  # the asset's time (its own clock, start timecode included) at `start`
    speed: Fraction = Fraction(1)
    enabled: bool = True
    effect: str = ""  # a title's or generator's effect name
    effect_uid: str = ""  # its <effect uid>, for a writer that puts it back
    element: str = ""  # the FCPXML element it came from ("title", "video", ...)
    audio: bool = False  # an audio-only piece (no picture)
    still: bool = False
    note: str = ""  # the clip's <note> (Moodsic's metadata on a music clip)


class Resources:
    """The <resources> of one file, by id, and the file's name for messages."""

    def __init__(self, root: ET.Element, name: str) -> None:
        self.name = name
        self.formats: dict[str, ET.Element] = {}
        self.assets: dict[str, ET.Element] = {}
        self.effects: dict[str, ET.Element] = {}
        self.media: dict[str, ET.Element] = {}
        tables = {
            "format": self.formats,
            "asset": self.assets,
            "effect": self.effects,
            "media": self.media,
        }
        for res in root.iter("resources"):
            for el in res:
                table = tables.get(el.tag)
                if table is not None and el.get("id"):
                    table.setdefault(el.get("id", ""), el)

    def fail(self, what: str) -> InputError:
        return InputError(f"{self.name}: {what}")

    def time(self, el: ET.Element, attr: str, default: Fraction | None = ZERO) -> Fraction:
        try:
            return parse_time(el.get(attr), default)
        except ValueError as exc:
            raise self.fail(f"<{el.tag} {attr}> is unreadable: {exc}") from None


def media_url(asset: ET.Element) -> str:
    """Where an asset's file is: <media-rep kind="original-media" src> (FCPXML 1.10+), else
    the asset's own src (1.9 and older); "" when it names none."""
    reps = asset.findall("media-rep")
    for rep in reps:
        if rep.get("kind", "original-media") == "original-media" and rep.get("src"):
            return rep.get("src", "")
    for rep in reps:
        if rep.get("src"):
            return rep.get("src", "")
    return asset.get("src", "")


def is_still(asset: ET.Element, res: Resources) -> bool:
    """A still image: an image file, or video with a zero duration and no frame rate."""
    path = media_url(asset).lower().split("?")[0]
    if path.endswith(STILL_SUFFIXES):
        return True
    fmt = res.formats.get(asset.get("format", ""))
    no_rate = fmt is not None and not fmt.get("frameDuration")
    return asset.get("hasVideo") == "1" and no_rate and asset.get("duration", "0s") == "0s"


def has_video(el: ET.Element, res: Resources) -> bool:
    """Whether a story element carries a picture (audio clips and audio assets do not)."""
    if el.tag == "audio" or el.get("srcEnable") == "audio":  # ref-clip: its sound only
        return False
    if el.tag in ("asset-clip", "video"):
        asset = res.assets.get(el.get("ref", ""))
        if asset is None:
            return True  # an effect (generator) or a missing asset: not audio
        return asset.get("hasVideo") == "1" or (
            asset.get("hasAudio") != "1" and not asset.get("audioSources")
        )
    if el.tag in ("clip", "sync-clip", "audition"):
        inner = [c for c in el if c.tag in STORY and c.get("lane") is None]
        return not inner or any(has_video(c, res) for c in inner)
    return True


def _time_map(el: ET.Element, res: Resources) -> list[tuple[Fraction, Fraction]]:
    tm = el.find("timeMap")
    if tm is None:
        return []
    points = [(res.time(p, "time"), res.time(p, "value")) for p in tm.findall("timept")]
    return sorted(points)


def _mapped(points: list[tuple[Fraction, Fraction]], t: Fraction) -> Fraction:
    """The source time a retimed clip shows at local time `t` (linear between points)."""
    if t <= points[0][0]:
        return points[0][1] + (t - points[0][0])
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 != t0 else v1
    return points[-1][1] + (t - points[-1][0])


def window(
    pieces: list[Piece], lo: Fraction, hi: Fraction, at: Fraction, enabled: bool = True
) -> list[Piece]:
    """The part of `pieces` (one storyline, local time) inside [lo, hi), moved to start at
    `at`; holes become gaps (a compound shorter than its window shows black)."""
    out: list[Piece] = []
    cursor = lo
    for p in sorted(pieces, key=lambda p: p.start):
        s, e = max(p.start, cursor), min(p.end, hi)
        if e <= s:
            continue
        if s > cursor:
            out.append(Piece(at + cursor - lo, at + s - lo, "gap"))
        src = p.src + (s - p.start) * p.speed
        out.append(
            replace(p, start=at + s - lo, end=at + e - lo, src=src, enabled=p.enabled and enabled)
        )
        cursor = e
    if cursor < hi:
        out.append(Piece(at + cursor - lo, at + hi - lo, "gap"))
    return out


def story_children(el: ET.Element) -> list[ET.Element]:
    return [c for c in el if c.tag in STORY]


def pick(el: ET.Element) -> ET.Element | None:
    """An audition's active pick: its first story element."""
    kids = story_children(el)
    return kids[0] if kids else None


def local_start(el: ET.Element, res: Resources) -> Fraction:
    """The local time an element shows first (an audition: its pick's)."""
    if el.tag == "audition":
        chosen = pick(el)
        return local_start(chosen, res) if chosen is not None else ZERO
    return res.time(el, "start")


def pieces(
    el: ET.Element, res: Resources, depth: int = 0, offset: Fraction | None = None
) -> list[Piece]:
    """What `el` shows, in its parent's local time (from its offset, for its duration)."""
    if depth > MAX_NESTING:
        raise res.fail("compound clips nested too deeply (a clip that contains itself?)")
    at = res.time(el, "offset") if offset is None else offset
    enabled = el.get("enabled", "1") != "0"
    name = el.get("name", "")
    tag = el.tag
    if tag == "audition":
        chosen = pick(el)
        if chosen is None:
            return []
        found = pieces(chosen, res, depth + 1, at)
        return found if enabled else [replace(p, enabled=False) for p in found]
    if tag == "spine":  # a storyline: its elements in their own time from 0
        inner = [p for c in story_children(el) for p in pieces(c, res, depth + 1)]
        return [
            replace(p, start=p.start + at, end=p.end + at, enabled=p.enabled and enabled)
            for p in inner
        ]
    duration = res.time(el, "duration", None) if el.get("duration") else None
    if duration is None:
        raise res.fail(f"<{tag} name={name!r}> has no duration")
    start = res.time(el, "start")
    if tag == "gap":
        return [Piece(at, at + duration, "gap", name)]
    if tag in ("title", "generator"):
        effect = res.effects.get(el.get("ref", ""))
        label = effect.get("name", tag) if effect is not None else tag
        uid = effect.get("uid", "") if effect is not None else ""
        return [
            Piece(
                at,
                at + duration,
                "generator",
                name,
                effect=label,
                effect_uid=uid,
                element=tag,
                enabled=enabled,
            )
        ]
    if tag in ("asset-clip", "video", "audio"):
        return [_leaf(el, res, at, start, duration, enabled)]
    inner = _inner(el, res, depth)
    if el.get("srcEnable") == "audio":  # a compound used for its sound only
        inner = [replace(p, audio=True) for p in inner]
    return window(inner, start, start + duration, at, enabled)


def _leaf(
    el: ET.Element, res: Resources, at: Fraction, start: Fraction, duration: Fraction, on: bool
) -> Piece:
    ref = el.get("ref", "")
    name = el.get("name", "")
    asset = res.assets.get(ref)
    if asset is None:
        effect = res.effects.get(ref)
        if effect is None:
            raise res.fail(f"clip {name!r} refers to {ref!r}, which is not among the resources")
        label = effect.get("name", "generator")
        return Piece(
            at,
            at + duration,
            "generator",
            name or label,
            effect=label,
            effect_uid=effect.get("uid", ""),
            element=el.tag,
            enabled=on,
        )
    speed, src = Fraction(1), start
    points = _time_map(el, res)
    if len(points) >= 2 and points[-1][0] != points[0][0]:
        (t0, v0), (t1, v1) = points[0], points[-1]
        speed = abs((v1 - v0) / (t1 - t0))
        src = _mapped(points, start)
    still = is_still(asset, res)
    audio = not has_video(el, res)
    return Piece(
        at,
        at + duration,
        "clip",
        name or asset.get("name", ""),
        asset=asset,
        src=src,
        speed=speed,
        enabled=on,
        audio=audio,
        still=still,
        note=el.findtext("note") or "",
    )


def _inner(el: ET.Element, res: Resources, depth: int) -> list[Piece]:
    """A container's primary storyline, in its own local time."""
    tag = el.tag
    if tag == "ref-clip":
        media = res.media.get(el.get("ref", ""))
        seq = media.find("sequence") if media is not None else None
        if seq is None:
            raise res.fail(f"compound clip {el.get('name', '')!r} refers to no <media><sequence>")
        spine = seq.find("spine")
        kids = story_children(spine) if spine is not None else []
        return [p for c in kids for p in pieces(c, res, depth + 1)]
    if tag == "mc-clip":
        media = res.media.get(el.get("ref", ""))
        multicam = media.find("multicam") if media is not None else None
        if multicam is None:
            raise res.fail(f"multicam clip {el.get('name', '')!r} refers to no <media><multicam>")
        angle = _active_angle(el, multicam)
        if angle is None:
            return []
        return [p for c in story_children(angle) for p in pieces(c, res, depth + 1)]
    # sync-clip, clip: the elements without a lane; the picture when there is one
    kids = [c for c in story_children(el) if c.get("lane") is None]
    video = [c for c in kids if has_video(c, res)]
    return [p for c in (video or kids) for p in pieces(c, res, depth + 1)]


def _active_angle(el: ET.Element, multicam: ET.Element) -> ET.Element | None:
    angles = {a.get("angleID"): a for a in multicam.findall("mc-angle")}
    for source in el.findall("mc-source"):
        if source.get("srcEnable", "all") in ("video", "all") and source.get("angleID") in angles:
            return angles[source.get("angleID")]
    # no angle named for the picture: FCP shows the first angle
    first = multicam.find("mc-angle")
    return first


def _own_pictures(base: ET.Element, res: Resources) -> set[str]:
    """The assets whose picture `base` shows itself: their sound under it is its own."""
    primary = [base, *(c for c in story_children(base) if c.get("lane") is None)]
    return {
        c.get("ref", "")
        for c in primary
        if c.tag in ("asset-clip", "video") and c.get("ref") in res.assets
    }


def connected(
    parent: ET.Element,
    parent_at: Fraction,
    res: Resources,
    depth: int = 0,
    lane_base: int = 0,
    own: frozenset[str] = frozenset(),
) -> list[tuple[int, list[Piece]]]:
    """Clips and storylines connected to `parent` (lane attribute), with the lane each sits
    in, placed in the parent's parent's time: record = parent's offset + (offset - start).

    Clips connected to a connected clip, to a secondary storyline's clips, or inside a
    sync-clip or clip are included, their lanes counted from their parent's. A clip's own
    sound split off under it (the same asset as its picture) is left out: the clip carries it.
    """
    if depth > MAX_NESTING:
        raise res.fail("connected clips nested too deeply")
    base = parent
    if parent.tag == "audition":
        chosen = pick(parent)
        if chosen is None:
            return []
        base = chosen
    own = own | _own_pictures(base, res)
    origin = local_start(base, res)
    found: list[tuple[int, list[Piece]]] = []
    for child in story_children(base):
        lane = child.get("lane")
        at = parent_at + res.time(child, "offset") - origin
        if lane is None:
            if base.tag in ("sync-clip", "clip"):  # their components hold connections too
                found.extend(connected(child, at, res, depth + 1, lane_base, own))
            continue
        try:
            number = lane_base + int(lane)
        except ValueError:
            raise res.fail(f"lane {lane!r} is not a whole number") from None
        shown = [
            p
            for p in pieces(child, res, depth + 1, at)
            if not (p.audio and p.asset is not None and p.asset.get("id") in own)
        ]
        found.append((number, shown))
        if child.tag == "spine":  # a secondary storyline's own clips may carry connections
            for element in story_children(child):
                element_at = at + res.time(element, "offset")
                found.extend(connected(element, element_at, res, depth + 1, number, own))
        else:
            found.extend(connected(child, at, res, depth + 1, number, own))
    if base.tag in ("sync-clip", "clip") and base.get("duration"):
        # a container's components show only inside its window
        end = parent_at + res.time(base, "duration")
        found = [(n, _clipped(p, parent_at, end)) for n, p in found]
    return found


def _clipped(found: list[Piece], lo: Fraction, hi: Fraction) -> list[Piece]:
    out = []
    for p in found:
        s, e = max(p.start, lo), min(p.end, hi)
        if e > s:
            out.append(replace(p, start=s, end=e, src=p.src + (s - p.start) * p.speed))
    return out
