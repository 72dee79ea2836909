"""Training the scene head on cached embeddings: early stopping, variance calibration, metrics.

Targets and predictions are on the reference scale [-1, 1]; metrics are reported in
FindingEmo units (converted with `moodsic_engine.scales`) and on the reference scale.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import scales
from ..experts.scene import SceneHead, fit_calibration
from ..progress import ProgressFn, no_progress


@dataclass(frozen=True)
class TrainConfig:
    hidden: int = 256
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 300
    patience: int = 20  # epochs without a better validation MAE before stopping
    seed: int = 0
    mc_passes: int = 20


@dataclass
class TrainedHead:
    head: SceneHead
    train_loss: list[float] = field(default_factory=list)  # per epoch, MSE on the reference scale
    val_mae: list[float] = field(default_factory=list)  # per epoch, mean of V and A MAE (reference)
    best_epoch: int = 0


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: TrainConfig = TrainConfig(),
    progress: ProgressFn = no_progress,
) -> TrainedHead:
    """Fit an MLP head with Adam + MSE; keep the epoch with the best validation MAE; then
    fit the per-dimension variance calibration on the validation set."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    xt = torch.as_tensor(x_train, dtype=torch.float32)
    yt = torch.as_tensor(y_train, dtype=torch.float32)
    xv = torch.as_tensor(x_val, dtype=torch.float32)
    yv = torch.as_tensor(y_val, dtype=torch.float32)
    head = SceneHead(xt.shape[1], cfg.hidden, cfg.dropout)
    head.in_mean.copy_(xt.mean(0))
    head.in_std.copy_(xt.std(0, unbiased=False).clamp_min(1e-6))
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out = TrainedHead(head)
    best = math.inf
    best_state = copy.deepcopy(head.state_dict())
    for epoch in range(cfg.max_epochs):
        progress("train", epoch, cfg.max_epochs)
        head.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = torch.nn.functional.mse_loss(head(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        out.train_loss.append(total / max(len(xt), 1))
        head.eval()
        with torch.no_grad():
            mae = float((head(xv, p=0.0) - yv).abs().mean()) if len(xv) else out.train_loss[-1]
        out.val_mae.append(mae)
        if mae < best - 1e-6:
            best, out.best_epoch = mae, epoch
            best_state = copy.deepcopy(head.state_dict())
        elif epoch - out.best_epoch >= cfg.patience:
            break
    progress("train", cfg.max_epochs, cfg.max_epochs)
    head.load_state_dict(best_state)
    head.eval()
    if len(xv) >= 2:
        mean, var = head.mc_predict(xv, cfg.mc_passes, calibrated=False)
        scale = fit_calibration(var.numpy(), ((mean - yv) ** 2).numpy())
        head.calibration.copy_(torch.as_tensor(scale, dtype=torch.float32))
    return out


def predict_head(head: SceneHead, x: np.ndarray, passes: int) -> tuple[np.ndarray, np.ndarray]:
    """MC-dropout mean and calibrated variance, [N, 2] each, reference scale."""
    mean, var = head.mc_predict(torch.as_tensor(x, dtype=torch.float32), passes)
    return mean.numpy().astype(np.float64), var.numpy().astype(np.float64)


def fit_ridge(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> Any:
    """The linear-probe baseline: ridge regression, strength picked on validation MAE."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a = np.c_[(x_train - mu) / sd, np.ones(len(x_train))]
    best = (math.inf, None)
    for alpha in (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0):
        reg = alpha * np.eye(a.shape[1])
        reg[-1, -1] = 0.0
        w = np.linalg.solve(a.T @ a + reg, a.T @ y_train)

        def predict(x: np.ndarray, w: np.ndarray = w) -> np.ndarray:
            return np.clip(np.c_[(x - mu) / sd, np.ones(len(x))] @ w, -1.0, 1.0)

        mae = float(np.abs(predict(x_val) - y_val).mean()) if len(x_val) else 0.0
        if mae < best[0]:
            best = (mae, predict)
    return best[1]


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    rho = float(spearmanr(a, b).statistic)
    return rho if math.isfinite(rho) else None


def metrics(pred_ref: np.ndarray, y_ref: np.ndarray) -> dict[str, float | None]:
    """V/A MAE and Spearman rho in FindingEmo units, and MAE on the reference scale."""
    pv = scales.ref_to_findingemo_valence(pred_ref[:, 0])
    pa = scales.ref_to_findingemo_arousal(pred_ref[:, 1])
    yv = scales.ref_to_findingemo_valence(y_ref[:, 0])
    ya = scales.ref_to_findingemo_arousal(y_ref[:, 1])
    v_mae, a_mae = float(np.abs(pv - yv).mean()), float(np.abs(pa - ya).mean())
    rv, ra = (float(x) for x in np.abs(pred_ref - y_ref).mean(0))
    return {
        "n": int(len(y_ref)),
        "v_mae": v_mae,
        "a_mae": a_mae,
        "avg_mae": (v_mae + a_mae) / 2,
        "rho_v": _spearman(pv, yv),
        "rho_a": _spearman(pa, ya),
        "v_mae_ref": rv,
        "a_mae_ref": ra,
        "avg_mae_ref": (rv + ra) / 2,
    }


def calibration_check(var: np.ndarray, pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean predicted variance over mean squared error per axis (1.0 = calibrated)."""
    se = ((pred - y) ** 2).mean(0)
    mv = var.mean(0)
    return {
        "var_over_mse_v": float(mv[0] / max(se[0], 1e-12)),
        "var_over_mse_a": float(mv[1] / max(se[1], 1e-12)),
    }
