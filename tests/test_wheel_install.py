"""The wheel a user installs: built from the sources, installed into a fresh virtual
environment, and run from a folder outside the source tree.

How, and why it is honest without reinstalling torch (GBs, minutes):
- the wheel is built (`pip wheel --no-deps --no-build-isolation`) from a copy of the
  packaged sources, so the build leaves nothing in the checkout;
- it is installed with `--no-deps` into a new venv made `--without-pip`;
- that venv sees the test environment's third-party packages through one `.pth` line naming
  its site-packages. A path added that way is not a site folder, so the `.pth` files inside it
  (among them the editable install's hook that maps `moodsic_engine` to the checkout) are not
  run: only the wheel's copy of Moodsic can be imported, which the tests assert;
- the commands run with the venv's own `moodsic` script, from a temporary folder, without
  PYTHONPATH or MOODSIC_ADDON_SOURCE.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("moodsic_engine", "otio_adapter", "blender_addon")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PACKAGES:
        shutil.copytree(REPO / name, src / name, ignore=junk)
    dist = base / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(dist)],
        cwd=src, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = dist.glob("moodsic-*.whl")

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deps = sysconfig.get_paths()["purelib"]  # this environment's third-party packages
    Path(purelib, "moodsic-test-deps.pth").write_text(deps + "\n", encoding="utf-8")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    run_dir = base / "elsewhere"
    run_dir.mkdir()
    return {"wheel": wheel, "venv": venv, "site": Path(purelib), "run": run_dir}


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MOODSIC_ADDON_SOURCE")}
    env["TMPDIR"] = str(tmp)
    env["HF_HUB_OFFLINE"] = "1"  # as offline as a fresh user without weights
    return env


def test_wheel_carries_every_source_and_the_addon(installed: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", *PACKAGES], cwd=REPO, capture_output=True, text=True
    )
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    wanted = {
        f for f in tracked.stdout.split() if not f.startswith("moodsic_engine/assets/")
    }  # the README's picture is not needed at run time
    assert wanted - names == set()
    assert "blender_addon/blender_manifest.toml" in names


def test_installed_wheel_imports_itself_and_builds_the_addon(
    installed: dict[str, Path], tmp_path: Path
) -> None:
    py = installed["venv"] / "bin" / "python"
    where = subprocess.run(
        [str(py), "-c", "import moodsic_engine, otio_adapter\n"
         "from moodsic_engine.blender_build import addon_source\n"
         "print(moodsic_engine.__file__); print(otio_adapter.__file__); print(addon_source())"],
        cwd=installed["run"], env=_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr[-2000:]
    for line in where.stdout.split():
        assert Path(line).is_relative_to(installed["site"]), line  # never the checkout

    res = subprocess.run(
        [str(installed["venv"] / "bin" / "moodsic"), "blender", "build-addon", "-o", "addon"],
        cwd=installed["run"], env=_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    (built,) = (installed["run"] / "addon").glob("moodsic-*.zip")
    assert res.stdout.strip().endswith(built.name)
    # The same bytes as the zip built from the checkout: nothing lost on the way.
    from moodsic_engine.blender_build import build_addon

    reference = build_addon(tmp_path / "ref", source=REPO / "blender_addon")
    assert built.read_bytes() == reference.read_bytes()
    assert "blender_manifest.toml" in zipfile.ZipFile(built).namelist()
    assert os.listdir(tmp_path) == ["ref"]  # no temp files left


@pytest.mark.slow
def test_installed_wheel_runs_the_demo(installed: dict[str, Path], tmp_path: Path) -> None:
    """`moodsic demo` end to end from the installed wheel (about 1-2 minutes on 2 cores)."""
    from moodsic_engine.cue import CueSheet

    tmp = tmp_path / "sys-tmp"
    tmp.mkdir()
    out = installed["run"] / "demo"
    res = subprocess.run(
        [str(installed["venv"] / "bin" / "moodsic"), "demo", "-o", "demo", "--progress", "none"],
        cwd=installed["run"], env=_env(tmp), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    expected = {"demo.mp4", "demo.moodsic.json", "demo-mix.wav", "demo-bed.wav",
                "demo-scored.mp4", "demo-plot.png"}  # fmt: skip
    assert set(os.listdir(out)) == expected
    cue = CueSheet.from_json(out / "demo.moodsic.json")
    assert cue.segments[-1].end_frame == cue.video.frames and len(cue.segments) >= 2
    # no work folder left (the built-in library's moodsic-UID fallback is a cache, not one;
    # torch keeps its own caches there too)
    ours = [p for p in os.listdir(tmp) if p.startswith(("moodsic", ".moodsic", "tmp"))]
    assert [p for p in ours if p != f"moodsic-{os.getuid()}"] == []
