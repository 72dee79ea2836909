"""Mood clusters: a GMM on standardised V/A, K chosen by BIC, clusters named from centroids.

The fitted model is plain numbers (standardisation, weights, means, diagonal variances), so
posteriors are computed in numpy without sklearn and the model round-trips through JSON with
the library index: names and slugs stay stable for a fitted library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

# Name for each (valence class, arousal class); classes are -1, 0, +1.
_NAMES: dict[tuple[int, int], str] = {
    (1, 1): "Bright & Engaging",
    (1, 0): "Warm & Content",
    (1, -1): "Serene & Tender",
    (0, 1): "Driving & Energetic",
    (0, 0): "Neutral & Steady",
    (0, -1): "Calm & Neutral",
    (-1, 1): "Tense & Intense",
    (-1, 0): "Melancholic & Brooding",
    (-1, -1): "Downcast & Low-energy",
}
# A centroid this far from 0 (reference scale) counts as clearly positive/negative. DEAM's
# song-level ratings sit mostly within +-0.5, so the threshold is modest.
_CLASS_THRESHOLD = 0.1
_FIT_SAMPLE = 10000
_VAR_FLOOR = 1e-3  # standardised units; keeps a tight cluster from producing infinite densities


@dataclass(frozen=True, eq=False)  # holds arrays
class MoodClusters:
    """A fitted mood-cluster model. Arrays are [K, 2] unless noted; V/A on the reference scale."""

    center: np.ndarray  # [2] standardisation offset
    scale: np.ndarray  # [2] standardisation scale
    weights: np.ndarray  # [K]
    means: np.ndarray  # [K, 2] standardised
    variances: np.ndarray  # [K, 2] standardised, diagonal
    slugs: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def k(self) -> int:
        return len(self.slugs)

    @property
    def centroids(self) -> np.ndarray:
        """Cluster centres on the reference scale, [K, 2]."""
        return self.means * self.scale + self.center

    def log_likelihood(self, va: np.ndarray) -> np.ndarray:
        """log p(x, k) for each row of va [N, 2] -> [N, K] (density in standardised space)."""
        z = (np.asarray(va, dtype=np.float64).reshape(-1, 2) - self.center) / self.scale
        diff = z[:, None, :] - self.means[None, :, :]
        var = self.variances[None, :, :]
        return np.log(self.weights)[None, :] - 0.5 * np.sum(
            diff * diff / var + np.log(2 * np.pi * var), axis=2
        )

    def posterior(self, va: np.ndarray) -> np.ndarray:
        """Posterior cluster probabilities for va [N, 2] -> [N, K]; rows sum to 1."""
        ll = self.log_likelihood(va)
        ll -= ll.max(axis=1, keepdims=True)
        p = np.exp(ll)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, va: np.ndarray) -> np.ndarray:
        """Most probable cluster per row (argmax of the joint log-likelihood; no softmax needed)."""
        return np.argmax(self.log_likelihood(va), axis=1)

    def index_of(self, slug: str) -> int:
        return self.slugs.index(slug)

    def to_dict(self) -> dict[str, Any]:
        return {
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "variances": self.variances.tolist(),
            "slugs": list(self.slugs),
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoodClusters:
        return cls(
            center=np.asarray(data["center"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            weights=np.asarray(data["weights"], dtype=np.float64),
            means=np.asarray(data["means"], dtype=np.float64).reshape(-1, 2),
            variances=np.asarray(data["variances"], dtype=np.float64).reshape(-1, 2),
            slugs=tuple(data["slugs"]),
            labels=tuple(data["labels"]),
        )


def fit_clusters(
    va: np.ndarray, *, min_clusters: int = 2, max_clusters: int = 8, seed: int = 0
) -> MoodClusters:
    """Fit the mood GMM to a library's V/A [M, 2].

    K runs over min_clusters..max_clusters (capped by what the data can support) and the
    lowest BIC wins. A library whose V/A spans one cluster only (few tracks, or all of them in
    one spot) gets a single cluster instead of an error.
    """
    x = np.asarray(va, dtype=np.float64).reshape(-1, 2)
    if len(x) == 0:
        raise ValueError("no tracks to cluster")
    center = x.mean(axis=0)
    spread = x.std(axis=0)
    # A collapsed axis (every track equal) is not scaled up into noise.
    scale = np.where(spread > 1e-3, spread, 1.0)
    z = (x - center) / scale
    if len(z) > _FIT_SAMPLE:
        # A deterministic subsample fits as well as millions of points and keeps it fast.
        pick = np.sort(np.random.default_rng(seed).choice(len(z), _FIT_SAMPLE, replace=False))
        z = z[pick]
    distinct = len(np.unique(np.round(z, 6), axis=0))
    # Roughly three tracks per component at least, unless the caller asks for more clusters.
    k_hi = min(max_clusters, distinct, max(1, len(z) // 3, min(min_clusters, len(z) // 2)))
    k_lo = min(max(1, min_clusters), k_hi)
    if distinct < 2 or np.all(spread <= 1e-3):
        k_lo = k_hi = 1
    best = None
    if k_hi > 1:
        from sklearn.mixture import GaussianMixture

        for k in range(k_lo, k_hi + 1):
            gmm = GaussianMixture(
                n_components=k,
                covariance_type="diag",
                random_state=seed,
                n_init=2 if len(z) <= 2000 else 1,
                reg_covar=1e-4,
            ).fit(z)
            bic = gmm.bic(z)
            if best is None or bic < best[0] - 1e-9:
                best = (bic, gmm)
    if best is None:
        weights = np.ones(1)
        means = z.mean(axis=0, keepdims=True)
        variances = np.maximum(z.var(axis=0, keepdims=True), 1.0)
    else:
        gmm = best[1]
        weights = np.asarray(gmm.weights_, dtype=np.float64)
        means = np.asarray(gmm.means_, dtype=np.float64)
        variances = np.asarray(gmm.covariances_, dtype=np.float64)
    variances = np.maximum(variances, _VAR_FLOOR)
    centroids = means * scale + center
    # Stable order: by valence, then arousal, so slugs do not depend on sklearn's labelling.
    order = np.lexsort((centroids[:, 1], centroids[:, 0]))
    weights, means, variances, centroids = (
        weights[order],
        means[order],
        variances[order],
        centroids[order],
    )
    labels = name_clusters(centroids)
    return MoodClusters(
        center=center,
        scale=scale,
        weights=weights / weights.sum(),
        means=means,
        variances=variances,
        slugs=tuple(slugify_unique(labels)),
        labels=tuple(labels),
    )


def _cls(x: float) -> int:
    return 1 if x > _CLASS_THRESHOLD else (-1 if x < -_CLASS_THRESHOLD else 0)


def name_clusters(centroids: np.ndarray) -> list[str]:
    """Name each centroid from its V/A position; duplicates get an intensity qualifier."""
    base = [_NAMES[(_cls(v), _cls(a))] for v, a in np.asarray(centroids).reshape(-1, 2)]
    names = list(base)
    for name in set(base):
        idx = [i for i, b in enumerate(base) if b == name]
        if len(idx) < 2:
            continue
        # Order the namesakes by distance from the origin: milder first.
        idx.sort(key=lambda i: float(np.hypot(*centroids[i])))
        if len(idx) == 2:
            names[idx[0]] = f"{name} (mild)"
            names[idx[1]] = f"{name} (strong)"
        else:
            for rank, i in enumerate(idx, start=1):
                names[i] = f"{name} {_roman(rank)}"
    return names


def _roman(n: int) -> str:
    return (
        ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"][n - 1] if n <= 10 else str(n)
    )


def slugify(label: str) -> str:
    s = label.lower().replace("&", " ")
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s or "mood"


def slugify_unique(labels: list[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        slug = slugify(label)
        base, n = slug, 2
        while slug in out:
            slug = f"{base}-{n}"
            n += 1
        out.append(slug)
    return out
