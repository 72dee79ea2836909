"""ONNX Runtime on CPU: availability, sessions, and a checked export from PyTorch.

An export is kept only if ONNX Runtime, fed a probe input, gives PyTorch's outputs within
`TOLERANCE` (fp32); otherwise it is discarded and the model runs on PyTorch. The stored
file is ONNX Runtime's optimised graph (operator fusions, no hardware-specific layouts);
each session adds the layout transforms for the machine it runs on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TOLERANCE = 1e-4  # largest |ONNX Runtime - PyTorch| an export may show on its probe input
OPSET = 17
ENV_DISABLE = "MOODSIC_NO_ONNX"  # set to 1: every model runs on PyTorch


class ExportFailed(RuntimeError):
    """An export that did not work or did not match PyTorch; the caller falls back to it."""


def ort_available(*, for_export: bool = False) -> bool:
    """Whether onnxruntime can be used (and, for an export, the onnx package too)."""
    if os.environ.get(ENV_DISABLE, "").strip() not in ("", "0"):
        return False
    names = ("onnxruntime", "onnx") if for_export else ("onnxruntime",)
    return all(importlib.util.find_spec(n) is not None for n in names)


def default_threads(configured: int = 0) -> int:
    """Threads for one session: the configured count, else torch's when torch is already
    loaded (a batch worker sets it per worker), else every core."""
    if configured > 0:
        return configured
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            return max(1, int(torch.get_num_threads()))
    return max(1, os.cpu_count() or 1)


def session(path: Path, threads: int, *, save_to: Path | None = None) -> Any:
    """An ONNX Runtime CPU session with every optimisation, the hardware-specific layout
    transforms included (EmoNet: ~1.9x faster than without them on 2 cores). `save_to`
    writes the portable part of the optimised graph (fusions, no layouts) there."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # warnings about unused initialisers are not news
    # Idle workers sleep instead of spinning: on 2 shared cores a spinning pool steals the
    # cores from the detector, the decoder and the other session between runs (EmoNet view
    # measured 1.36 -> 0.99 s under load; the same numbers, only the waiting changes).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        if save_to is not None
        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    if save_to is not None:
        so.optimized_model_filepath = str(save_to)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def export_checked(
    module: Any,
    probe: Any,
    folder: Path,
    name: str,
    *,
    input_name: str,
    output_names: Sequence[str],
    reference: Callable[[Any], Sequence[Any]],
    threads: int,
) -> Path:
    """Export `module` (torch, eval mode) to `folder/name`, optimise it, and check it.

    `probe`: an input batch [B, ...] (the batch axis is dynamic); `reference(probe)` gives
    PyTorch's outputs, in `output_names` order, to compare with. Raises ExportFailed.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = folder / f".{name}.raw.onnx"
    final = folder / name
    tmp_final = folder / f".{name}.p{os.getpid()}.onnx"
    try:
        # Grad mode on: with it off, nn.MultiheadAttention takes a fused fast path that the
        # exporter cannot translate.
        with warnings.catch_warnings(), torch.inference_mode(False), torch.enable_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation notes
            torch.onnx.export(
                module,
                (probe,),
                str(raw),
                input_names=[input_name],
                output_names=list(output_names),
                dynamic_axes={n: {0: "batch"} for n in (input_name, *output_names)},
                opset_version=OPSET,
                dynamo=False,
            )
        session(raw, threads, save_to=tmp_final)
        # checked as it will run: the stored graph in a session with every optimisation
        got = session(tmp_final, threads).run(list(output_names), {input_name: probe.numpy()})
        with torch.inference_mode():
            want = [np.asarray(w.detach().float().numpy()) for w in reference(probe)]
        worst = max(
            float(np.max(np.abs(g - w))) if g.size else 0.0 for g, w in zip(got, want, strict=True)
        )
        if not np.isfinite(worst) or worst > TOLERANCE:
            raise ExportFailed(f"ONNX Runtime differs from PyTorch by {worst:.2e}")
        os.replace(tmp_final, final)
    except ExportFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter/runtime failure: fall back to torch
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportFailed(f"{type(exc).__name__}: {first[:200]}") from None
    finally:
        for p in (raw, tmp_final):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return final
