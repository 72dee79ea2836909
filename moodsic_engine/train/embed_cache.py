"""Embedding cache: encode each training image once per encoder, then train heads in seconds.

One cache per encoder in the cache folder: `<slug>.npy` (float32 [N, D], unit-norm
embeddings) and `<slug>.json` (encoder identity, the rel_path of each row, unreadable
images). Both written atomically and saved every few hundred images, so an interrupted
run keeps what it encoded. A cache made by other weights (identity differs) is rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..fileio import atomic_path, write_text_atomic
from ..progress import ProgressFn, no_progress
from .findingemo import load_image, local_path


@dataclass(frozen=True)
class EmbeddedSet:
    rel_paths: list[str]  # rows of `emb`, in the order asked for (images on disk only)
    emb: np.ndarray  # [N, D] float32
    missing: list[str]  # not on disk
    unreadable: list[str]  # on disk but not decodable
    encoded_now: int  # how many were encoded in this call (0: all from the cache)


def cache_slug(encoder_meta: dict) -> str:
    raw = f"{encoder_meta['model']}_{encoder_meta['pretrained']}_{encoder_meta.get('fingerprint', '')[:12]}"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in raw)


def _identity(meta: dict) -> tuple:
    return (
        meta.get("model"),
        meta.get("pretrained"),
        meta.get("fingerprint"),
        meta.get("embed_dim"),
    )


def _load(
    cache_dir: Path, slug: str, encoder_meta: dict, short_side: int
) -> tuple[dict[str, int], np.ndarray, set[str]]:
    index_path, data_path = cache_dir / f"{slug}.json", cache_dir / f"{slug}.npy"
    if not (index_path.is_file() and data_path.is_file()):
        return {}, np.zeros((0, int(encoder_meta["embed_dim"])), np.float32), set()
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        data = np.load(data_path, allow_pickle=False)
    except (OSError, ValueError, json.JSONDecodeError):
        return {}, np.zeros((0, int(encoder_meta["embed_dim"])), np.float32), set()
    same = (
        _identity(index.get("encoder", {})) == _identity(encoder_meta)
        and index.get("short_side") == short_side
    )
    paths = index.get("rel_paths", [])
    if not same or data.ndim != 2 or data.shape[0] < len(paths):
        return {}, np.zeros((0, int(encoder_meta["embed_dim"])), np.float32), set()
    return (
        {p: i for i, p in enumerate(paths)},
        data[: len(paths)].astype(np.float32),
        set(index.get("unreadable", [])),
    )


def _save(
    cache_dir: Path,
    slug: str,
    encoder_meta: dict,
    short_side: int,
    rows: dict[str, int],
    data: np.ndarray,
    unreadable: set[str],
) -> None:
    with atomic_path(cache_dir / f"{slug}.npy") as tmp:
        with tmp.open("wb") as f:
            np.save(f, data.astype(np.float32), allow_pickle=False)
    paths = sorted(rows, key=rows.__getitem__)
    index = {
        "encoder": encoder_meta,
        "short_side": short_side,
        "rel_paths": paths,
        "unreadable": sorted(unreadable),
    }
    write_text_atomic(cache_dir / f"{slug}.json", json.dumps(index))


def embed_dataset(
    encoder,  # noqa: ANN001 - experts.scene.ClipEncoder
    encoder_meta: dict,
    images_root: str | Path,
    rel_paths: list[str],
    cache_dir: str | Path,
    *,
    short_side: int = 224,
    batch_size: int = 16,
    save_every: int = 256,
    progress: ProgressFn = no_progress,
) -> EmbeddedSet:
    """Embeddings for the images of `rel_paths` that are on disk, encoding only new ones."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    slug = cache_slug(encoder_meta)
    rows, data, unreadable = _load(cache_dir, slug, encoder_meta, short_side)
    # Cached rows need no image on disk: heads can be retrained from the cache alone.
    missing = [p for p in rel_paths if p not in rows and not local_path(images_root, p).is_file()]
    missing_set = set(missing)
    todo = [
        p
        for p in dict.fromkeys(rel_paths)
        if p not in rows and p not in unreadable and p not in missing_set
    ]
    chunks: list[np.ndarray] = [data]
    encoded = since_save = 0
    for start in range(0, len(todo), batch_size):
        progress("embed", start, len(todo))
        batch_paths, images = [], []
        for p in todo[start : start + batch_size]:
            try:
                images.append(load_image(local_path(images_root, p), short_side))
                batch_paths.append(p)
            except InputError:
                unreadable.add(p)
        if images:
            emb = encoder.encode_images(images, batch_size=batch_size)
            for p in batch_paths:
                rows[p] = len(rows)
            chunks.append(emb.astype(np.float32))
            encoded += len(images)
            since_save += len(images)
        if since_save >= save_every:
            data = np.concatenate(chunks)
            chunks = [data]
            _save(cache_dir, slug, encoder_meta, short_side, rows, data, unreadable)
            since_save = 0
    data = np.concatenate(chunks)
    if encoded or not (cache_dir / f"{slug}.npy").is_file():
        _save(cache_dir, slug, encoder_meta, short_side, rows, data, unreadable)
    progress("embed", len(todo), len(todo))
    keep = [p for p in rel_paths if p in rows]
    emb = data[[rows[p] for p in keep]] if keep else np.zeros((0, data.shape[1]), np.float32)
    return EmbeddedSet(keep, emb, missing, sorted(unreadable & set(rel_paths)), encoded)
