"""Matching: cluster gate, nearest neighbour, no-repeat window, determinism and re-rolls."""

from __future__ import annotations

import numpy as np
import pytest

from moodsic_engine.config import MatchConfig
from moodsic_engine.library import Track, library_from_tracks
from moodsic_engine.library.match import gate_clusters, match_segments


def _library(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
    va = np.clip(centres[rng.integers(0, 4, n)] + rng.normal(0, 0.12, (n, 2)), -1, 1)
    tracks = [
        Track(
            id=f"t{i}",
            title=f"T{i}",
            artist="",
            path=f"/music/{i}.wav",
            duration_s=20.0,
            valence=v,
            arousal=a,
        )
        for i, (v, a) in enumerate(va)
    ]
    return library_from_tracks(tracks)


def test_nearest_neighbour_inside_the_gate() -> None:
    lib = _library()
    rng = np.random.default_rng(3)
    seg_va = rng.uniform(-0.8, 0.8, (40, 2))
    post = lib.clusters.posterior(seg_va)
    cfg = MatchConfig(no_repeat=0)
    choices = match_segments(lib, seg_va, post, cfg, seed=0)
    for i, c in enumerate(choices):
        gate = gate_clusters(post[i], cfg.cluster_gate)
        members = np.flatnonzero(np.isin(lib.track_cluster, gate))
        d = np.hypot(*(lib.va[members] - seg_va[i]).T)
        best = members[np.argmin(d)]
        assert c.id == lib.tracks[best].id
        assert c.rank == 0
        assert (c.valence, c.arousal) == (lib.tracks[best].valence, lib.tracks[best].arousal)


def test_gate_widens_to_top_two_below_threshold() -> None:
    assert gate_clusters(np.array([0.7, 0.2, 0.1]), 0.6) == [0]
    assert gate_clusters(np.array([0.2, 0.5, 0.3]), 0.6) == [1, 2]
    assert gate_clusters(np.array([1.0]), 0.6) == [0]


def test_gate_keeps_segment_inside_its_cluster() -> None:
    """A point between clusters but confidently in one must not take a nearer track from another."""
    tracks = [
        Track("a", "A", "", "", None, 0.60, 0.60),
        Track("b", "B", "", "", None, 0.65, 0.55),
        Track("c", "C", "", "", None, 0.55, 0.62),
        Track("d", "D", "", "", None, -0.60, -0.60),
        Track("e", "E", "", "", None, -0.55, -0.65),
        Track("f", "F", "", "", None, -0.62, -0.55),
    ]
    lib = library_from_tracks(tracks, match_config=MatchConfig(max_clusters=2))
    assert lib.clusters.k == 2
    seg = np.array([[0.0, -0.1]])
    post = np.zeros((1, 2))
    top = int(lib.track_cluster[0])  # the bright cluster
    post[0, top] = 0.9
    post[0, 1 - top] = 0.1
    (choice,) = match_segments(lib, seg, post, MatchConfig(), seed=0)
    assert choice.id in {"a", "b", "c"}


def test_deterministic_for_a_seed_and_no_repeat_window() -> None:
    lib = _library()
    seg_va = np.tile([[0.5, 0.5]], (12, 1))
    post = lib.clusters.posterior(seg_va)
    cfg = MatchConfig(no_repeat=3)
    a = match_segments(lib, seg_va, post, cfg, seed=7)
    b = match_segments(lib, seg_va, post, cfg, seed=7)
    assert [c.id for c in a] == [c.id for c in b]
    ids = [c.id for c in a]
    for i in range(len(ids)):
        window = ids[max(0, i - 3) : i]
        assert ids[i] not in window, (i, ids)
    # The identical segments cycle through the best 4 tracks, in rank order.
    assert [c.rank for c in a[:4]] == [0, 1, 2, 3]
    assert ids[4] == ids[0]


def test_seed_breaks_exact_ties() -> None:
    tracks = [Track(f"t{i}", f"T{i}", "", "", None, 0.5, 0.5) for i in range(8)]
    lib = library_from_tracks(tracks)
    seg = np.array([[0.5, 0.5]])
    post = lib.clusters.posterior(seg)
    picks = {match_segments(lib, seg, post, MatchConfig(), seed=s)[0].id for s in range(20)}
    assert len(picks) > 1  # the seed decides among equals ...
    again = {match_segments(lib, seg, post, MatchConfig(), seed=5)[0].id for _ in range(5)}
    assert len(again) == 1  # ... and the same seed always decides the same way


def test_reroll_changes_only_that_segment() -> None:
    lib = _library()
    rng = np.random.default_rng(11)
    seg_va = rng.uniform(-0.7, 0.7, (8, 2))
    post = lib.clusters.posterior(seg_va)
    cfg = MatchConfig(no_repeat=3)
    base = match_segments(lib, seg_va, post, cfg, seed=1)
    once = match_segments(lib, seg_va, post, cfg, seed=1, reroll={3: 1})
    twice = match_segments(lib, seg_va, post, cfg, seed=1, reroll={3: 2})
    for i in range(8):
        if i != 3:
            assert once[i].id == base[i].id and twice[i].id == base[i].id
    assert len({base[3].id, once[3].id, twice[3].id}) == 3
    assert base[3].rank < once[3].rank < twice[3].rank
    neighbours = {base[j].id for j in range(0, 7) if j != 3}
    assert once[3].id not in neighbours and twice[3].id not in neighbours
    # The re-rolled track is the next best: no free track in the gate lies between.
    gate = gate_clusters(post[3], cfg.cluster_gate)
    members = np.flatnonzero(np.isin(lib.track_cluster, gate))
    d = {lib.tracks[m].id: float(np.hypot(*(lib.va[m] - seg_va[3]))) for m in members}
    between = [
        t for t, dist in d.items() if d[base[3].id] < dist < d[once[3].id] and t not in neighbours
    ]
    assert not between


def test_tiny_library_allows_repeats_rather_than_failing() -> None:
    lib = library_from_tracks([Track("only", "Only", "", "", None, 0.1, 0.1)])
    seg = np.zeros((4, 2))
    choices = match_segments(
        lib, seg, lib.clusters.posterior(seg), MatchConfig(no_repeat=3), seed=0
    )
    assert [c.id for c in choices] == ["only"] * 4


@pytest.mark.parametrize("n", [20000])
def test_large_catalogue_query_uses_the_index(n: int) -> None:
    lib = _library(n)
    seg = np.array([[0.3, -0.2], [-0.4, 0.6]])
    post = lib.clusters.posterior(seg)
    cfg = MatchConfig(no_repeat=0)
    choices = match_segments(lib, seg, post, cfg, seed=0)
    for i, c in enumerate(choices):
        gate = gate_clusters(post[i], cfg.cluster_gate)
        members = np.flatnonzero(np.isin(lib.track_cluster, gate))
        best = members[np.argmin(np.hypot(*(lib.va[members] - seg[i]).T))]
        assert c.id == lib.tracks[best].id


def test_track_curve_starts_where_it_follows_the_segment_arc() -> None:
    from moodsic_engine.library.match import arc_offset

    # DEAM-style 2 Hz curve from 15 s: valence rises from -0.6 to +0.6 over 30 s, arousal flat.
    t = 15.0 + 0.5 * np.arange(61)
    v = np.linspace(-0.6, 0.6, 61)
    curve = tuple((float(a), float(b), 0.0) for a, b in zip(t, v, strict=True))
    # A point: the moment closest to it.
    assert arc_offset(curve, np.array([[0.3, 0.0]])) == pytest.approx(15.0 + 0.5 * 45, abs=0.5)
    # A rising arc of 5 s from -0.2: starts where the curve is at -0.2.
    arc = np.stack([np.linspace(-0.2, -0.0, 11), np.zeros(11)], axis=1)
    assert arc_offset(curve, arc) == pytest.approx(15.0 + 0.5 * 20, abs=0.5)
    # Through match_segments: the chosen curve track carries that start as in_s.
    tracks = [
        Track("c", "Curve", "", "", None, 0.0, 0.0, curve=curve),
        Track("d", "Other", "", "", None, -0.9, 0.9),
        Track("e", "Other2", "", "", None, -0.8, 0.8),
        Track("f", "Other3", "", "", None, -0.85, 0.85),
    ]
    lib = library_from_tracks(tracks, match_config=MatchConfig(max_clusters=2))
    seg = np.array([[0.1, 0.0]])
    (choice,) = match_segments(lib, seg, lib.clusters.posterior(seg), MatchConfig(), 0, arcs=[arc])
    assert choice.id == "c" and choice.in_s == pytest.approx(25.0, abs=0.5)


def test_no_repeat_holds_for_any_segments_when_the_library_is_big_enough() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    lib = _library(40, seed=5)

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=1, max_size=15),
        st.integers(0, 5),
        st.integers(0, 1000),
        st.dictionaries(st.integers(0, 14), st.integers(1, 3), max_size=3),
    )
    def check(
        points: list[tuple[float, float]], window: int, seed: int, reroll: dict[int, int]
    ) -> None:
        va = np.array(points)
        cfg = MatchConfig(no_repeat=window)
        post = lib.clusters.posterior(va)
        a = match_segments(lib, va, post, cfg, seed=seed, reroll=reroll)
        b = match_segments(lib, va, post, cfg, seed=seed, reroll=reroll)
        assert [c.id for c in a] == [c.id for c in b]
        ids = [c.id for c in a]
        for i in range(len(ids)):
            assert ids[i] not in ids[max(0, i - window) : i]
        plain = match_segments(lib, va, post, cfg, seed=seed)
        for i in range(len(ids)):
            if i not in reroll:
                assert ids[i] == plain[i].id  # re-rolls never move another segment
            else:
                assert ids[i] != plain[i].id

    check()


def test_library_smaller_than_the_window_never_repeats_back_to_back() -> None:
    """Two or three tracks and a window of 3: repeats are unavoidable, but the window shrinks
    so a segment never gets the track the previous segment had."""
    for n in (2, 3):
        lib = library_from_tracks(
            [Track(f"t{i}", f"T{i}", "", "", None, 0.2, 0.2) for i in range(n)]
        )
        seg = np.full((7, 2), 0.2)
        ids = [c.id for c in match_segments(lib, seg, lib.clusters.posterior(seg), MatchConfig())]
        assert all(a != b for a, b in zip(ids, ids[1:], strict=False)), ids
        assert len(set(ids)) == n
    # Two rows naming one audio file count as one track for the window.
    same = [Track(f"s{i}", "S", "", "/music/same.wav", 10.0, 0.1, 0.1 + i * 1e-3) for i in (0, 1)]
    other = Track("o", "O", "", "/music/other.wav", 10.0, 0.6, 0.6)
    lib = library_from_tracks([*same, other])
    seg = np.full((4, 2), 0.1)
    paths = [c.path for c in match_segments(lib, seg, lib.clusters.posterior(seg), MatchConfig())]
    assert paths == ["/music/same.wav", "/music/other.wav"] * 2
    assert match_segments(lib, np.zeros((0, 2)), np.zeros((0, lib.clusters.k)), MatchConfig()) == []


def test_deep_reroll_queries_deeper_not_the_whole_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-roll past the base candidates widened the query to the whole catalogue (k = M
    nearest neighbours per cluster); it now doubles until enough free tracks are ranked,
    with the same choice."""
    from moodsic_engine.library import match

    lib = _library(n=4000, seed=2)
    # seven segments close together: the six neighbours take the re-rolled one's nearest tracks
    seg_va = 0.5 + 0.002 * np.arange(7)[:, None] * np.array([[1.0, -1.0]])
    post = lib.clusters.posterior(seg_va)
    cfg = MatchConfig(no_repeat=3)
    base = match_segments(lib, seg_va, post, cfg, seed=0)
    ks: list[int] = []
    real = match.ranked_candidates

    def spy(library, va, p, gate, need, seed):  # noqa: ANN001, ANN202
        ks.append(need)
        return real(library, va, p, gate, need, seed)

    monkeypatch.setattr(match, "ranked_candidates", spy)
    rolled = match_segments(lib, seg_va, post, cfg, seed=0, reroll={3: 2})
    assert max(ks) < len(lib.tracks) // 4
    assert [c.id for i, c in enumerate(rolled) if i != 3] == [
        c.id for i, c in enumerate(base) if i != 3
    ]
    # Brute force: the 2nd free gate track after the base choice, by distance.
    gate = match.gate_clusters(post[3], cfg.cluster_gate)
    members = np.flatnonzero(np.isin(lib.track_cluster, gate))
    order = members[np.argsort(np.hypot(*(lib.va[members] - seg_va[3]).T), kind="stable")]
    taken = {base[j].id for j in range(7) if j != 3}
    free = [lib.tracks[t].id for t in order if lib.tracks[t].id not in taken]
    assert rolled[3].id == free[free.index(base[3].id) + 2]
