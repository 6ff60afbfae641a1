"""From the encoder's dimension E to the backbone's hidden size D.

Fixed reductions (PCA, whitened PCA, a seeded Gaussian projection) are fitted once, in numpy, on the real items
(the padding row is left out and stays zero); each is a small class here, registered in engine.registry. Learned
adapters (linear, or a two-layer MLP) are torch modules trained jointly with the recommender; they live in
engine.semantic.adapters (so this module stays numpy-only) and are applied by engine.semantic.fusion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import registry
from engine.config import ConfigError

_RELATIVE_RANK_TOL = 1e-6  # a component whose singular value is below this fraction of the largest carries no variance


@dataclass
class FittedReduction:
    """x ↦ (x − mean) @ projection, for rows of an [n, E] matrix; `projection` is [E, D]."""

    method: str
    mean: np.ndarray  # [E]
    projection: np.ndarray  # [E, D]
    seconds: float
    explained_variance_ratio: np.ndarray | None = None  # [D], PCA only: share of total variance per component
    components_used: int = 0  # PCA: components with non-zero variance (< D when there are fewer items than D)
    notes: list[str] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) @ self.projection).astype(np.float32)

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"reduction": self.method, "reduction_seconds": round(self.seconds, 4)}
        if self.explained_variance_ratio is not None:
            info["explained_variance"] = float(self.explained_variance_ratio.sum())
            info["explained_variance_ratio"] = [float(v) for v in self.explained_variance_ratio]
            info["pca_components"] = self.components_used
        if self.notes:
            info["reduction_notes"] = "; ".join(self.notes)
        return info


def _check_matrix(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"reduction: expected an [items, E] matrix with at least 2 items, got shape {x.shape}")
    if dim < 1:
        raise ValueError(f"reduction: target dimension must be positive, got {dim}")
    if not np.isfinite(x).all():
        raise ValueError("reduction: the semantic matrix contains NaN or infinite values")
    return x.astype(np.float64)


def fit_pca(x: np.ndarray, dim: int, whiten: bool = False) -> FittedReduction:
    """PCA by SVD of the centred matrix. With `whiten`, every kept component has unit variance (ddof=1).

    When the data has fewer than `dim` non-degenerate components (a catalogue smaller than D), the remaining
    output dimensions are zero rather than noise, and `notes` says so.
    """
    t0 = time.perf_counter()
    x = _check_matrix(x, dim)
    n, e = x.shape
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    variance = singular**2 / (n - 1)
    total = variance.sum()
    usable = int((singular > singular[0] * _RELATIVE_RANK_TOL).sum()) if singular.size and singular[0] > 0 else 0
    kept = min(dim, usable)
    projection = np.zeros((e, dim))
    projection[:, :kept] = vt[:kept].T
    if whiten:
        projection[:, :kept] /= np.sqrt(variance[:kept])
    ratio = np.zeros(dim)
    if total > 0:
        ratio[:kept] = variance[:kept] / total
    notes = []
    if kept < dim:
        notes.append(f"only {kept} of {dim} PCA components carry variance ({n} items, E={e}); the rest are zero")
    return FittedReduction(
        method="pca-whiten" if whiten else "pca",
        mean=mean,
        projection=projection,
        seconds=time.perf_counter() - t0,
        explained_variance_ratio=ratio,
        components_used=kept,
        notes=notes,
    )


def fit_random_projection(x: np.ndarray, dim: int, seed: int) -> FittedReduction:
    """A seeded Gaussian projection scaled by 1/sqrt(D) (Johnson–Lindenstrauss: distances kept on average).

    The data is centred first, like PCA, so that the common direction all sentence embeddings share does not
    dominate every item's reduced vector."""
    t0 = time.perf_counter()
    x = _check_matrix(x, dim)
    rng = np.random.default_rng(seed)
    projection = rng.standard_normal((x.shape[1], dim)) / np.sqrt(dim)
    return FittedReduction(
        method="random", mean=x.mean(axis=0), projection=projection, seconds=time.perf_counter() - t0
    )


class PCA:
    """`pca`: the top-D principal components of the real items."""

    @staticmethod
    def fit(x: np.ndarray, dim: int, seed: int = 0) -> FittedReduction:
        return fit_pca(x, dim)


class WhitenedPCA:
    """`pca-whiten`: PCA with every kept component scaled to unit variance."""

    @staticmethod
    def fit(x: np.ndarray, dim: int, seed: int = 0) -> FittedReduction:
        return fit_pca(x, dim, whiten=True)


class RandomProjection:
    """`random`: a seeded Gaussian projection of the centred items."""

    @staticmethod
    def fit(x: np.ndarray, dim: int, seed: int = 0) -> FittedReduction:
        return fit_random_projection(x, dim, seed)


def fit_reduction(method: str, x: np.ndarray, dim: int, seed: int = 0) -> FittedReduction:
    """Fits the registered fixed reduction `method` on the real items `x` [num_items, E] (no padding row)."""
    entry = registry.entry("reduction", method)
    if entry.group == "adapter":
        raise ConfigError(
            f"knowledge.reduction: '{method}' is a learned adapter, not fitted in numpy (use make_adapter)"
        )
    return entry.load().fit(x, dim, seed)


def reduce_table(method: str, table: np.ndarray, dim: int, seed: int = 0) -> tuple[np.ndarray, FittedReduction]:
    """Reduces a semantic table [num_items + 1, E] whose row 0 is padding: fitted on rows 1.., row 0 stays zero."""
    fitted = fit_reduction(method, table[1:], dim, seed)
    reduced = np.zeros((table.shape[0], dim), dtype=np.float32)
    reduced[1:] = fitted.transform(table[1:])
    return reduced, fitted


def make_adapter(method: str, in_dim: int, out_dim: int, hidden: int | None = None, dropout: float = 0.1) -> Any:
    """A trainable E→D adapter, the registered adapter `method` (engine.semantic.adapters): `adapter-linear` or
    `adapter-mlp`."""
    entry = registry.entry("reduction", method)
    if entry.group != "adapter":
        raise ConfigError(
            f"knowledge.reduction: '{method}' is not an adapter "
            f"(choose: {', '.join(registry.choices('reduction', group='adapter'))})"
        )
    return entry.load()(in_dim, out_dim, hidden=hidden, dropout=dropout)
