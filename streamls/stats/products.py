"""Sums that a solve asks of further passes over the rows: products with ``M``, and candidates' output sums.

Products with the hidden layer's fixed-pattern matrix ``M`` serve the matrix-free solve
(METHOD.md, wide data); the output-layer sums of candidate hidden layers serve the search
along the hidden step (:func:`streamls.solvers.step_candidates`).

For a direction ``v`` (h, p), ``M vec(v) = sum_i sum_c z_ic z_ic^T vec(v)`` needs no ``P``: per
row, ``u = x~ v^T`` (h), ``t = V^T (a * u)`` (k), and the row adds ``(a * (V t)) x~^T`` (h, p).
One forward and one backward product, ``2 h (p + k)`` multiply-adds per row and direction.
Like every pass statistic the products are sums over rows, so blocks and workers add them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pass_stats import slopes, tile_rows


@dataclass(frozen=True)
class HiddenProducts:
    """``M v`` for a batch of directions, summed over the training rows and over the validation rows.

    Attributes
    ----------
    train : numpy.ndarray, shape (r, h, p)
        The training rows' ``M`` times each of the ``r`` directions.
    validation : numpy.ndarray, shape (r, h, p)
        The validation rows' (zeros without them or when not asked for).
    roundoff : float
        Unit roundoff of the arithmetic they were computed in (the least precise of a sum's
        parts): float64's, or float32's for float32 rows (:meth:`PatternRows.products`).
    """

    train: np.ndarray
    validation: np.ndarray
    roundoff: float = float(np.finfo(np.float64).eps)

    def __add__(self, other: HiddenProducts) -> HiddenProducts:
        return HiddenProducts(self.train + other.train, self.validation + other.validation, max(self.roundoff, other.roundoff))


def hidden_products(x_aug: np.ndarray, a: np.ndarray, V: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``sum_i sum_c z_ic z_ic^T vec(v)`` over a block's rows for each direction ``v``.

    Parameters
    ----------
    x_aug : numpy.ndarray, shape (m, p)
    a : numpy.ndarray, shape (m, h)
        Activation slopes of the fixed pattern.
    V : numpy.ndarray, shape (h, k)
        Output weights (without the bias row).
    directions : numpy.ndarray, shape (r, h, p)

    Returns
    -------
    numpy.ndarray, shape (r, h, p)
    """
    (m, h), (r, _, p) = a.shape, directions.shape
    u = (x_aug @ directions.reshape(r * h, p).T).reshape(m, r, h)  # each direction's pre-activations
    u *= a[:, None, :]
    t = u.reshape(m * r, h) @ V  # (m r, k): each direction's change of the outputs
    g = (t @ V.T).reshape(m, r, h)
    g *= a[:, None, :]
    return (g.reshape(m, r * h).T @ x_aug).reshape(r, h, p)


@dataclass(frozen=True)
class PatternRows:
    """A block's rows under a fixed pattern: all that its products with ``M`` need, kept for the passes of one iteration.

    Float32 rows keep their design rows in float32, half the memory, rounded far below the
    precision of the stored values, and their products are computed in float32 too.

    Attributes
    ----------
    x_aug, x_val : numpy.ndarray, shapes (m, p), (m_val, p)
        Design rows (standardised, with the bias column) of the training and the validation rows.
    active, active_val : numpy.ndarray of bool, shapes (m, h), (m_val, h)
        Where their pre-activations are positive.
    """

    x_aug: np.ndarray
    active: np.ndarray
    x_val: np.ndarray
    active_val: np.ndarray

    @property
    def n_rows(self) -> int:
        """Training and validation rows."""
        return len(self.x_aug) + len(self.x_val)

    def products(self, V: np.ndarray, directions: np.ndarray, alpha: float, validation: bool) -> HiddenProducts:
        """``M v`` over the training rows and, if ``validation``, over the validation rows (else zeros).

        Computed in the kept rows' dtype and returned in float64, so that blocks add in float64.
        Float32 rows' products take half the time of float64 ones (d = 128, h = 32): conjugate
        gradients stop at a residual of :data:`~streamls.matrix_free.CG_TOL`, far above their
        rounding, and the search space's cut follows ``roundoff``
        (:func:`~streamls.matrix_free.subspace_solutions`).
        """
        dtype = self.x_aug.dtype
        V, directions = V.astype(dtype), directions.astype(dtype)
        roundoff = float(np.finfo(dtype).eps)

        def of(x_aug: np.ndarray, active: np.ndarray) -> np.ndarray:
            return hidden_products(x_aug, slopes(active, alpha, dtype), V, directions).astype(np.float64)

        train = of(self.x_aug, self.active)
        if not validation or not len(self.x_val):
            return HiddenProducts(train, np.zeros_like(train), roundoff)
        return HiddenProducts(train, of(self.x_val, self.active_val), roundoff)


@dataclass(frozen=True)
class PatternBlocks:
    """The :class:`PatternRows` of consecutive blocks; ``+`` joins them in order (as a pass over blocks sums)."""

    blocks: tuple[PatternRows, ...]

    def __add__(self, other: PatternBlocks) -> PatternBlocks:
        return PatternBlocks(self.blocks + other.blocks)


def kept_dtype(stored: np.dtype) -> np.dtype:
    """The dtype :class:`PatternRows` keep design rows in, for rows stored in ``stored``: float32 stays, else float64."""
    return np.dtype(np.float32 if stored == np.float32 else np.float64)


def pattern_rows(x_aug: np.ndarray, W: np.ndarray, validation: np.ndarray, dtype: np.dtype) -> PatternRows:
    """The :class:`PatternRows` of design rows ``x_aug`` (m, p) under the pattern of ``W`` (h, p), stored in ``dtype``."""
    active = x_aug @ W.T > 0
    stored = x_aug.astype(dtype, copy=False)
    if not validation.any():
        return PatternRows(stored, active, stored[:0], active[:0])
    return PatternRows(stored[~validation], active[~validation], stored[validation], active[validation])


@dataclass(frozen=True)
class CandidateSums:
    """The output layer's Gram sums ``G``, ``C`` under each of ``r`` candidate hidden layers, over the training rows.

    Attributes
    ----------
    G : numpy.ndarray, shape (r, h + 1, h + 1)
    C : numpy.ndarray, shape (r, h + 1, k)
    """

    G: np.ndarray
    C: np.ndarray

    def __add__(self, other: CandidateSums) -> CandidateSums:
        return CandidateSums(self.G + other.G, self.C + other.C)


def candidate_sums(x_aug: np.ndarray, y: np.ndarray, candidates: np.ndarray, alpha: float) -> CandidateSums:
    """``G`` and ``C`` of a block's rows under each candidate hidden layer (each with its own pattern).

    Parameters
    ----------
    x_aug : numpy.ndarray, shape (m, p)
    y : numpy.ndarray, shape (m, k)
    candidates : numpy.ndarray, shape (r, h, p)
    alpha : float

    Returns
    -------
    CandidateSums
    """
    (m, _), (r, h, p) = x_aug.shape, candidates.shape
    weights = candidates.reshape(r * h, p).T
    G, C = np.zeros((r, h + 1, h + 1)), np.zeros((r, h + 1, y.shape[1]))
    tile = tile_rows(r * h)  # fresh memory is slow to touch: reuse a tile's
    phi = np.ones((min(tile, m), h + 1))
    for start in range(0, m, tile):
        u = x_aug[start : start + tile] @ weights  # (tile, r h): one product for every candidate
        f, t = phi[: len(u)], y[start : start + tile]
        for i in range(r):
            np.maximum(u[:, i * h : (i + 1) * h], alpha * u[:, i * h : (i + 1) * h], out=f[:, :h])  # a * u, as alpha < 1
            G[i] += f.T @ f
            C[i] += f.T @ t
    return CandidateSums(G, C)
