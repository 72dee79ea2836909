"""Library loaders on inputs the issue's words allow but the first tests never tried: DEAM
exports with other column names and encodings, manifests in other shapes and scales, odd
audio folders. Every file is generated here; each test stays well under a second or two."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from moodsic_engine.errors import LibraryError
from moodsic_engine.library import load_library

SR = 22050


def _tone(path: Path, seconds: float = 2.0, sr: int = SR, freq: float = 330.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def _load(spec: Path, **kw):  # noqa: ANN202 - Library
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lib = load_library(spec, **kw)
    return lib, [str(w.message) for w in caught]


# ----------------------------------------------------------------------------- DEAM
def test_deam_musicid_header_bom_crlf_and_semicolons(tmp_path: Path) -> None:
    """`musicId` instead of `song_id` (static, dynamic and metadata files), a BOM with CRLF
    line ends, a semicolon-separated export and Windows-1252 metadata all load."""
    root = tmp_path / "DEAM"
    root.mkdir()
    (root / "static_annotations_averaged_songs_1_2000.csv").write_bytes(
        "\ufeffmusicId, valence_mean, valence_std, arousal_mean, arousal_std\r\n"
        "2,3.1,0.9,3,0.6\r\n3,7,1,7,1\r\n\r\n".encode()
    )
    (root / "static_annotations_averaged_songs_2000_2058.csv").write_text(
        "song_id; valence_mean; arousal_mean\n2001;5;9\n"
    )
    (root / "valence.csv").write_text("musicId,sample_15000ms,sample_15500ms\n2,0.1,NaN\n")
    (root / "arousal.csv").write_text("musicId,sample_15000ms,sample_15500ms\n2,-0.2,0.3\n")
    (root / "metadata_2013.csv").write_bytes(
        "musicId,Artist,Song title,Genre\n3,Bj\xf6rk,Caf\xe9,Pop\n".encode("cp1252")
    )
    for sid in (2, 3, 2001):
        _tone(root / "MEMD_audio" / f"{sid}.mp3")
    lib, warns = _load(root)
    assert not warns
    by_id = {t.id: t for t in lib.tracks}
    assert set(by_id) == {"deam-2", "deam-3", "deam-2001"}
    assert (by_id["deam-2"].valence, by_id["deam-2"].arousal) == pytest.approx((-0.475, -0.5))
    assert (by_id["deam-2001"].valence, by_id["deam-2001"].arousal) == pytest.approx((0.0, 1.0))
    assert by_id["deam-2"].curve == ((15.0, 0.1, -0.2),)  # the NaN sample is dropped
    assert (by_id["deam-3"].title, by_id["deam-3"].artist) == ("Café", "Björk")
    assert by_id["deam-3"].duration_s == pytest.approx(2.0, abs=0.1)


def test_deam_bad_rows_missing_columns_and_unreadable_audio(tmp_path: Path) -> None:
    root = tmp_path / "DEAM"
    root.mkdir()
    static = root / "static_annotations_averaged_songs_1_2000.csv"
    static.write_text("song_id, valence_mean\n2,3.1\n")
    with pytest.raises(LibraryError, match="no arousal_mean column"):
        load_library(root)
    # Every bad row is named with its file and row number, not just the first.
    static.write_text("song_id, valence_mean, arousal_mean\n2,3.1,3\n3,,7\n4,nan,5\nx,5,5\n")
    with pytest.raises(LibraryError) as exc:
        load_library(root)
    msg = str(exc.value)
    assert "row 3" in msg and "row 4" in msg and "row 5" in msg and "row 2 " not in msg
    # A corrupt file among the songs' audio is skipped with a warning naming it.
    static.write_text("song_id, valence_mean, arousal_mean\n2,3.1,3\n3,7,7\n4,5,5\n5,5,5\n")
    for sid in (2, 3):
        _tone(root / "MEMD_audio" / f"{sid}.mp3")
    (root / "MEMD_audio" / "4.mp3").write_bytes(b"garbage" * 10)
    lib, warns = _load(root)
    assert [t.id for t in lib.tracks] == ["deam-2", "deam-3"]
    assert any("unreadable" in w and "4.mp3" in w for w in warns)
    assert any("missing" in w and "5" in w for w in warns)


# ----------------------------------------------------------------------------- manifests
@pytest.mark.parametrize(
    ("scale", "hi", "lo"),
    [
        ("0-1", 1, 0),
        ("0-100", 100, 0),
        ("1 - 9", 9, 1),
        ("[-1, 1]", 1, -1),
        ([0, 100], 100, 0),
        ({"min": 1, "max": 9}, 9, 1),
        ({"valence": "0..1", "arousal": "1..9"}, None, None),
    ],
)
def test_manifest_scale_spellings(tmp_path: Path, scale: object, hi: float, lo: float) -> None:
    import json

    _tone(tmp_path / "a.wav")
    _tone(tmp_path / "b.wav")
    if hi is None:  # per-axis scales: valence 0..1, arousal 1..9
        rows = [{"path": "a.wav", "valence": 1, "arousal": 1}, {"path": "b.wav", "valence": 0.5,
                 "arousal": 7}]  # fmt: skip
    else:
        rows = [{"path": "a.wav", "valence": hi, "arousal": lo},
                {"path": "b.wav", "valence": lo, "arousal": hi}]  # fmt: skip
    (tmp_path / "m.json").write_text(json.dumps({"scale": scale, "tracks": rows}))
    lib, _ = _load(tmp_path / "m.json")
    got = np.array([(t.valence, t.arousal) for t in lib.tracks])
    want = [(1.0, -1.0), (0.0, 0.5)] if hi is None else [(1.0, -1.0), (-1.0, 1.0)]
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_manifest_json_shapes_aliases_and_per_axis_scale_keys(tmp_path: Path) -> None:
    import json

    _tone(tmp_path / "a.wav")
    _tone(tmp_path / "b.wav")
    (tmp_path / "songs.json").write_text(
        json.dumps(
            {
                "valence_scale": "1..9",
                "arousal_scale": "0..100",
                "songs": [{"audio_path": "a.wav", "val": 9, "aro": 0}],
            }
        )  # fmt: skip
    )
    lib, _ = _load(tmp_path / "songs.json")
    assert [(t.valence, t.arousal, Path(t.path).name) for t in lib.tracks] == [(1.0, -1.0, "a.wav")]
    (tmp_path / "byid.json").write_text(
        json.dumps({"tracks": {"x1": {"path": "a.wav", "valence": 0.2, "arousal": 0.1},
                               "x2": {"path": "b.wav", "valence": -0.2, "arousal": 0.3}}})
    )  # fmt: skip
    lib, _ = _load(tmp_path / "byid.json")
    assert [t.id for t in lib.tracks] == ["x1", "x2"]
    # V/A-only manifests (no path column) are fine and quiet: library info counts the audio.
    (tmp_path / "nopath.csv").write_text("id,valence,arousal\nx,0.1,0.1\n")
    lib, warns = _load(tmp_path / "nopath.csv")
    assert lib.tracks[0].path == "" and not warns
    # A boolean is not a valence.
    (tmp_path / "bool.json").write_text(json.dumps([{"path": "a.wav", "valence": True,
                                                     "arousal": 0}]))  # fmt: skip
    with pytest.raises(LibraryError, match=r"row 1 \(valence True is not a number"):
        load_library(tmp_path / "bool.json")


def test_manifest_csv_semicolons_decimal_commas_and_path_spellings(tmp_path: Path) -> None:
    import unicodedata

    _tone(tmp_path / "sub dir" / "Ä song.wav")
    _tone(tmp_path / unicodedata.normalize("NFD", "café.wav"))  # as macOS writes names
    _tone(tmp_path / "c.wav")
    (tmp_path / "m.csv").write_text(
        "# scale: 1-9\npath;valence;arousal\n"
        "sub dir\\Ä song.wav;9;1\n"  # a Windows-style separator
        + unicodedata.normalize("NFC", "café.wav")
        + ";5,5;5\n"
        f"file://{tmp_path / 'c.wav'};1;9\n",
        encoding="utf-8",
    )
    lib, warns = _load(tmp_path / "m.csv")
    assert not warns
    assert [Path(t.path).name for t in lib.tracks] == [
        "Ä song.wav",
        unicodedata.normalize("NFD", "café.wav"),
        "c.wav",
    ]
    assert [t.id for t in lib.tracks][0] == "Ä song"
    np.testing.assert_allclose(
        [(t.valence, t.arousal) for t in lib.tracks], [(1.0, -1.0), (0.125, 0.0), (-1.0, 1.0)]
    )
    # Excel's European export: a "sep=;" first line, decimal commas, commas inside titles.
    (tmp_path / "excel.csv").write_bytes(
        b"sep=;\r\npath;valence;arousal;title\r\nc.wav;0,5;-0,25;A, B\r\n"
    )
    lib, _ = _load(tmp_path / "excel.csv")
    assert [(t.title, t.valence, t.arousal) for t in lib.tracks] == [("A, B", 0.5, -0.25)]
    # A file:// URL outside the folder is refused like any other outside path.
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "m.csv").write_text(f"path,valence,arousal\nfile://{tmp_path}/c.wav,0,0\n")
    with pytest.raises(LibraryError, match="row 2.*outside"):
        load_library(tmp_path / "in" / "m.csv")


def test_manifest_wrong_scale_hint_and_duplicate_paths(tmp_path: Path) -> None:
    from moodsic_engine.config import MatchConfig
    from moodsic_engine.library.match import match_segments

    _tone(tmp_path / "a.wav")
    _tone(tmp_path / "b.wav", freq=440)
    # 1..9 values in a manifest that states no scale: the error says which scale would fit.
    (tmp_path / "deam.csv").write_text("path,valence,arousal\na.wav,3.1,7\nb.wav,6,2\n")
    with pytest.raises(LibraryError, match=r"outside its scale -1..1.*fit 1..7.*scale"):
        load_library(tmp_path / "deam.csv")
    # The same file listed three times: kept, warned about, never played back to back.
    (tmp_path / "dup.csv").write_text(
        "path,valence,arousal\na.wav,0.1,0.1\n./a.wav,0.12,0.1\nb.wav,0.9,0.9\na.wav,0.11,0.1\n"
    )
    lib, warns = _load(tmp_path / "dup.csv")
    assert len(lib.tracks) == 4
    assert any("row 3 (as row 2)" in w and "row 5 (as row 2)" in w for w in warns)
    seg = np.full((4, 2), 0.1)
    ids = [
        Path(c.path).name
        for c in match_segments(lib, seg, lib.clusters.posterior(seg), MatchConfig(), 0)
    ]
    assert ids == ["a.wav", "b.wav", "a.wav", "b.wav"]


# ----------------------------------------------------------------------------- audio folders
def _music(path: Path, seconds: float, sr: int, channels: int = 2, freq: float = 220.0) -> Path:
    """A chord with clicks on a 120 BPM beat: enough for tempo, key and onsets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.2 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * freq * 1.25 * t)
    y = y + (np.mod(t, 0.5) < 0.02) * 0.4 * np.sin(2 * np.pi * 3000 * t)
    sf.write(str(path), np.repeat(y[:, None], channels, axis=1).astype(np.float32), sr)
    return path


def test_audio_folder_formats_rates_and_a_single_file(tmp_path: Path) -> None:
    """AAC among WAV (8 kHz mono, 6 channels) and FLAC, a silent and a garbage file: each
    usable file gets an estimate; the skipped ones are named with the reason. A single audio
    file is a library of one."""
    import subprocess

    folder = tmp_path / "songs"
    _music(folder / "mono8k.wav", 2.0, 8000, 1)
    _music(folder / "six.wav", 2.0, 32000, 6, 330)
    _music(folder / "deep" / "er" / "b.flac", 2.0, 48000, 2, 262)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(folder / "six.wav"), "-ac", "2",
         "-c:a", "aac", str(folder / "c.aac")],
        check=True,
    )  # fmt: skip
    sf.write(str(folder / "quiet.wav"), np.zeros(SR * 2, np.float32), SR)
    (folder / "junk.mp3").write_bytes(b"\xff\xfb\x90" + bytes(range(256)) * 8)
    lib, warns = _load(folder)
    assert sorted(t.title for t in lib.tracks) == ["b", "c", "mono8k", "six"]
    assert all(t.va_source == "estimated" and -1 <= t.valence <= 1 for t in lib.tracks)
    assert {t.title: round(t.duration_s, 1) for t in lib.tracks}["mono8k"] == 2.0
    assert any("junk.mp3" in w and "quiet.wav (silent)" in w for w in warns)
    assert not any("n_fft" in w for w in warns)  # librosa's notes stay inside
    one, warns = _load(folder / "mono8k.wav")
    assert [t.title for t in one.tracks] == ["mono8k"] and one.kind == "audio"
    assert not warns


def test_damaged_mp3_is_one_clean_line_on_the_cli(tmp_path: Path) -> None:
    """libmpg123 (inside libsndfile) prints resync notes for a damaged MP3 straight to file
    descriptor 2: they must not surround Moodsic's one-line warning or error."""
    import subprocess
    import sys

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "x.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    cmd = [sys.executable, "-m", "moodsic_engine.cli", "library", "info", str(folder)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"moodsic: error: {folder}: none of its 1 audio file(s) could be used (x.mp3)"
    ]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc for an uncreatable folder")
def test_read_only_library_with_no_usable_cache_still_loads(tmp_path: Path) -> None:
    """The folder is read-only and the user cache cannot be created either: the index is
    simply not cached (it was an InputError 'cannot write .../index/....json')."""
    folder = tmp_path / "lib"
    _tone(folder / "a.wav")
    (folder / "m.csv").write_text("path,valence,arousal\na.wav,0.2,0.3\n")
    folder.chmod(0o555)
    try:
        for _ in range(2):
            lib = load_library(folder / "m.csv", cache_dir=Path("/proc/no-such-moodsic-cache"))
            np.testing.assert_allclose([(t.valence, t.arousal) for t in lib.tracks], [(0.2, 0.3)])
        assert sorted(p.name for p in folder.iterdir()) == ["a.wav", "m.csv"]
    finally:
        folder.chmod(0o755)


# ----------------------------------------------------------------------------- large tables
def test_large_va_table_is_held_as_columns_with_the_same_tracks(tmp_path: Path) -> None:
    """A V/A table (no audio) of many rows loads vectorised into a TrackTable (a million-row
    table took ~50 s and 200 MB of index as one Track object per row) and gives exactly the
    tracks, clusters and matches of the row-by-row loader; its index is columnar."""
    import json

    import pandas as pd

    from moodsic_engine.config import MatchConfig
    from moodsic_engine.library import TrackTable
    from moodsic_engine.library import manifest as manifest_loader
    from moodsic_engine.library.match import match_segments

    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame(
        {
            "musicId": np.arange(n) * 2 + 1,
            "Valence": rng.uniform(1, 9, n).round(3),
            "Arousal": rng.uniform(1, 9, n).round(3),
            "artist": ["A"] * (n - 1) + [None],
            "song_title": [f"t{i}" for i in range(n - 1)] + [""],
        }
    )
    df.to_parquet(tmp_path / "t.parquet")
    (tmp_path / "t.csv").write_text("# scale: 1-9\n" + df.to_csv(index=False))
    seg = np.array([[0.2, -0.3], [0.6, 0.6], [-0.5, 0.1]])
    cfg = MatchConfig(max_clusters=3)  # fewer BIC candidates: the test is about loading
    for name, scale in (("t.parquet", None), ("t.csv", "1-9")):
        if scale is None:  # the parquet states no scale: values go to the reference scale
            df.assign(Valence=(df.Valence - 5) / 4, Arousal=(df.Arousal - 5) / 4).to_parquet(
                tmp_path / name
            )
        fast = load_library(tmp_path / name, cache_dir=tmp_path / "c1", match_config=cfg)
        assert isinstance(fast.tracks, TrackTable)
        index = json.loads((tmp_path / f".{name}.moodsic-index.json").read_text())
        assert "table" in index and "tracks" not in index
        cached = load_library(tmp_path / name, cache_dir=tmp_path / "c1", match_config=cfg)
        assert isinstance(cached.tracks, TrackTable)
        (tmp_path / f".{name}.moodsic-index.json").unlink()
        old = manifest_loader.TABLE_ROWS
        manifest_loader.TABLE_ROWS = 10**9  # the row-by-row loader, for comparison
        try:
            slow = load_library(tmp_path / name, cache_dir=tmp_path / "c2", match_config=cfg)
        finally:
            manifest_loader.TABLE_ROWS = old
        (tmp_path / f".{name}.moodsic-index.json").unlink()
        assert isinstance(slow.tracks, tuple)
        assert list(fast.tracks) == list(cached.tracks) == list(slow.tracks)
        assert fast.tracks[0].id == "1" and fast.tracks[-1].title == str(2 * n - 1)
        assert fast.clusters.slugs == slow.clusters.slugs
        np.testing.assert_array_equal(fast.va, slow.va)
        picks = [
            [c.id for c in match_segments(lib, seg, lib.clusters.posterior(seg), cfg)]
            for lib in (fast, cached, slow)
        ]
        assert picks[0] == picks[1] == picks[2]


def test_folder_with_one_va_table_is_a_manifest_library(tmp_path: Path) -> None:
    """A folder of music with its labels in `tracks.csv` (not named manifest.csv) uses them;
    it was loaded as unlabelled audio, the user's V/A silently replaced by estimates."""
    _tone(tmp_path / "a.wav")
    (tmp_path / "notes.csv").write_text("when,what\n2024,bought\n")  # not a V/A table
    (tmp_path / "tracks.csv").write_text("path,valence,arousal\na.wav,-0.8,-0.7\n")
    lib, _ = _load(tmp_path)
    assert lib.kind == "manifest"
    assert [(t.va_source, t.valence, t.arousal) for t in lib.tracks] == [("manifest", -0.8, -0.7)]
    (tmp_path / "more.json").write_text('{"tracks": [{"path": "a.wav", "v": 0.1, "a": 0.1}]}')
    lib, _ = _load(tmp_path)  # two V/A tables: ambiguous, the audio is estimated as before
    assert lib.kind == "audio"


def test_audio_folder_rebuild_estimates_only_new_or_changed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding a song to an estimated folder re-estimated every file (seconds each)."""
    import os

    from moodsic_engine.library import estimate

    folder = tmp_path / "songs"
    for name, f in (("a", 220.0), ("b", 330.0)):
        _music(folder / f"{name}.wav", 2.0, SR, 1, f)
    seen: list[str] = []

    def counting(path):  # noqa: ANN001, ANN202 - a stand-in: librosa is not under test here
        seen.append(Path(path).name)
        info = sf.info(str(path))
        return estimate.Estimate(0.1 * len(seen), -0.2, info.duration, 120.0, {})

    monkeypatch.setattr(estimate, "estimate_va", counting)
    first, _ = _load(folder, cache_dir=tmp_path / "cache")
    assert sorted(seen) == ["a.wav", "b.wav"]
    seen.clear()
    _music(folder / "c.wav", 2.0, SR, 1, 440.0)
    second, _ = _load(folder, cache_dir=tmp_path / "cache")
    assert seen == ["c.wav"] and len(second.tracks) == 3
    by_title = {t.title: t for t in second.tracks}
    for t in first.tracks:
        assert by_title[t.title] == t  # reused exactly
    seen.clear()
    _music(folder / "a.wav", 3.0, SR, 1, 262.0)  # changed content
    st = (folder / "a.wav").stat()
    os.utime(folder / "a.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third, _ = _load(folder, cache_dir=tmp_path / "cache")
    assert seen == ["a.wav"]
    assert {t.title: t for t in third.tracks}["a"].duration_s == pytest.approx(3.0)


def test_long_aac_estimate_decodes_one_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libsndfile cannot read AAC: the ffmpeg fallback decoded the whole file (an hour-long
    file would be ~600 MB of samples) only to keep its first minute."""
    import subprocess

    from moodsic_engine import ffmpeg
    from moodsic_engine.library import estimate
    from moodsic_engine.library.estimate import estimate_va

    src = tmp_path / "long.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i",
         "sine=frequency=330:duration=150:sample_rate=8000", "-c:a", "aac", "-b:a", "32k",
         str(src)],
        check=True,
    )  # fmt: skip
    decoded: list[float] = []
    real = ffmpeg.decode_audio

    def spy(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        y = real(*args, **kw)
        decoded.append(len(y) / args[1])
        return y

    monkeypatch.setattr(ffmpeg, "decode_audio", spy)
    monkeypatch.setattr(  # the features are not under test: skip librosa's numba warm-up
        estimate, "features",
        lambda y, sr=22050: {"tempo_bpm": 100.0, "onset_rate": 2.0, "mode": 0.0,
                             "centroid_hz": 1500.0, "rms_db": -20.0},
    )  # fmt: skip
    est = estimate_va(src)
    assert est.duration_s == pytest.approx(150.0, abs=0.5)
    assert decoded and max(decoded) <= 60.5


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc for an uncreatable folder")
def test_builtin_library_without_a_writable_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in pieces are rendered into the cache; an uncreatable cache was a
    FileNotFoundError traceback. They now go to a private per-user temp folder."""
    import tempfile

    from moodsic_engine.library import builtin

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(builtin, "PIECES", builtin.PIECES[:2])  # rendering all takes seconds
    lib = load_library("builtin", cache_dir=Path("/proc/no-such-moodsic-cache"))
    assert len(lib.tracks) == 2
    assert all(Path(t.path).is_file() and Path(t.path).is_relative_to(tmp_path) for t in lib.tracks)
    assert (next(tmp_path.glob("moodsic-*")).stat().st_mode & 0o777) == 0o700


def test_phase_inverted_stereo_is_not_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left = -right cancels in a plain mono average: loud music was skipped as 'silent'."""
    from moodsic_engine.library import estimate

    t = np.arange(2 * SR) / SR
    y = 0.3 * np.sin(2 * np.pi * 330 * t)
    sf.write(str(tmp_path / "anti.wav"), np.stack([y, -y], axis=1).astype(np.float32), SR)
    seen: list[float] = []

    def fake_features(mono, sr=SR):  # noqa: ANN001, ANN202 - librosa is not under test
        seen.append(float(np.abs(mono).max()))
        return {"tempo_bpm": 100.0, "onset_rate": 2.0, "mode": 0.0, "centroid_hz": 1500.0,
                "rms_db": -20.0}  # fmt: skip

    monkeypatch.setattr(estimate, "features", fake_features)
    est = estimate.estimate_va(tmp_path / "anti.wav")
    assert est.duration_s == pytest.approx(2.0) and seen[0] == pytest.approx(0.3, abs=0.01)


def test_manifest_track_without_an_audio_stream_is_skipped(tmp_path: Path) -> None:
    """A video with no sound listed as a track passed ffprobe's container duration and was
    kept, only to fail at mixdown ("cannot read audio file")."""
    import subprocess

    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i",
         "testsrc=size=64x64:rate=10:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         str(tmp_path / "mute.mp4")],
        check=True,
    )  # fmt: skip
    _tone(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("path,valence,arousal\nmute.mp4,0.1,0.1\na.wav,0.2,0.2\n")
    lib, warns = _load(tmp_path / "m.csv")
    assert [t.title for t in lib.tracks] == ["a"]
    assert any("unreadable" in w and "mute.mp4" in w for w in warns)
