"""Moodsic engine: video -> emotional arc -> mood segments -> music on a timeline.

Public API (DESIGN.md):

    from moodsic_engine import score_video, load_library, CueSheet, Config

Heavy modules are imported on first use so `moodsic --version` and grammar-only runs
start fast and never import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Config",
    "CueSheet",
    "Segment",
    "SourceSpan",
    "TrackChoice",
    "analyze_spans",
    "load_library",
    "score_video",
    "__version__",
]

_LAZY = {
    "Config": ("moodsic_engine.config", "Config"),
    "CueSheet": ("moodsic_engine.cue", "CueSheet"),
    "Segment": ("moodsic_engine.cue", "Segment"),
    "TrackChoice": ("moodsic_engine.cue", "TrackChoice"),
    "SourceSpan": ("moodsic_engine.spans", "SourceSpan"),
    "analyze_spans": ("moodsic_engine.spans", "analyze_spans"),
    "load_library": ("moodsic_engine.library", "load_library"),
    "score_video": ("moodsic_engine.pipeline", "score_video"),
}

if TYPE_CHECKING:
    from .config import Config
    from .cue import CueSheet, Segment, TrackChoice
    from .library import load_library
    from .pipeline import score_video
    from .spans import SourceSpan, analyze_spans


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(name)
