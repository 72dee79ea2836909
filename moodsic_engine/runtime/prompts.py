"""Zero-shot prompt embeddings, computed once per CLIP weights and kept on disk.

The text tower of ViT-B-32 costs seconds per run on 2 cores (two dozen 77-token prompts)
and its answer only changes with the weights or the prompts, so both are in the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import cache

KIND = "prompts"


@dataclass(frozen=True)
class PromptEmbeddings:
    """Unit-norm text embeddings per axis ([P, D] float32), the score of each prompt ([P]
    float32, reference scale) and CLIP's logit scale (exp, clamped to 100)."""

    text: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    logit_scale: float


def prompts_key(weights_id: list[Any], prompt_sets: dict[str, Any]) -> str:
    """`weights_id`: what identifies the encoder (model name, weights fingerprint, config)."""
    return cache.cache_key("prompts", weights_id, prompt_sets)


def load_prompts(key: str) -> PromptEmbeddings | None:
    """The cached embeddings for `key`, or None (absent or unreadable: recomputed)."""
    path = cache.entry(KIND, key) / "prompts.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            axes = [str(a) for a in z["axes"]]
            text = {a: np.asarray(z[f"text_{a}"], dtype=np.float32) for a in axes}
            scores = {a: np.asarray(z[f"scores_{a}"], dtype=np.float32) for a in axes}
            scale = float(z["logit_scale"])
    except (OSError, KeyError, ValueError):
        return None
    return PromptEmbeddings(text, scores, scale)


def save_prompts(key: str, prompts: PromptEmbeddings) -> Path:
    """Write the embeddings atomically under `key`; returns the file."""
    from ..fileio import atomic_path

    folder = cache.entry(KIND, key)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / "prompts.npz"
    arrays: dict[str, Any] = {
        "axes": np.array(sorted(prompts.text)),
        "logit_scale": np.float64(prompts.logit_scale),
    }
    for a in prompts.text:
        arrays[f"text_{a}"] = prompts.text[a]
        arrays[f"scores_{a}"] = prompts.scores[a]
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **arrays)
    return path
