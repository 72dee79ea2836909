"""Continuous music for a live session: decks, beat-aligned crossfades, loudness, a limiter.

The player renders the session's audio block by block. One track plays at a time; a new mood
(or the end of a track) brings in the next one with an equal-power crossfade of `crossfade_s`
centred on a downbeat of the outgoing track, with the incoming track's own downbeat landing on
that boundary.

Live decisions arrive one at a time (there is no cue sheet up front), so the player does not
call `mix.plan.music_plan`; it places tracks with the same building blocks the editor paths
(mixdown, OTIO/NLE exports, Blender) use:

- downbeats from the track's `mix.BeatGrid` (its beats, `BeatGrid.divided(4)`, when a bar is
  longer than `MAX_BAR_WAIT_S`);
- fades and crossfades with `mix.fade_curve`, the equal-power quarter-sine of `render_plan`
  (a live crossfade has the same gain curve, sample for sample, as an editor crossfade);
- a track shorter than it must play is looped as the plan loops it (`mix.looped_pieces`,
  rendered by `mix.render_pieces`): its lead-in once, then its whole-bar body (`loop_body`)
  with the plan's loop joins, so downbeats stay evenly spaced across each wrap;
- every track at the loudness target with `mix.track_gain` (integrated LUFS, BS.1770) when it
  is loaded, and a master true-peak limiter, `mix.loudness.BlockLimiter`: `limit`'s look-ahead
  limiter block by block, the mix rendered `delay` samples (about 76 ms) ahead of the output
  so the output has no added latency. (The editor paths' `normalize` limits each whole track
  by iteration, several seconds for a long track: too slow to follow a mood within 8 s.)

Tracks are read and normalised on a loader thread ahead of time ("next up"), so rendering
never waits for a file. Only the playing, incoming and next tracks are held in memory.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..config import MixConfig
from ..library import Track
from ..mix.grid import BeatGrid
from ..mix.loudness import BlockLimiter
from ..mix.plan import fade_curve
from ..segment_online import MoodChange
from .playlist import SessionPlaylist

# Longest wait for a downbeat; a slower bar is waited for on its beats instead.
MAX_BAR_WAIT_S = 2.5


@dataclass(frozen=True)
class LoadedTrack:
    """A track ready to play: stereo float32 [n, 2] at the session rate, at the target loudness
    (looped on its bar grid when the file is shorter than a deck must play)."""

    track: Track
    audio: np.ndarray
    grid: BeatGrid | None  # its bar grid, when one is known
    gain: float = 1.0  # applied to reach the loudness target

    @property
    def bar_s(self) -> float | None:
        return None if self.grid is None else self.grid.bar_s

    @property
    def cue_grid(self) -> BeatGrid | None:
        """Where a crossfade may be centred: downbeats, or beats when bars are long."""
        if self.grid is None or self.grid.bar_s <= MAX_BAR_WAIT_S:
            return self.grid
        return self.grid.divided(4)

    def downbeat_at_or_after(self, t: float) -> float:
        """The first cue point (`cue_grid`) at or after `t` seconds; `t` without a grid."""
        grid = self.cue_grid
        return t if grid is None else grid.downbeat_at_or_after(t)

    def downbeat_at_or_before(self, t: float) -> float:
        grid = self.cue_grid
        return t if grid is None else grid.downbeat_at_or_before(t)


def load_track(
    track: Track, sr: int, cfg: MixConfig, min_s: float, gain: float | None = None
) -> LoadedTrack:
    """Read, bring to the target loudness and grid one track; InputError if unreadable.

    A file shorter than `min_s` (a crossfade in, a bar or two, a crossfade out) is looped as
    the editor paths loop it (`mix.looped_pieces`). `gain` skips the loudness measurement (a
    track measured before in this session).
    """
    from ..mix import beat_grid, looped_pieces, read_audio, render_pieces, track_gain

    y = read_audio(track.path, sr)
    g = track_gain(y, sr, cfg.target_lufs) if gain is None else gain
    y = np.ascontiguousarray(y * np.float32(g), dtype=np.float32)
    grid = beat_grid(track.path, y, sr, detect=cfg.beat_align)
    need = int(math.ceil(min_s * sr))
    if 0 < len(y) < need:
        src = y
        y = render_pieces(looped_pieces(len(src), sr, grid, need), lambda p: src, need)
    return LoadedTrack(track, y, grid, gain=g)


class TrackLoader:
    """Loads tracks on one background thread; keeps the last few (playing, incoming, next)."""

    def __init__(self, sr: int, cfg: MixConfig, min_s: float, keep: int = 5) -> None:
        self.sr, self.cfg, self.min_s, self.keep = sr, cfg, min_s, keep
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodsic-live-load")
        self._cache: OrderedDict[str, Future[LoadedTrack]] = OrderedDict()
        # loudness gains measured so far (a float per track: bounded by the library)
        self._gains: dict[str, float] = {}

    def _load(self, track: Track, key: str) -> LoadedTrack:
        loaded = load_track(track, self.sr, self.cfg, self.min_s, self._gains.get(key))
        self._gains[key] = loaded.gain
        return loaded

    def request(self, track: Track) -> Future[LoadedTrack]:
        """The track's load (started now, or the one already started or done)."""
        key = SessionPlaylist.key(track)
        fut = self._cache.pop(key, None)
        if fut is None:
            fut = self._pool.submit(self._load, track, key)
        self._cache[key] = fut
        while len(self._cache) > self.keep:
            self._cache.popitem(last=False)
        return fut

    def discard(self, track: Track) -> None:
        """Forget a load nobody needs any more (cancelled if it has not started)."""
        fut = self._cache.pop(SessionPlaylist.key(track), None)
        if fut is not None:
            fut.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Deck:
    loaded: LoadedTrack
    mood: str
    start_g: int  # global sample where track position pos0 plays
    pos0: int
    fade_in: tuple[int, int] | None = None  # (global start, length)
    fade_out: tuple[int, int] | None = None

    @property
    def end_g(self) -> int:
        """Global sample after the deck's last sample (or after its fade-out)."""
        end = self.start_g + len(self.loaded.audio) - self.pos0
        if self.fade_out is not None:
            end = min(end, self.fade_out[0] + self.fade_out[1])
        return end

    def g_to_s(self, g: int, sr: int) -> float:
        return (self.pos0 + g - self.start_g) / sr

    def s_to_g(self, s: float, sr: int) -> int:
        return self.start_g + int(round(s * sr)) - self.pos0

    def read(self, g: int, n: int) -> np.ndarray:
        y = self.loaded.audio
        a = self.pos0 + g - self.start_g
        out = np.zeros((n, 2), dtype=np.float32)
        lo, hi = max(a, 0), min(a + n, len(y))
        if hi > lo:
            out[lo - a : hi - a] = y[lo:hi]
        if self.fade_in is None and self.fade_out is None:
            return out
        # The editor paths' fade curve (mix.fade_curve), at each sample's place in the fade.
        gain = np.ones(n, dtype=np.float64)
        idx = g + np.arange(n)
        if self.fade_in is not None:
            gain *= fade_curve(idx - self.fade_in[0], self.fade_in[1], rising=True)
        if self.fade_out is not None:
            gain *= fade_curve(idx - self.fade_out[0], self.fade_out[1], rising=False)
        return out * gain.astype(np.float32)[:, None]


class MusicPlayer:
    """The session's music (see the module docstring).

    Parameters
    ----------
    playlist
        Chooses tracks per mood without repeats.
    cfg
        Sample rate, crossfade length, loudness target and ceiling, beat alignment.
    on_event
        Called with event dicts: {"event": "track_start", ...} and {"event": "problem", ...}.
    """

    def __init__(
        self,
        playlist: SessionPlaylist,
        cfg: MixConfig,
        *,
        on_event: Callable[[dict], None] | None = None,
        fade_in_s: float = 2.0,
    ) -> None:
        self.playlist = playlist
        self.cfg = cfg
        self.sr = int(cfg.sample_rate)
        self.xfade = max(2, int(round(cfg.crossfade_s * self.sr)))
        self.fade_in_n = max(2, int(round(fade_in_s * self.sr)))
        self.on_event = on_event or (lambda e: None)
        # a track must hold a crossfade in, a bar or two, and a crossfade out
        self.loader = TrackLoader(self.sr, cfg, min_s=4 * cfg.crossfade_s + 2 * MAX_BAR_WAIT_S)
        self.g = 0  # samples rendered (played) so far
        # The limiter looks ahead: decks are mixed `delay` samples ahead of the output, from
        # mix head `_m`; sample t of the mix is sample t of the output.
        self._limiter = BlockLimiter(self.sr, cfg.true_peak_db)
        self._m = 0
        self._decks: list[_Deck] = []
        self._current: _Deck | None = None
        self._want: MoodChange | None = None
        self._want_track: tuple[Track, Future[LoadedTrack]] | None = None
        self._next: tuple[str, Track, Future[LoadedTrack]] | None = None  # (mood, track, load)
        self._likely: tuple[int, Track] | None = None  # prefetched for the likeliest next mood
        self._master: tuple[int, int] | None = None  # session fade-out (global start, length)
        self.tracks_started = 0

    # ------------------------------------------------------------------ state for the page
    @property
    def now_playing(self) -> Track | None:
        return self._current.loaded.track if self._current else None

    @property
    def mood(self) -> str | None:
        return self._current.mood if self._current else None

    @property
    def next_up(self) -> Track | None:
        if self._want_track is not None:
            return self._want_track[0]
        return self._next[1] if self._next else None

    @property
    def finished(self) -> bool:
        """True once a requested fade-out has fully played."""
        return self._master is not None and self.g >= self._master[0] + self._master[1]

    # ------------------------------------------------------------------ control
    def set_mood(self, change: MoodChange) -> None:
        """The analysis decided a mood: play it from the next beat-aligned point."""
        self._want = change
        if self._current is not None and self._current.mood == change.mood:
            self._want_track = None  # back to the playing mood before the change happened
            return
        if self._likely is not None and self._likely[0] == change.index:
            track = self._likely[1]  # already loading or loaded
        else:
            track = self.playlist.choose(change.index, (change.valence, change.arousal))
        if self._want_track is not None and not self._in_use(self._want_track[0], want=False):
            self.loader.discard(self._want_track[0])
        if self._next is not None and self._next[0] != change.mood:
            # the old mood's next track is not needed now (unless it is already playing)
            if not self._in_use(self._next[1], nxt=False):
                self.loader.discard(self._next[1])
            self._next = None
        self._want_track = (track, self.loader.request(track))

    def prefetch(self, index: int, va: tuple[float, float]) -> None:
        """Start loading a track for mood `index`, the likeliest next one, before it is decided
        (so a change does not wait for a file to be read)."""
        if self._likely is not None and self._likely[0] == index:
            return
        if self._likely is not None and not self._in_use(self._likely[1]):
            self.loader.discard(self._likely[1])  # the queue holds one guess at a time
        track = self.playlist.choose(index, va)
        self.loader.request(track)
        self._likely = (index, track)

    def _in_use(self, track: Track, *, want: bool = True, nxt: bool = True) -> bool:
        key = SessionPlaylist.key(track)
        held = [d.loaded.track for d in self._decks]
        held += [x[0] for x in (self._want_track,) if x is not None and want]
        held += [x[1] for x in (self._next,) if x is not None and nxt]
        return any(SessionPlaylist.key(t) == key for t in held)

    def pending(self) -> list[Future[LoadedTrack]]:
        """Loads the player is waiting for (a caller that is not real-time may wait on them)."""
        out = [x[1] for x in (self._want_track,) if x is not None]
        out += [x[2] for x in (self._next,) if x is not None]
        return [f for f in out if not f.done()]

    def fade_out(self, seconds: float) -> None:
        """Fade the whole session out over `seconds`, starting now."""
        if self._master is None:
            self._master = (self.g, max(1, int(round(seconds * self.sr))))

    def close(self) -> None:
        self.loader.close()

    # ------------------------------------------------------------------ rendering
    def render(self, n: int) -> np.ndarray:
        """The next n samples [n, 2] float32."""
        if self._m == 0 and n > 0:
            self._limiter.process(self._mix(self._limiter.delay))  # fill the look-ahead
        out = self._limiter.process(self._mix(n))
        if self._master is not None:
            # After the limiter (a gain under 1 adds no peak), on the output's own clock.
            fade = fade_curve(
                self.g + np.arange(n) - self._master[0], self._master[1], rising=False
            )
            out = out * fade.astype(np.float32)[:, None]
        self.g += n
        return out

    def _mix(self, n: int) -> np.ndarray:
        """The decks' next n samples from the mix head [n, 2]."""
        self._plan(n)
        m = self._m
        out = np.zeros((n, 2), dtype=np.float32)
        for deck in self._decks:
            if deck.start_g < m + n and deck.end_g > m:
                out += deck.read(m, n)
        self._decks = [d for d in self._decks if d.end_g > m + n]
        self._m += n
        return out

    def _ready(self, fut: Future[LoadedTrack], track: Track) -> LoadedTrack | None:
        if not fut.done():
            return None
        try:
            return fut.result()
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the music
            self.on_event(
                {"event": "problem", "message": f"cannot play {track.title or track.id}: {exc}"}
            )
            self.playlist.played(track)  # skip it for the no-repeat window
            return None

    def _plan(self, n: int) -> None:
        if self._master is not None:
            return
        cur = self._current
        if cur is None:
            if self._want is not None and self._want_track is not None:
                track, fut = self._want_track
                loaded = self._ready(fut, track)
                if loaded is None:
                    if fut.done():  # it failed: choose again
                        self.set_mood(self._want)
                    return
                self._start_first(loaded, self._want)
            return
        if len(self._decks) > 1:
            incoming = self._decks[-1]
            if (
                self._want_track is not None
                and self._want_track[1].done()
                and incoming.fade_in is not None
                and incoming.fade_in[0] > self._m
                and len(self._decks) == 2
            ):
                # A hand-over to the next track of the old mood is planned but has not begun:
                # drop it, the new mood goes in instead.
                self._decks.pop()
                self._current = self._decks[0]
                self._current.fade_out = None
                self.on_event({"event": "track_cancelled", "track": incoming.loaded.track.id})
            else:
                return  # a crossfade is under way
        cur = self._current
        if self._want_track is not None and self._want is not None:
            track, fut = self._want_track
            loaded = self._ready(fut, track)
            if loaded is not None:
                self._transition(loaded, self._want.mood, "mood")
                self._want_track = None
                return
            if fut.done():
                self.set_mood(self._want)
                return
            # still loading: keep the music going (the end-of-track hand-over below)
        # Continue the mood: the next track is chosen and loaded well before this one ends.
        if self._next is None or self._next[0] != cur.mood:
            va = (self._want.valence, self._want.arousal) if self._want else (0.0, 0.0)
            index = self._want.index if self._want else 0
            track = self.playlist.choose(index, va)
            self._next = (cur.mood, track, self.loader.request(track))
        left = cur.end_g - self._m
        bar = int((cur.loaded.bar_s or 0.0) * self.sr)
        if left <= self.xfade + 2 * max(bar, n) + n:
            mood, track, fut = self._next
            loaded = self._ready(fut, track)
            if loaded is not None:
                self._transition(loaded, mood, "end", at_end=True)
                self._next = None
            elif fut.done():
                self._next = None

    def _start_first(self, loaded: LoadedTrack, change: MoodChange) -> None:
        pos0 = int(round(loaded.downbeat_at_or_after(0.0) * self.sr))
        deck = _Deck(loaded, change.mood, self._m, pos0, fade_in=(self._m, self.fade_in_n))
        self._decks.append(deck)
        self._current = deck
        self._want_track = None
        self._started(deck, self._m, self._m, "start")

    def _transition(
        self, loaded: LoadedTrack, mood: str, reason: str, at_end: bool = False
    ) -> None:
        cur = self._current
        assert cur is not None
        sr, half = self.sr, self.xfade // 2
        earliest = cur.g_to_s(self._m + half, sr)
        last = cur.g_to_s(cur.end_g - half, sr)  # the fade-out must end with the track
        if at_end:
            b = cur.loaded.downbeat_at_or_before(last)
            b = b if b >= earliest else last
        else:
            b = cur.loaded.downbeat_at_or_after(earliest)
            b = b if b <= last else last
        b = max(b, earliest)
        boundary = cur.s_to_g(b, sr)
        fade_start = boundary - half
        cur.fade_out = (fade_start, self.xfade)
        # The incoming track's downbeat lands on the boundary (its first one past half a fade).
        in_db = loaded.downbeat_at_or_after(half / sr)
        pos0 = int(round(in_db * sr)) - half
        deck = _Deck(loaded, mood, fade_start, pos0, fade_in=(fade_start, self.xfade))
        self._decks.append(deck)
        self._current = deck
        self._started(deck, fade_start, boundary, reason)

    def _started(self, deck: _Deck, fade_start: int, boundary: int, reason: str) -> None:
        self.playlist.played(deck.loaded.track)
        self.tracks_started += 1
        tr = deck.loaded.track
        self.on_event(
            {
                "event": "track_start",
                "t": round(boundary / self.sr, 3),
                "fade_start": round(fade_start / self.sr, 3),
                "reason": reason,
                "mood": deck.mood,
                "track": tr.id,
                "title": tr.title,
                "artist": tr.artist,
            }
        )
