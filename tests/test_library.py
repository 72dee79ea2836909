"""Library loaders, the built-in library, mood clusters and the index cache."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import DEAM_PARQUET

from moodsic_engine.config import MatchConfig
from moodsic_engine.errors import LibraryError
from moodsic_engine.library import Track, library_from_tracks, load_library
from moodsic_engine.library.builtin import PIECES, render_piece
from moodsic_engine.library.clusters import fit_clusters, name_clusters

SLUG = re.compile(r"^[a-z0-9-]+$")


def _tone(path: Path, seconds: float = 2.0, sr: int = 22050, freq: float = 440.0) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


# ----------------------------------------------------------------------------- built-in
def test_builtin_library_pieces_tags_and_clusters() -> None:
    lib = load_library("builtin")
    assert len(lib.tracks) >= 12
    for t in lib.tracks:
        assert Path(t.path).is_file()
        info = sf.info(t.path)
        assert 20.0 <= info.duration <= 30.0, (t.title, info.duration)
        assert abs(info.duration - t.duration_s) < 1e-3
        assert -1 <= t.valence <= 1 and -1 <= t.arousal <= 1
        assert t.va_source == "builtin"
    # Moods spread over all four quadrants.
    quadrants = {(t.valence > 0, t.arousal > 0) for t in lib.tracks}
    assert len(quadrants) == 4
    labels = set(lib.clusters.labels)
    assert {
        "Bright & Engaging",
        "Downcast & Low-energy",
        "Calm & Neutral",
        "Tense & Intense",
    } <= labels
    assert all(SLUG.match(s) for s in lib.clusters.slugs)
    assert len(set(lib.clusters.slugs)) == lib.clusters.k
    # Each designed mood group forms its own cluster: the sunniest piece is bright/engaging.
    sunny = next(i for i, t in enumerate(lib.tracks) if t.id == "builtin-sunlit-parade")
    assert lib.clusters.labels[lib.track_cluster[sunny]] == "Bright & Engaging"
    dark = next(i for i, t in enumerate(lib.tracks) if t.id == "builtin-long-goodbye")
    assert lib.clusters.labels[lib.track_cluster[dark]] == "Downcast & Low-energy"


def test_builtin_is_cached_and_stable() -> None:
    a = load_library("builtin")
    b = load_library("builtin")
    assert a.clusters.slugs == b.clusters.slugs
    assert [t.id for t in a.tracks] == [t.id for t in b.tracks]
    np.testing.assert_allclose(a.clusters.centroids, b.clusters.centroids)
    assert (Path(a.root) / ".moodsic-index.json").is_file()


def test_piece_rendering_is_deterministic_and_loops_on_bars() -> None:
    spec = PIECES[0]
    y1, bar = render_piece(spec, seed=0, sr=8000)
    y2, _ = render_piece(spec, seed=0, sr=8000)
    np.testing.assert_array_equal(y1, y2)
    # A whole number of bars long.
    n_bars = len(y1) / 8000 / bar
    assert abs(n_bars - round(n_bars)) < 1e-3
    assert np.max(np.abs(y1)) <= 1.0


# ----------------------------------------------------------------------------- clusters
def test_realistic_deam_table_clusters_named_sensibly(tmp_path: Path) -> None:
    if not DEAM_PARQUET.is_file():
        pytest.skip("shared DEAM parquet not present")
    table = shutil.copy(DEAM_PARQUET, tmp_path / "deam_songs.parquet")
    lib = load_library(table)
    assert len(lib.tracks) == 1802
    k = lib.clusters.k
    assert 2 <= k <= 8
    means = np.array([lib.va[lib.track_cluster == c].mean(axis=0) for c in range(k)])
    brightest = int(np.argmax(means.sum(axis=1)))
    assert means[brightest, 0] == means[:, 0].max() and means[brightest, 1] == means[:, 1].max()
    assert lib.clusters.labels[brightest] == "Bright & Engaging"
    darkest = int(np.argmin(means.sum(axis=1)))
    assert lib.clusters.labels[darkest].startswith("Downcast")
    sizes = np.array(lib.cluster_sizes())
    assert sizes.min() > 0.05 * len(lib.tracks)
    # Song-level V/A was already on the reference scale.
    row = next(t for t in lib.tracks if t.id == "2")
    assert (row.valence, row.arousal) == pytest.approx((-0.475, -0.5))
    # Index written next to the copy, reused on the next load with identical clusters.
    assert (tmp_path / ".deam_songs.parquet.moodsic-index.json").is_file()
    again = load_library(table)
    assert again.clusters.slugs == lib.clusters.slugs


def test_names_from_centroids() -> None:
    names = name_clusters(
        np.array([[0.5, 0.5], [-0.5, -0.5], [0.0, -0.5], [-0.5, 0.5], [0.5, 0.5]])
    )
    assert names[1] == "Downcast & Low-energy"
    assert names[2] == "Calm & Neutral"
    assert names[3] == "Tense & Intense"
    assert {names[0], names[4]} == {"Bright & Engaging (mild)", "Bright & Engaging (strong)"} or (
        names[0] != names[4] and names[0].startswith("Bright & Engaging")
    )


def test_single_cluster_library_still_works() -> None:
    from moodsic_engine.library.match import match_segments

    tracks = [
        Track(
            id=f"t{i}", title=f"T{i}", artist="", path="", duration_s=None, valence=0.3, arousal=0.3
        )
        for i in range(5)
    ]
    lib = library_from_tracks(tracks)
    assert lib.clusters.k == 1
    post = lib.clusters.posterior(np.array([[0.9, -0.9], [0.3, 0.3]]))
    np.testing.assert_allclose(post, 1.0)
    choices = match_segments(lib, np.array([[0.3, 0.3]] * 3), post[[1, 1, 1]], MatchConfig(), 0)
    assert len({c.id for c in choices}) == 3
    # Two tracks only: still one cluster or two, never an error.
    two = library_from_tracks(tracks[:1] + [Track("x", "X", "", "", None, -0.5, 0.5)])
    assert two.clusters.k in (1, 2)


def test_posterior_rows_sum_to_one_and_follow_distance() -> None:
    rng = np.random.default_rng(1)
    va = np.concatenate(
        [rng.normal([0.5, 0.5], 0.05, (60, 2)), rng.normal([-0.5, -0.5], 0.05, (60, 2))]
    )
    cl = fit_clusters(va, min_clusters=2, max_clusters=4)
    post = cl.posterior(np.array([[0.5, 0.5], [-0.5, -0.5], [0.0, 0.0]]))
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    assert cl.labels[int(np.argmax(post[0]))] == "Bright & Engaging"
    assert cl.labels[int(np.argmax(post[1]))] == "Downcast & Low-energy"


# ----------------------------------------------------------------------------- DEAM
def _deam_folder(root: Path, *, audio_ids: list[int]) -> Path:
    """DEAM's published layout: leading-space headers, both static CSV ranges, metadata, audio."""
    ann = root / "DEAM_Annotations" / "annotations" / "annotations averaged per song"
    song = ann / "song_level"
    song.mkdir(parents=True)
    (song / "static_annotations_averaged_songs_1_2000.csv").write_text(
        "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n"
        "2,3.1,0.94,3,0.63\n"
        "3,3.5,1.75,3.3,1.62\n"
        "5,7.8,1.2,8.2,0.9\n"
    )
    (song / "static_annotations_averaged_songs_2000_2058.csv").write_text(
        "song_id, valence_mean, valence_std, valence_max_mean, valence_max_std, valence_min_mean,"
        " valence_min_std, arousal_mean, arousal_std, arousal_max_mean, arousal_max_std,"
        " arousal_min_mean, arousal_min_std\n"
        "2001,5,1,6,1,4,1,9,0.5,9,0,8,1\n"
        "2002,1,0.5,2,1,1,0,5,1,6,1,4,1\n"
    )
    dyn = ann / "dynamic (per second annotations)"
    dyn.mkdir()
    (dyn / "valence.csv").write_text("song_id,sample_15000ms,sample_15500ms\n5,0.5,0.6\n")
    (dyn / "arousal.csv").write_text("song_id,sample_15000ms,sample_15500ms\n5,0.7,0.8\n")
    meta = root / "metadata"
    meta.mkdir()
    (meta / "metadata_2013.csv").write_text(
        "song_id,file_name,Artist,Song title,start of the segment (min.sec),end of the segment (min.sec),Genre\n"
        "2,2.mp3,Kevin MacLeod,Slow Burn,0.00,0.45,Blues\n"
        "5,5.mp3,Some Band,Sunny Day,0.00,0.45,Pop\n"
    )
    (meta / "metadata_2015.csv").write_text(
        "id,file_name,artist,title,genre\n2001,2001.mp3,Band X,Loud,Rock\n"
    )
    audio = root / "MEMD_audio"
    audio.mkdir()
    sr = 22050
    t = np.arange(sr) / sr
    for sid in audio_ids:
        sf.write(
            str(audio / f"{sid}.mp3"), (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr
        )
    return root


def test_deam_published_layout(tmp_path: Path) -> None:
    root = _deam_folder(tmp_path / "DEAM", audio_ids=[2, 3, 5, 2001, 2002])
    lib = load_library(root)
    assert lib.kind == "deam"
    by_id = {t.id: t for t in lib.tracks}
    assert set(by_id) == {"deam-2", "deam-3", "deam-5", "deam-2001", "deam-2002"}
    assert (by_id["deam-2"].valence, by_id["deam-2"].arousal) == pytest.approx(
        ((3.1 - 5) / 4, (3 - 5) / 4)
    )
    assert (by_id["deam-2001"].valence, by_id["deam-2001"].arousal) == pytest.approx((0.0, 1.0))
    assert (by_id["deam-2002"].valence, by_id["deam-2002"].arousal) == pytest.approx((-1.0, 0.0))
    assert by_id["deam-2"].title == "Slow Burn" and by_id["deam-2"].artist == "Kevin MacLeod"
    assert by_id["deam-2001"].title == "Loud" and by_id["deam-2001"].genre == "Rock"
    assert by_id["deam-5"].curve == ((15.0, 0.5, 0.7), (15.5, 0.6, 0.8))
    assert Path(by_id["deam-5"].path).name == "5.mp3"
    assert not lib.warnings


def test_deam_missing_audio_is_skipped_with_warning(tmp_path: Path) -> None:
    root = _deam_folder(tmp_path / "DEAM", audio_ids=[2, 5])
    with pytest.warns(UserWarning, match=r"skipped 3 DEAM song\(s\).*3, 2001, 2002"):
        lib = load_library(root)
    assert {t.id for t in lib.tracks} == {"deam-2", "deam-5"}
    # None left: refused.
    empty = _deam_folder(tmp_path / "DEAM2", audio_ids=[])
    with pytest.raises(LibraryError, match="no song"):
        load_library(empty)


def test_deam_scale_out_of_range(tmp_path: Path) -> None:
    root = _deam_folder(tmp_path / "DEAM", audio_ids=[2])
    csv = next(root.rglob("static_annotations_averaged_songs_1_2000.csv"))
    csv.write_text(csv.read_text() + "7,12,1,3,1\n")
    with pytest.raises(LibraryError, match="row 5 outside the 1..9 scale"):
        load_library(root)


# ----------------------------------------------------------------------------- manifests
def test_manifest_csv_with_scale_and_relative_paths(tmp_path: Path) -> None:
    lib_dir = tmp_path / "music"
    (lib_dir / "sub").mkdir(parents=True)
    _tone(lib_dir / "a.wav")
    _tone(lib_dir / "sub" / "b.flac")
    (lib_dir / "tracks.csv").write_text(
        "# scale: 1-9\npath,valence,arousal,title,artist\na.wav,9,1,Alpha,Me\nsub/b.flac,1,9,Beta,You\n"
    )
    lib = load_library(lib_dir / "tracks.csv")
    a, b = lib.tracks
    assert (a.valence, a.arousal, b.valence, b.arousal) == (1.0, -1.0, -1.0, 1.0)
    assert a.title == "Alpha" and Path(b.path) == (lib_dir / "sub" / "b.flac").resolve()
    assert a.duration_s == pytest.approx(2.0)


def test_manifest_json_and_index_rebuilt_when_files_change(tmp_path: Path) -> None:
    _tone(tmp_path / "a.wav")
    _tone(tmp_path / "b.wav")
    manifest = tmp_path / "lib.json"
    manifest.write_text(
        json.dumps({"scale": "ref", "tracks": [{"path": "a.wav", "valence": 0.5, "arousal": 0.5}]})
    )
    first = load_library(manifest)
    assert [t.title for t in first.tracks] == ["a"]
    index = tmp_path / ".lib.json.moodsic-index.json"
    assert index.is_file()
    stamp = index.stat().st_mtime_ns
    load_library(manifest)
    assert index.stat().st_mtime_ns == stamp  # unchanged files: the cached index is used
    manifest.write_text(
        json.dumps(
            {
                "scale": "ref",
                "tracks": [
                    {"path": "a.wav", "valence": 0.5, "arousal": 0.5},
                    {"path": "b.wav", "valence": -0.5, "arousal": -0.2, "title": "Bee"},
                ],
            }
        )
    )
    second = load_library(manifest)
    assert [t.title for t in second.tracks] == ["a", "Bee"]


def test_manifest_bad_rows_report_row_numbers(tmp_path: Path) -> None:
    _tone(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text(
        "path,valence,arousal\na.wav,0.1,0.2\na.wav,abc,0.2\na.wav,0.1,3.5\na.wav,0.1\n"
    )
    with pytest.raises(LibraryError) as exc:
        load_library(tmp_path / "m.csv")
    msg = str(exc.value)
    assert "row 3" in msg and "row 4" in msg and "row 5" in msg and "row 2" not in msg
    assert "outside its scale" in msg
    assert "\n" not in msg


def test_manifest_paths_stay_inside_unless_allowed(tmp_path: Path) -> None:
    outside = _tone(tmp_path / "outside.wav")
    lib_dir = tmp_path / "lib"
    lib_dir.mkdir()
    _tone(lib_dir / "in.wav")
    (lib_dir / "m.csv").write_text(
        f"path,valence,arousal\nin.wav,0,0\n../outside.wav,0.5,0.5\n{outside},0.1,0.1\n"
    )
    with pytest.raises(LibraryError, match="row 3.*outside"):
        load_library(lib_dir / "m.csv")
    lib = load_library(lib_dir / "m.csv", allow_outside=True)
    assert len(lib.tracks) == 3


def test_manifest_missing_audio_warns_and_refuses_when_none_remain(tmp_path: Path) -> None:
    _tone(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text(
        "path,valence,arousal\na.wav,0,0\ngone.wav,0.5,0.5\nlost.mp3,0,0\n"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lib = load_library(tmp_path / "m.csv")
    assert len(lib.tracks) == 1
    assert any("gone.wav" in str(w.message) and "lost.mp3" in str(w.message) for w in caught)
    assert any("gone.wav" in w for w in lib.warnings)
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    (tmp_path / "u.csv").write_text("path,valence,arousal\na.wav,0,0\njunk.wav,0.2,0.2\n")
    with pytest.warns(UserWarning, match="1 unreadable audio file.*junk.wav"):
        assert [t.title for t in load_library(tmp_path / "u.csv").tracks] == ["a"]
    (tmp_path / "n.csv").write_text("path,valence,arousal\ngone.wav,0.5,0.5\njunk.wav,0,0\n")
    with pytest.raises(LibraryError, match="no track has a readable audio file"):
        load_library(tmp_path / "n.csv")


def test_unknown_library_inputs(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="not found"):
        load_library(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(LibraryError, match="cannot tell"):
        load_library(tmp_path / "x.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LibraryError, match="no annotations"):
        load_library(empty)


# ----------------------------------------------------------------------------- audio folder
@pytest.mark.slow
def test_audio_folder_estimates_va_from_audio(tmp_path: Path) -> None:
    folder = tmp_path / "songs"
    folder.mkdir()
    specs = {s.slug: s for s in PIECES}
    for slug in ("sunlit-parade", "long-goodbye", "night-pursuit", "warm-hearth"):
        y, _ = render_piece(specs[slug], seed=1, sr=22050)
        sf.write(str(folder / f"{slug}.wav"), y[: 22050 * 15], 22050)
    (folder / "broken.mp3").write_bytes(b"not audio at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lib = load_library(folder)
    assert any("broken.mp3" in str(w.message) for w in caught)
    est = {t.title: t for t in lib.tracks}
    assert set(est) == {"sunlit-parade", "long-goodbye", "night-pursuit", "warm-hearth"}
    assert all(t.va_source == "estimated" for t in lib.tracks)
    # Fast/bright/major above slow/dark/minor on both axes; fast pieces more aroused.
    assert est["sunlit-parade"].valence > est["long-goodbye"].valence + 0.3
    assert est["sunlit-parade"].arousal > est["long-goodbye"].arousal + 0.5
    assert est["night-pursuit"].arousal > est["warm-hearth"].arousal + 0.5
    assert est["warm-hearth"].valence > est["night-pursuit"].valence


# ----------------------------------------------------------------------------- CLI
def test_cli_library_info_and_plot(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from moodsic_engine.cli import app

    png = tmp_path / "lib.png"
    res = CliRunner().invoke(app, ["library", "info", "builtin", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert "Bright & Engaging" in res.output and "bright-engaging" in res.output
    assert re.search(r"clusters 6 ", res.output)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(app, ["library", "info", str(tmp_path / "missing")])
    assert bad.exit_code == 1
    assert "library not found" in bad.output


def test_bench_library_reports_build_and_query_times() -> None:
    from moodsic_engine.library.report import bench_library

    lines = bench_library(n_tracks=20000, n_queries=20)
    text = "\n".join(lines)
    assert "20,000 synthetic tracks" in text
    build = float(re.search(r"total build ([0-9.]+) s", text).group(1))
    query = float(re.search(r"query\s+mean ([0-9.]+) ms", text).group(1))
    assert build > 0 and query > 0
