"""The scene expert's content-change gate: skip the image encoder on samples whose picture
barely changed since the last encoded one.

Each working frame is reduced to a grey thumbnail (every 8th pixel, 28x50 at the default
224 px working height); a sample whose thumbnail differs from the last ENCODED sample's by
at most `change` (mean absolute difference, 0..1) reuses that sample's embedding, for at
most `max_gap_s` seconds, after which it is encoded whatever it shows. Comparing with the
last encoded sample, not the previous one, keeps a slow drift from creeping past the gate.
`change` 0 turns the gate off: every sample is encoded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

STRIDE = 8  # thumbnail: every 8th pixel of the working frame


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 -> [H/8, W/8] float32 grey in [0, 1]."""
    return frame[::STRIDE, ::STRIDE].mean(axis=-1, dtype=np.float32) / np.float32(255.0)


class SkipGate:
    """Decides, sample by sample, which frames of a clip the encoder sees (see module doc)."""

    def __init__(self, change: float, max_gap_s: float) -> None:
        self.change = float(change)
        self.max_gap_s = float(max_gap_s)
        self.reset()

    def reset(self) -> None:
        """Forget the previous clip; the counters start again."""
        self._ref: np.ndarray | None = None
        self._ref_t = -math.inf
        self._last_t = -math.inf
        self._last_emb: np.ndarray | None = None
        self.encoded = 0
        self.samples = 0

    def plan(self, batch: Any) -> tuple[list[int], list[int]]:
        """(source, todo): `todo` are the batch rows to encode; `source[i]` is the index in
        `todo` whose embedding sample i takes, or -1 for the last encoded embedding of an
        earlier batch."""
        n = len(batch)
        if batch.index0 == 0 or (n and float(batch.times[0]) < self._last_t):
            self.reset()
        slot = -1  # the reference is the previous batch's last encoded sample
        source: list[int] = []
        todo: list[int] = []
        for i in range(n):
            t = float(batch.times[i])
            self._last_t = t
            self.samples += 1
            thumb = thumbnail(batch.frames[i])
            ref = self._ref
            if (
                self.change > 0
                and ref is not None
                and ref.shape == thumb.shape
                and (slot >= 0 or self._last_emb is not None)
                and t - self._ref_t <= self.max_gap_s
                and float(np.mean(np.abs(thumb - ref))) <= self.change
            ):
                source.append(slot)
                continue
            todo.append(i)
            slot = len(todo) - 1
            source.append(slot)
            self._ref, self._ref_t = thumb, t
            self.encoded += 1
        return source, todo

    def assemble(self, source: list[int], todo: list[int], fresh: np.ndarray | None) -> np.ndarray:
        """Embeddings [n, D] for the batch from the encoded rows `fresh` [len(todo), D]."""
        rows = [fresh[j] if j >= 0 and fresh is not None else self._last_emb for j in source]
        if todo and fresh is not None:
            self._last_emb = np.asarray(fresh[-1], dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)
