"""Music catalogue: tracks with V/A on the reference scale, mood clusters, fast lookup.

`load_library(spec)` accepts "builtin", a DEAM folder in its published layout, a CSV/JSON
manifest, a Parquet/CSV table with song-level V/A, a folder of audio files (V/A estimated
from the audio) or a single audio file; a folder whose only V/A table is not called
manifest.* loads as that manifest. Every loader produces the same catalogue table (`Track`
rows; a large V/A-only table is a columnar `TrackTable` that makes them on demand) and the
same mood-cluster model; a catalogue index is cached next to the library (or in the user
cache when that folder is read-only) and rebuilt when the files it was built from change.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LibraryError
from .clusters import MoodClusters, fit_clusters

if TYPE_CHECKING:
    from ..config import MatchConfig

__all__ = [
    "Library",
    "MoodClusters",
    "Track",
    "TrackTable",
    "load_library",
    "library_from_tracks",
]


@dataclass(frozen=True)
class Track:
    id: str
    title: str
    artist: str
    path: str  # absolute path of the audio file; "" when the catalogue has no audio for it
    duration_s: float | None
    valence: float  # reference scale [-1, 1]
    arousal: float
    va_source: str = "annotated"  # annotated | estimated | builtin | manifest
    genre: str = ""
    tempo_bpm: float | None = None
    # Optional V/A curve over the track (DEAM dynamic, 2 Hz): ((t, v, a), ...)
    curve: tuple[tuple[float, float, float], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if self.curve is not None:
            d["curve"] = [list(row) for row in self.curve]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Track:
        d = dict(d)
        if d.get("curve") is not None:
            d["curve"] = tuple(tuple(float(x) for x in row) for row in d["curve"])
        return cls(**d)


class TrackTable(Sequence[Track]):
    """Tracks held as columns: a large V/A table (a million rows) without a million `Track`
    objects. Rows are made on demand; `va` is the [M, 2] array the matcher indexes."""

    _TEXT = ("title", "artist", "path", "genre")

    def __init__(
        self,
        ids: list[str],
        valence: np.ndarray,
        arousal: np.ndarray,
        *,
        va_source: str = "manifest",
        **text: list[str] | None,
    ) -> None:
        self.ids = list(ids)
        self.va = np.stack(
            [np.asarray(valence, dtype=np.float64), np.asarray(arousal, dtype=np.float64)], axis=1
        ).reshape(len(self.ids), 2)
        self.va_source = va_source
        self.text = {k: (list(text[k]) if text.get(k) is not None else None) for k in self._TEXT}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: Any) -> Any:  # int -> Track, slice -> tuple[Track, ...]
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        t = self.text
        return Track(
            id=self.ids[i],
            title=t["title"][i] if t["title"] is not None else self.ids[i],
            artist=t["artist"][i] if t["artist"] is not None else "",
            path=t["path"][i] if t["path"] is not None else "",
            duration_s=None,
            valence=float(self.va[i, 0]),
            arousal=float(self.va[i, 1]),
            va_source=self.va_source,
            genre=t["genre"][i] if t["genre"] is not None else "",
        )

    def __iter__(self) -> Iterator[Track]:
        return (self[i] for i in range(len(self)))

    def paths(self) -> list[str]:
        return self.text["path"] if self.text["path"] is not None else [""] * len(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids": self.ids,
            "valence": self.va[:, 0].tolist(),
            "arousal": self.va[:, 1].tolist(),
            "va_source": self.va_source,
            **self.text,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrackTable:
        text = {k: d.get(k) for k in cls._TEXT}
        for k, col in text.items():
            if col is not None and (
                len(col) != len(d["ids"]) or not all(isinstance(x, str) for x in col)
            ):
                raise ValueError(f"bad {k} column")
        if not all(isinstance(x, str) for x in d["ids"]):
            raise ValueError("bad ids")
        return cls(d["ids"], d["valence"], d["arousal"], va_source=str(d["va_source"]), **text)


@dataclass(eq=False)  # holds arrays: identity, not element-wise, equality
class Library:
    """A loaded catalogue. `va` is [M, 2]; `track_cluster` is each track's mood cluster index."""

    name: str
    root: Path
    tracks: tuple[Track, ...] | TrackTable
    clusters: MoodClusters
    kind: str = "custom"
    warnings: tuple[str, ...] = ()
    # [M, 2]; computed from the tracks unless given (huge synthetic catalogues pass it in).
    va: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    track_cluster: np.ndarray = field(init=False, repr=False)
    _trees: dict[int, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.va is None and isinstance(self.tracks, TrackTable):
            self.va = self.tracks.va
        if self.va is None:
            self.va = np.array(
                [[t.valence, t.arousal] for t in self.tracks], dtype=np.float64
            ).reshape(-1, 2)
        self.track_cluster = (
            self.clusters.predict(self.va) if len(self.va) else np.zeros(0, dtype=np.int64)
        )

    def __len__(self) -> int:
        return len(self.tracks)

    def cluster_members(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.track_cluster == k)

    def tree(self, k: int) -> tuple[Any, np.ndarray]:
        """KD-tree over the V/A of cluster k's tracks (built on first use) and their indices."""
        if k not in self._trees:
            from scipy.spatial import cKDTree

            members = self.cluster_members(k)
            self._trees[k] = (
                cKDTree(self.va[members], balanced_tree=False, compact_nodes=False)
                if len(members)
                else None,
                members,
            )
        return self._trees[k]

    def build_index(self) -> None:
        for k in range(self.clusters.k):
            self.tree(k)

    def cluster_sizes(self) -> list[int]:
        return np.bincount(self.track_cluster, minlength=self.clusters.k).tolist()


def library_from_tracks(
    tracks: list[Track] | tuple[Track, ...] | TrackTable,
    *,
    name: str = "custom",
    root: str | os.PathLike[str] = ".",
    kind: str = "custom",
    match_config: MatchConfig | None = None,
    clusters: MoodClusters | None = None,
    warnings: tuple[str, ...] = (),
) -> Library:
    """Build a Library from rows, fitting mood clusters unless given."""
    from ..config import MatchConfig

    cfg = match_config or MatchConfig()
    if not isinstance(tracks, TrackTable):
        tracks = tuple(tracks)
    if not len(tracks):
        raise LibraryError(f"library {name} has no usable tracks")
    if clusters is None:
        va = (
            tracks.va
            if isinstance(tracks, TrackTable)
            else np.array([[t.valence, t.arousal] for t in tracks], dtype=np.float64)
        )
        clusters = fit_clusters(va, min_clusters=cfg.min_clusters, max_clusters=cfg.max_clusters)
    return Library(
        name=name, root=Path(root), tracks=tracks, clusters=clusters, kind=kind, warnings=warnings
    )


def load_library(
    spec: str | os.PathLike[str],
    *,
    match_config: MatchConfig | None = None,
    allow_outside: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Library:
    """Load a library: "builtin", a DEAM folder, a manifest (.csv/.json), a table, an audio folder
    or one audio file.

    Raises LibraryError with one line when the library cannot be used.
    """
    from . import loaders

    return loaders.load(
        spec,
        match_config=match_config,
        allow_outside=allow_outside,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
    )
