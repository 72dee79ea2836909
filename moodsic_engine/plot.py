"""A picture of a cue sheet: each expert raw, fused, stable, segments coloured by mood, cuts;
and, when the cue sheet records them, the faces found in each sample."""

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


def draw_faces(ax, cue: CueSheet) -> int:  # noqa: ANN001 - a matplotlib Axes
    """Each sample's face boxes on `ax`: time across, the box's horizontal extent in the
    frame up the axis (0 = left edge, 1 = right edge), opacity from the detector's
    confidence. Returns how many boxes were drawn."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    t = np.array([s.t for s in cue.samples], dtype=float)
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.5
    rects, alphas = [], []
    for s, ti in zip(cue.samples, t, strict=True):
        for f in s.face_boxes:
            x, _, w, _ = (float(v) for v in f["box"])
            rects.append(Rectangle((ti - 0.45 * dt, x), 0.9 * dt, w))
            alphas.append(float(f.get("confidence", 1.0)))
    if rects:
        rgba = np.zeros((len(rects), 4))
        rgba[:, :3] = (0.49, 0.15, 0.56)  # the face expert's purple
        rgba[:, 3] = np.clip(0.25 + 0.75 * np.array(alphas), 0.0, 1.0)
        coll = PatchCollection(rects, facecolors=rgba, edgecolors="none")
        coll.set_gid("face-boxes")
        ax.add_collection(coll)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("faces across\nthe frame (0: left)")
    ax.grid(alpha=0.3)
    return len(rects)


def plot_cue(
    cue: CueSheet,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    faces: bool = True,
) -> Path:
    """Write a PNG with valence and arousal over time; returns the path. With `faces` and a
    cue sheet that records face boxes, a third panel shows where faces were (`draw_faces`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s.t for s in cue.samples])
    show_faces = faces and any(s.face_boxes for s in cue.samples)
    if show_faces:
        fig, axes = plt.subplots(
            3,
            1,
            figsize=(12, 7.5),
            sharex=True,
            constrained_layout=True,
            gridspec_kw={"height_ratios": [1, 1, 0.5]},
        )
    else:
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
    if show_faces:
        draw_faces(axes[2], cue)
    axes[-1].set_xlabel("time (s)  -  vertical lines: shot cuts")
    axes[0].set_title(title or f"Moodsic: {Path(cue.video.path).name}")
    axes[1].set_xlim(0, cue.video.duration_s)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
