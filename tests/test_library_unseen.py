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
