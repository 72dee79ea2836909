"""FindingEmo data: the annotation file and image URL list from the `findingemo-light`
package, a split by image, image loading, and a generated mini dataset for tests.

FindingEmo annotations are licensed CC BY-NC-SA 4.0 (Mertens et al., KU Leuven); a head
trained on them inherits the non-commercial, share-alike terms. The images are not part
of the package: only their URLs (see `download.py`).
Scales: valence -3..3, arousal 0..6 (FindingEmo units); converted to the reference
[-1, 1] with `moodsic_engine.scales` at this edge.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .. import scales
from ..errors import InputError, ResourceError

LICENSE = "FindingEmo annotations: CC BY-NC-SA 4.0 (findingemo-light); non-commercial, share-alike"
ANNOTATION_COLUMNS = (
    "index", "user", "image_path", "tags", "age", "valence", "arousal",
    "emotion", "dec_factors", "ambiguity", "datetime",
)  # fmt: skip
V_RANGE = (-3, 3)
A_RANGE = (0, 6)


def _package_file(name: str) -> Path:
    try:
        root = resources.files("findingemo_light") / "data" / name
    except ModuleNotFoundError:
        raise ResourceError(
            "the findingemo-light package is not installed (pip install 'moodsic[train]' or findingemo-light)"
        ) from None
    path = Path(str(root))
    if not path.is_file():
        raise ResourceError(f"findingemo-light does not ship {name} (found {path.parent})")
    return path


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("findingemo-light")
    except Exception:  # noqa: BLE001 - only informative
        return "unknown"


def annotation_file() -> Path:
    return _package_file("annotations_single.ann")


def url_file() -> Path:
    return _package_file("dataset_urls_exploded.json")


def read_annotations(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """One row per image: rel_path, valence, arousal (FindingEmo units, mean over annotators),
    v_ref, a_ref (reference scale), n_annotations, emotion (the first annotator's label).

    `path` defaults to the file shipped in `findingemo-light`. Rows with values outside the
    published ranges are an error, not silently dropped.
    """
    p = Path(path) if path else annotation_file()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"annotation file not found: {p}") from None
    except UnicodeDecodeError:
        raise InputError(f"annotation file {p} is not UTF-8 text") from None
    try:
        df = pd.read_csv(io.StringIO(text), dtype={"image_path": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"annotation file {p} is not a FindingEmo CSV: {exc}") from None
    missing = [c for c in ("image_path", "valence", "arousal") if c not in df.columns]
    if missing:
        raise InputError(f"annotation file {p} lacks column(s) {', '.join(missing)}")
    v = pd.to_numeric(df["valence"], errors="coerce")
    a = pd.to_numeric(df["arousal"], errors="coerce")
    bad = (
        v.isna()
        | a.isna()
        | (v < V_RANGE[0])
        | (v > V_RANGE[1])
        | (a < A_RANGE[0])
        | (a > A_RANGE[1])
    )
    if bool(bad.any()):
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"annotation file {p}: row {row + 2} has valence/arousal outside -3..3 / 0..6 "
            f"({df['valence'].iloc[row]!r}, {df['arousal'].iloc[row]!r})"
        )
    unsafe = df["image_path"].astype(str).map(lambda s: ".." in s.replace("\\", "/").split("/"))
    if bool(unsafe.any()):
        row = int(np.flatnonzero(unsafe.to_numpy())[0])
        raise InputError(f"annotation file {p}: row {row + 2} has an image path with '..' in it")
    df = df.assign(valence=v.astype(float), arousal=a.astype(float))
    emotion = df["emotion"] if "emotion" in df.columns else pd.Series([""] * len(df))
    grouped = df.assign(emotion=emotion.fillna("")).groupby("image_path", sort=True)
    out = pd.DataFrame(
        {
            "valence": grouped["valence"].mean(),
            "arousal": grouped["arousal"].mean(),
            "n_annotations": grouped.size(),
            "emotion": grouped["emotion"].first(),
        }
    ).reset_index(names="rel_path")
    out["v_ref"] = scales.findingemo_valence_to_ref(out["valence"].to_numpy())
    out["a_ref"] = scales.findingemo_arousal_to_ref(out["arousal"].to_numpy())
    return out


def read_urls(path: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
    """rel_path -> candidate URLs in the published order (idx_url)."""
    p = Path(path) if path else url_file()
    try:
        rows = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"URL list not found: {p}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"URL list {p} is not JSON: {exc}") from None
    urls: dict[str, list[tuple[int, str]]] = {}
    for row in rows:
        urls.setdefault(str(row["rel_path"]), []).append(
            (int(row.get("idx_url", 0)), str(row["url"]))
        )
    return {k: [u for _, u in sorted(v)] for k, v in urls.items()}


def local_path(images_root: str | os.PathLike[str], rel_path: str) -> Path:
    """Where an image lives under the download folder; refuses paths that escape it."""
    from ..fileio import resolve_inside

    return resolve_inside(images_root, rel_path.lstrip("/"))


# ----------------------------------------------------------------------------- split
@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row indices into the annotation frame
    val: np.ndarray
    test: np.ndarray
    seed: int


def split_by_image(
    rel_paths: list[str] | np.ndarray,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> Split:
    """Split rows by image: every row of one image lands in the same split. Deterministic for a
    seed and independent of row order (images are sorted before shuffling)."""
    paths = np.asarray(rel_paths, dtype=object)
    images = np.array(sorted(set(paths.tolist())), dtype=object)
    order = np.random.default_rng(seed).permutation(len(images))
    n = len(images)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    which = np.empty(n, dtype=np.int8)
    which[order[:n_train]] = 0
    which[order[n_train : n_train + n_val]] = 1
    which[order[n_train + n_val :]] = 2
    lookup = dict(zip(images.tolist(), which.tolist(), strict=True))
    assign = np.array([lookup[p] for p in paths.tolist()], dtype=np.int8)
    return Split(*(np.flatnonzero(assign == k) for k in range(3)), seed=seed)


# ----------------------------------------------------------------------------- images
def load_image(path: str | os.PathLike[str], short_side: int = 224) -> np.ndarray:
    """RGB uint8 with its short side scaled to `short_side` (what the video sampler hands the
    expert), so training sees frames the way scoring does."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB", (short_side * 2, short_side * 2))  # JPEG: decode at reduced size
            img = img.convert("RGB")
            w, h = img.size
            scale = short_side / min(w, h)
            if scale < 1:
                img = img.resize(
                    (max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC
                )
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"unreadable image {Path(path).name}: {exc}") from None


# ----------------------------------------------------------------------------- mini dataset
def make_mini_findingemo(
    folder: str | os.PathLike[str], n: int = 40, seed: int = 0
) -> tuple[Path, Path]:
    """A generated FindingEmo look-alike: `n` synthetic images whose colour and texture follow
    their V/A, an annotation file in the real CSV format and a URL list in the real JSON format.
    Returns (annotation file, images root)."""
    from PIL import Image

    from ..experts.scene_testing import synthetic_scene

    root = Path(folder)
    images = root / "images"
    rng = np.random.default_rng(seed)
    rows, urls = [], []
    for i in range(n):
        v = int(rng.integers(-3, 4))
        a = int(np.clip(round((v + 3) * 0.5 + rng.normal(1.5, 1.2)), 0, 6))
        rel = f"/Run_{1 + i % 2}/Synthetic {'joyful' if v > 0 else 'gloomy'} scene {i // 10}/img_{i:03d}.jpg"
        img = synthetic_scene(
            (v / 3.0, a / 3.0 - 1.0), size=(72 + 8 * (i % 3), 96), seed=seed * 1000 + i
        )
        dest = images / rel.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(dest, quality=95)
        rows.append(
            {
                "index": i, "user": f"user{i % 5}", "image_path": rel, "tags": "Undefined",
                "age": "Adults", "valence": v, "arousal": a, "emotion": "Joy" if v > 0 else "Sadness",
                "dec_factors": "BodyLanguage", "ambiguity": 0, "datetime": "2023-09-01 00:00:00.000000",
            }
        )  # fmt: skip
        urls.append({"rel_path": rel, "idx_url": 1, "url": f"http://127.0.0.1:9/{i}.jpg"})
    ann = root / "annotations_single.ann"
    pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS)).to_csv(ann, index=False)
    (root / "dataset_urls_exploded.json").write_text(json.dumps(urls), encoding="utf-8")
    return ann, images
