"""A tiny randomly initialised open_clip model for tests and demos of the scene expert.

Registers a small model config with open_clip (no download) and writes its random
weights as a local checkpoint, so the real loading path (`pretrained` = a file) is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TINY_MODEL = "moodsic-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_tiny_model(folder: str | Path) -> str:
    """Write the config JSON into `folder` and register it with open_clip; returns the name."""
    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg_path = folder / f"{TINY_MODEL}.json"
    if TINY_MODEL not in open_clip.list_models() or not cfg_path.is_file():
        cfg_path.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
        open_clip.add_model_config(cfg_path)
    return TINY_MODEL


def make_tiny_checkpoint(
    folder: str | Path, seed: int = 0, name: str = "tiny-clip.safetensors"
) -> Path:
    """Register the tiny model and save a random-initialised checkpoint of it; returns its path."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    register_tiny_model(folder)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_MODEL, pretrained=None)
    path = folder / name
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def synthetic_scene(
    va: tuple[float, float], size: tuple[int, int] = (48, 64), seed: int = 0
) -> np.ndarray:
    """An RGB uint8 image whose look follows (V, A) on the reference scale: valence sets
    warmth and brightness, arousal sets contrast and high-frequency texture."""
    rng = np.random.default_rng(seed)
    v, a = float(va[0]), float(va[1])
    h, w = size
    base = np.array([0.5 + 0.3 * v, 0.45 + 0.1 * v, 0.5 - 0.3 * v]) * (0.6 + 0.3 * v)
    yy, xx = np.mgrid[0:h, 0:w]
    freq = 0.15 + 0.6 * (a + 1) / 2
    pattern = np.sin(xx * freq + rng.uniform(0, 6)) * np.cos(yy * freq * 0.7)
    img = base[None, None, :] + (0.05 + 0.3 * (a + 1) / 2) * pattern[..., None]
    img = img + rng.normal(0, 0.02 + 0.05 * (a + 1) / 2, size=(h, w, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
