"""Music catalogue: tracks with V/A on the reference scale, mood clusters, fast lookup.

`load_library(spec)` accepts "builtin", a DEAM folder in its published layout, a CSV/JSON
manifest, a Parquet/CSV table with song-level V/A, or a folder of audio files (V/A estimated
from the audio). Every loader produces the same catalogue table (`Track` rows) and the same
mood-cluster model; a catalogue index is cached next to the library and rebuilt when the
files it was built from change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LibraryError
from .clusters import MoodClusters, fit_clusters

if TYPE_CHECKING:
    from ..config import MatchConfig

__all__ = ["Library", "MoodClusters", "Track", "load_library", "library_from_tracks"]


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


@dataclass(eq=False)  # holds arrays: identity, not element-wise, equality
class Library:
    """A loaded catalogue. `va` is [M, 2]; `track_cluster` is each track's mood cluster index."""

    name: str
    root: Path
    tracks: tuple[Track, ...]
    clusters: MoodClusters
    kind: str = "custom"
    warnings: tuple[str, ...] = ()
    # [M, 2]; computed from the tracks unless given (huge synthetic catalogues pass it in).
    va: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    track_cluster: np.ndarray = field(init=False, repr=False)
    _trees: dict[int, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
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
    tracks: list[Track] | tuple[Track, ...],
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
    tracks = tuple(tracks)
    if not tracks:
        raise LibraryError(f"library {name} has no usable tracks")
    if clusters is None:
        va = np.array([[t.valence, t.arousal] for t in tracks], dtype=np.float64)
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
    """Load a library: "builtin", a DEAM folder, a manifest (.csv/.json), a table or an audio folder.

    Raises LibraryError with one line when the library cannot be used.
    """
    from . import loaders

    return loaders.load(
        spec,
        match_config=match_config,
        allow_outside=allow_outside,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
    )
