"""The session playlist: which track plays next for a mood, never repeating one within a window.

Candidates come from the library's matcher (`library.match.ranked_candidates`: the mood's
cluster gate, then nearest in V/A). A track played within the last `no_repeat` picks is never
chosen while another is free: the mood's own tracks first, then the nearest free track of
another mood. Only when the library has no free track at all (it holds no more than
`no_repeat` tracks) does the mood's track played longest ago come back, so the music never
stops for want of a track.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..library import Library, Track
from ..library.match import ranked_candidates


class SessionPlaylist:
    """Next tracks for a live session.

    Parameters
    ----------
    library
        The loaded library (tracks with audio files).
    no_repeat
        A track is not played again within this many picks (default 20).
    cluster_gate
        The matcher's gate (`MatchConfig.cluster_gate`).
    seed
        Tie-breaking seed, as in batch matching.
    """

    def __init__(
        self, library: Library, *, no_repeat: int = 20, cluster_gate: float = 0.6, seed: int = 0
    ) -> None:
        playable = [i for i, t in enumerate(library.tracks) if t.path]
        if not playable:
            from ..errors import LibraryError

            raise LibraryError(f"library {library.name} has no audio files to play live")
        self.library = library
        self.no_repeat = max(0, int(no_repeat))
        self.cluster_gate = cluster_gate
        self.seed = seed
        self._playable = set(playable)
        self._recent: deque[str] = deque(maxlen=max(1, self.no_repeat))
        self._last_played: dict[str, int] = {}  # key -> pick number (bounded by library size)
        self._picks = 0

    @staticmethod
    def key(track: Track) -> str:
        """What "the same track" means: its audio file (a manifest may list one twice), else id."""
        return track.path or f"id:{track.id}"

    def _key(self, i: int) -> str:
        return self.key(self.library.tracks[i])

    def choose(self, mood_index: int, va: tuple[float, float]) -> Track:
        """The next track for a mood (cluster index) and V/A, not yet recorded as played."""
        return self.library.tracks[self._choose(mood_index, va)]

    def played(self, track: Track) -> None:
        """Record that `track` started playing (it enters the no-repeat window)."""
        key = self.key(track)
        self._picks += 1
        if self.no_repeat:
            self._recent.append(key)
        self._last_played[key] = self._picks

    def take(self, mood_index: int, va: tuple[float, float]) -> Track:
        """`choose` and `played` in one."""
        track = self.choose(mood_index, va)
        self.played(track)
        return track

    def _choose(self, mood_index: int, va: tuple[float, float]) -> int:
        k = self.library.clusters.k
        post = np.full(k, 1e-6)
        post[int(mood_index) % k] = 1.0
        need = min(len(self.library.tracks), self.no_repeat + 32)
        ranked = [
            i
            for i in ranked_candidates(
                self.library,
                np.asarray(va, dtype=np.float64),
                post,
                self.cluster_gate,
                need,
                self.seed,
            )
            if i in self._playable
        ]
        if not ranked:
            ranked = sorted(self._playable)
        recent = set(self._recent) if self.no_repeat else set()
        for i in ranked:  # the mood's own tracks first, then the nearest of other moods
            if self._key(i) not in recent:
                return i
        fresh = [i for i in self._playable if self._key(i) not in recent]
        if fresh:  # none of the ranked ones (capped) is free: the nearest free track anywhere
            d = np.linalg.norm(self.library.va[fresh] - np.asarray(va), axis=1)
            return fresh[int(np.argmin(d))]
        # Every playable track is recent (the library is smaller than the window): the mood's
        # track played longest ago.
        return min(ranked, key=lambda i: self._last_played.get(self._key(i), 0))
