"""`moodsic batch --mix --mux` records each clip's mix levels as `moodsic score --mix` does:
`summary.levels` in the cue sheet (measured against the written mix), and the mix loudness,
true peak and "louder than the target" flag in batch.jsonl / batch.csv."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from moodsic_engine import mix
from moodsic_engine.batch import run_batch
from moodsic_engine.config import Config
from moodsic_engine.cue import CueSheet

SR = 48000


def _clip(path: Path, seconds: float, volume_db: float, freq: int) -> Path:
    """A small H.264 clip with a sine at `volume_db` relative to lavfi's default (-18 dBFS)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds},volume={volume_db}dB",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "192k", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _library(folder: Path) -> Path:
    """Three 4 s tracks (pulsed noise, distinct levels) in a JSON manifest across the V/A plane."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    tracks = []
    for k, (v, a) in enumerate([(-0.6, -0.4), (0.1, 0.2), (0.7, 0.6)]):
        t = np.arange(4 * SR) / SR
        pulse = 0.5 + 0.5 * (np.sin(2 * np.pi * 2.0 * t) > 0)
        y = (0.1 * (k + 1)) * pulse * rng.standard_normal(len(t))
        sf.write(folder / f"t{k}.wav", np.stack([y, y], axis=1).astype(np.float32), SR)
        tracks.append({"path": f"t{k}.wav", "valence": v, "arousal": a, "title": f"T{k}"})
    manifest = folder / "lib.json"
    manifest.write_text(json.dumps({"scale": "ref", "tracks": tracks}), encoding="utf-8")
    return manifest


@pytest.mark.slow
def test_batch_cue_sheets_and_summaries_carry_the_mix_levels(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    _clip(root / "quiet.mp4", 2.5, -30.0, 330)  # room tone, far under the target
    _clip(root / "loud.mp4", 2.5, 14.0, 440)  # the video's own sound over the -14 LUFS target
    out = tmp_path / "out"
    result = run_batch(
        root,
        out,
        config=Config(experts=("grammar",)),
        library=str(_library(tmp_path / "lib")),
        workers=1,
        mix=True,
        mux=True,
        contact_sheet=False,
    )
    assert result.count("ok") == 2, [r.get("error") for r in result.records]

    rows = {Path(r["input"]).stem: r for r in map(json.loads, (out / "batch.jsonl").open())}
    with (out / "batch.csv").open(newline="") as fh:
        csv_rows = {Path(r["input"]).stem: r for r in csv.DictReader(fh)}
    for name in ("quiet", "loud"):
        cue = CueSheet.from_json(out / f"{name}.moodsic.json")  # schema-valid with levels
        levels = cue.summary["levels"]
        for key in ("dialogue_lufs", "music_gain_db", "mix_lufs", "mix_true_peak_dbtp",
                    "mix_lra_lu", "original_lufs", "warnings"):  # fmt: skip
            assert key in levels, key
        written, sr = sf.read(out / f"{name}.mix.wav", dtype="float32", always_2d=True)
        assert sr == SR
        lufs = mix.integrated_lufs(written, sr)
        tp = 20 * np.log10(float(mix.true_peak(written).max()))
        assert levels["mix_lufs"] == pytest.approx(lufs, abs=0.5)
        assert levels["mix_true_peak_dbtp"] == pytest.approx(tp, abs=0.5)
        assert tp <= levels["ceiling_dbtp"] + 0.3
        row = rows[name]
        assert row["mix_lufs"] == levels["mix_lufs"]
        assert row["mix_true_peak_dbtp"] == levels["mix_true_peak_dbtp"]
        assert row["level_warnings"] == levels["warnings"]
        assert float(csv_rows[name]["mix_lufs"]) == pytest.approx(levels["mix_lufs"], abs=0.01)
        assert (out / f"{name}.scored.mp4").is_file()

    quiet = CueSheet.from_json(out / "quiet.moodsic.json").summary["levels"]
    loud = CueSheet.from_json(out / "loud.moodsic.json").summary["levels"]
    # The room tone (about -51 LUFS) stays where it is; the music brings the mix to the target.
    assert quiet["original_lufs"] < -40 and quiet["mix_lufs"] == pytest.approx(-14.0, abs=0.5)
    assert rows["quiet"]["louder_than_target"] is False
    assert csv_rows["quiet"]["louder_than_target"] == "false"
    # The loud original (about -7 LUFS) is not turned down: flagged in every summary.
    assert loud["original_lufs"] > -14.0 + 3
    assert rows["loud"]["louder_than_target"] is True
    assert csv_rows["loud"]["louder_than_target"] == "true"
    assert any("louder than the target" in w for w in rows["loud"]["level_warnings"])
    assert "louder than the target" in csv_rows["loud"]["level_warnings"]
