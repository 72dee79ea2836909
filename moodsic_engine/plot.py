"""A picture of a cue sheet: each expert raw, fused, stable, segments coloured by mood, cuts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .cue import CueSheet
from .fileio import atomic_path

_EXPERT_STYLE = {
    "scene": ("tab:green", ":"),
    "face": ("tab:purple", "-."),
    "grammar": ("tab:gray", "--"),
}


def plot_cue(cue: CueSheet, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write a PNG with valence and arousal over time; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s.t for s in cue.samples])
    fig, axes = plt.subplots(2, 1, figsize=(12, 6), sharex=True, constrained_layout=True)
    moods = sorted({s.mood for s in cue.segments})
    cmap = plt.get_cmap("tab10")
    colour = {m: cmap(i % 10) for i, m in enumerate(moods)}
    for ax, key, name in ((axes[0], "v", "valence"), (axes[1], "a", "arousal")):
        for seg in cue.segments:
            ax.axvspan(seg.start_s, seg.end_s, color=colour[seg.mood], alpha=0.15, lw=0)
        for c in cue.cuts:
            ax.axvline(c, color="black", lw=0.6, alpha=0.35)
        for expert in cue.engine.get("experts", []):
            ys = np.array(
                [s.experts.get(expert, {}).get(key, np.nan) for s in cue.samples], dtype=float
            )
            col, ls = _EXPERT_STYLE.get(expert, ("tab:brown", ":"))
            ax.plot(t, ys, color=col, ls=ls, lw=1, label=f"{expert} (raw)")
        fused = np.array([s.fused[key] if s.fused else np.nan for s in cue.samples], dtype=float)
        ax.plot(t, fused, color="tab:blue", lw=1, alpha=0.8, label="fused")
        stable = np.array([s.stable[key] for s in cue.samples], dtype=float)
        ax.plot(t, stable, color="tab:red", lw=2.2, label="stable")
        for seg in cue.segments:
            val = seg.valence if key == "v" else seg.arousal
            ax.hlines(val, seg.start_s, seg.end_s, color="black", lw=1.5)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    patches = [plt.Rectangle((0, 0), 1, 1, color=colour[m], alpha=0.4) for m in moods]
    mood_labels = {s.mood: s.mood_label for s in cue.segments}
    axes[0].legend(
        handles + patches,
        labels + [mood_labels[m] for m in moods],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
    )
    axes[1].set_xlabel("time (s)  -  vertical lines: shot cuts")
    axes[0].set_title(title or f"Moodsic: {Path(cue.video.path).name}")
    axes[1].set_xlim(0, cue.video.duration_s)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
