import os
import sys
from pathlib import Path

import pytest

# Tests never reach a model hub; open_clip fails fast instead of retrying for ~47 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
# The `moodsic` command lives beside this interpreter (the venv's bin/); tests that run it
# the way users and the Blender add-on do must find it even when the venv is not activated.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEAM_PARQUET = SHARED / "data" / "deam_songs.parquet"


@pytest.fixture(scope="session")
def moodsic_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide cache folder (built-in library audio etc.), isolated from the user's."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _isolated_cache(moodsic_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(moodsic_cache))
    monkeypatch.delenv("MOODSIC_WEIGHTS", raising=False)
