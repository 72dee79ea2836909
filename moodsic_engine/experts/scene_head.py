"""The scene expert's trained head: embedding -> (V, A), Monte-Carlo dropout over the head
only. A module of its own so that importing `experts.scene` does not import torch."""

from __future__ import annotations

from typing import Any

import torch


class SceneHead(torch.nn.Module):
    """Embedding -> (V, A) in [-1, 1]: standardise, two hidden layers with dropout, tanh."""

    def __init__(self, embed_dim: int, hidden: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        self.embed_dim = int(embed_dim)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.fc1 = torch.nn.Linear(embed_dim, hidden)
        self.fc2 = torch.nn.Linear(hidden, hidden)
        self.out = torch.nn.Linear(hidden, 2)
        # Input standardisation and variance calibration travel with the weights.
        self.register_buffer("in_mean", torch.zeros(embed_dim))
        self.register_buffer("in_std", torch.ones(embed_dim))
        self.register_buffer("calibration", torch.ones(2))

    def forward(self, x: Any, p: float | None = None, mc: bool = False) -> Any:
        """x [..., D] -> [..., 2]. Dropout is active when training, or when `mc` is set."""
        F = torch.nn.functional
        p = self.dropout if p is None else p
        drop = self.training or mc
        h = (x - self.in_mean) / self.in_std
        h = F.dropout(F.gelu(self.fc1(h)), p=p, training=drop)
        h = F.dropout(F.gelu(self.fc2(h)), p=p, training=drop)
        return torch.tanh(self.out(h))

    def mc_predict(
        self, emb: Any, passes: int, p: float | None = None, *, calibrated: bool = True
    ) -> tuple[Any, Any]:
        """Monte-Carlo dropout over the head only, all passes in ONE batched op.

        emb [B, D] -> mean [B, 2], variance [B, 2] (times the calibration scale when asked).
        """
        with torch.inference_mode():
            if passes <= 1 or (p if p is not None else self.dropout) <= 0:
                mean = self.forward(emb, p=0.0, mc=False)
                return mean, torch.zeros_like(mean)
            x = emb.unsqueeze(0).expand(passes, *emb.shape)  # [T, B, D], no copy
            y = self.forward(x, p=p, mc=True)  # independent dropout masks per pass
            mean = y.mean(0)
            var = y.var(0, unbiased=True)
            if calibrated:
                var = var * self.calibration
            return mean, var
