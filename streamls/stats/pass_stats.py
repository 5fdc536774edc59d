"""Per-block statistics of one training pass (METHOD.md) and the formulas that build them.

With the hidden weights ``W`` (h, p) and output weights ``B`` (h + 1, k) of the current
model, one read of a block of standardised rows gives everything both half-steps need:

- ``G = sum phi phi^T`` and ``C = sum phi y^T`` with ``phi = [a * u; 1]`` (output layer);
- ``P = sum (a a^T) kron (x~ x~^T)``, ``Q = sum (a kron x~) y^T``, ``s = sum a kron x~``
  (hidden layer, for any output weights); or, for the matrix-free hidden solve, only the
  diagonal blocks of ``P``, ``D_j = sum a_j^2 x~ x~^T``, besides ``Q`` and ``s``;
- the loss of the current model, pattern statistics and the validation loss.

Every field is a sum over rows, so partial results from blocks, partitions or workers add.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy.linalg import blas

from ..errors import StatisticsError

#: Bytes of one tile of ``a kron x~`` rows: small enough to stay in cache while BLAS
#: reads it, large enough for the rank-k update to run near peak.
TILE_BYTES = 1 << 22


def tile_rows(width: int) -> int:
    """Rows of one tile of ``width`` float64 columns: :data:`TILE_BYTES` of them, 256 to 4096 rows."""
    return int(np.clip(TILE_BYTES // (8 * width), 256, 4096))


@dataclass(frozen=True)
class HeldOutSums:
    """The sums of :class:`PassStatistics` that score candidate layers, over the validation rows.

    With them the validation loss of any output layer ``B`` is exact,
    ``sum_yy - 2 tr(B^T C) + tr(B^T G B)``, and so is that of any hidden layer under the
    pass's activation pattern (:func:`streamls.solvers.hidden_loss`). For the matrix-free
    hidden solve ``P`` is ``None``: the products with the validation rows' ``M`` come from
    product passes (:class:`streamls.stats.products.HiddenProducts`).

    Attributes
    ----------
    n : int
    sum_y, sum_yy : numpy.ndarray, shape (k,)
    G : numpy.ndarray, shape (h + 1, h + 1)
    C : numpy.ndarray, shape (h + 1, k)
    P : numpy.ndarray, shape (h p, h p), or None
    Q : numpy.ndarray, shape (h p, k)
    s : numpy.ndarray, shape (h p,)
    """

    n: int
    sum_y: np.ndarray
    sum_yy: np.ndarray
    G: np.ndarray
    C: np.ndarray
    P: np.ndarray | None
    Q: np.ndarray
    s: np.ndarray

    def __add__(self, other: HeldOutSums) -> HeldOutSums:
        return HeldOutSums(**{f.name: _add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})

    @classmethod
    def of(cls, a: np.ndarray, x_aug: np.ndarray, phi: np.ndarray, y: np.ndarray, dense: bool = True) -> HeldOutSums:
        """The sums over rows with slopes ``a`` (m, h), inputs ``x_aug`` (m, p), features ``phi`` (m, h + 1), targets ``y`` (m, k).

        ``dense=False`` leaves ``P`` out.
        """
        if dense:
            P, Q, s = hidden_gram(a, x_aug, y)
        else:
            P, (Q, s) = None, hidden_rhs_sums(a, x_aug, y)
        return cls(len(y), y.sum(axis=0), (y**2).sum(axis=0), phi.T @ phi, phi.T @ y, P, Q, s)


@dataclass(frozen=True)
class PassStatistics:
    """Sums over the training rows of one pass (and the validation rows' loss).

    Attributes
    ----------
    n : int
        Training rows.
    sum_y : numpy.ndarray, shape (k,)
    sum_yy : numpy.ndarray, shape (k,)
        Sum of squared targets per output; ``tr(Y^T Y) = sum_yy.sum()``.
    G : numpy.ndarray, shape (h + 1, h + 1)
    C : numpy.ndarray, shape (h + 1, k)
    sse : numpy.ndarray, shape (k,)
        Squared error of the current model per output (standardised units).
    active : numpy.ndarray of int64, shape (h,)
        Rows on which each neuron is active (``u > 0``).
    flips : int
        Pattern entries (row, neuron) whose activity differs from the previous ``W``'s.
    n_val : int
        Validation rows.
    val_sse : numpy.ndarray, shape (k,)
    dropped : int
        Rows skipped for holding NaN or Inf.
    sse_sq, val_sse_sq : float
        Sums over training (validation) rows of the squared per-row error ``e_i^2``, with
        ``e_i = sum_c r_ic^2``: with the sums of ``e_i`` they give the loss's standard error.
    fresh_n : int
        Training rows new to the model (ranked at or above the request's ``seen``).
    fresh_sse, fresh_sse_sq : float
        Sums of ``e_i`` and ``e_i^2`` over those rows.
    P : numpy.ndarray, shape (h p, h p), or None
    Q : numpy.ndarray, shape (h p, k), or None
    s : numpy.ndarray, shape (h p,), or None
        ``None`` in an evaluation-only pass; ``P`` is also ``None`` in the block form.
    D : numpy.ndarray, shape (h, p, p), or None
        The block form's per-neuron Grams ``D_j = sum a_j^2 x~ x~^T`` (the diagonal blocks of
        ``P``), for the matrix-free hidden solve; ``None`` otherwise.
    held_out : HeldOutSums or None
        The validation rows' sums, when the pass was asked for them (to choose the ridge).
    """

    n: int
    sum_y: np.ndarray
    sum_yy: np.ndarray
    G: np.ndarray
    C: np.ndarray
    sse: np.ndarray
    active: np.ndarray
    flips: int
    n_val: int
    val_sse: np.ndarray
    dropped: int
    sse_sq: float = 0.0
    val_sse_sq: float = 0.0
    fresh_n: int = 0
    fresh_sse: float = 0.0
    fresh_sse_sq: float = 0.0
    P: np.ndarray | None = None
    Q: np.ndarray | None = None
    s: np.ndarray | None = None
    D: np.ndarray | None = None
    held_out: HeldOutSums | None = None

    def __add__(self, other: PassStatistics) -> PassStatistics:
        return PassStatistics(**{f.name: _add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})

    @property
    def has_hidden(self) -> bool:
        """Whether the hidden-layer sums are present, dense or block form (False for an evaluation-only pass)."""
        return self.Q is not None


def _add(a: Any, b: Any) -> Any:
    if a is None or b is None:
        if a is not None or b is not None:
            raise StatisticsError("cannot add statistics of a full pass to those of an evaluation-only pass")
        return None
    return a + b


def augment(x: np.ndarray) -> np.ndarray:
    """Inputs with the bias column appended: ``x~ = [x, 1]``, shape (m, d + 1)."""
    return np.hstack([x, np.ones((len(x), 1))])


def pattern(u: np.ndarray, alpha: float) -> np.ndarray:
    """Activation slopes ``a``: 1 where ``u > 0``, else ``alpha``; shape of ``u``."""
    return np.where(u > 0, 1.0, alpha)


def hidden_features(x_aug: np.ndarray, W: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pre-activations, activation pattern and output features of a block.

    Returns
    -------
    u : numpy.ndarray, shape (m, h)
        ``x~ W^T``.
    a : numpy.ndarray, shape (m, h)
        ``pattern(u, alpha)``.
    phi : numpy.ndarray, shape (m, h + 1)
        ``[a * u, 1]``.
    """
    u = x_aug @ W.T
    a = pattern(u, alpha)
    phi = np.empty((len(u), u.shape[1] + 1))
    np.multiply(a, u, out=phi[:, :-1])
    phi[:, -1] = 1.0
    return u, a, phi


def kron_rows(a: np.ndarray, x_aug: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows ``[a_i kron x~_i, y_i, 1]``: the hidden layer's design rows, extended.

    Appending the targets and a constant column lets one symmetric rank-k update give
    ``P``, ``Q`` and ``s`` together, with no further sweep over the tile.

    Parameters
    ----------
    a : numpy.ndarray, shape (m, h)
    x_aug : numpy.ndarray, shape (m, p)
    y : numpy.ndarray, shape (m, k)

    Returns
    -------
    numpy.ndarray, shape (m, h p + k + 1), C-contiguous
        Column ``j p + l`` of row ``i`` is ``a_ij x~_il``.
    """
    m, h = a.shape
    p, k = x_aug.shape[1], y.shape[1]
    rows = np.empty((m, h * p + k + 1))
    # einsum's outer-product loop runs about twice as fast here as a broadcast multiply,
    # whose innermost loop is only p long.
    np.einsum("ij,il->ijl", a, x_aug, out=rows[:, : h * p].reshape(m, h, p))
    rows[:, h * p : h * p + k] = y
    rows[:, -1] = 1.0
    return rows


def hidden_gram(a: np.ndarray, x_aug: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P``, ``Q`` and ``s`` of a block of rows, built in cache-sized tiles.

    Parameters
    ----------
    a : numpy.ndarray, shape (m, h)
    x_aug : numpy.ndarray, shape (m, p)
    y : numpy.ndarray, shape (m, k)

    Returns
    -------
    P : numpy.ndarray, shape (h p, h p)
    Q : numpy.ndarray, shape (h p, k)
    s : numpy.ndarray, shape (h p,)
    """
    hp, k = a.shape[1] * x_aug.shape[1], y.shape[1]
    width = hp + k + 1
    tile = tile_rows(width)
    upper = np.zeros((width, width), order="F")
    for start in range(0, len(a), tile):
        rows = kron_rows(a[start : start + tile], x_aug[start : start + tile], y[start : start + tile])
        # rows.T is the F-ordered (width, m) view: syrk "N" on it is the layout numpy's
        # own Z.T @ Z uses, needs no copy, and fills only the upper triangle.
        blas.dsyrk(1.0, rows.T, beta=1.0, c=upper, trans=0, lower=0, overwrite_c=1)
    gram = symmetric_from_upper(upper)
    return gram[:hp, :hp].copy(), gram[:hp, hp : hp + k].copy(), gram[:hp, hp + k].copy()


def hidden_rhs_sums(a: np.ndarray, x_aug: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Q`` and ``s`` of a block of rows without ``P``.

    Parameters
    ----------
    a : numpy.ndarray, shape (m, h)
    x_aug : numpy.ndarray, shape (m, p)
    y : numpy.ndarray, shape (m, k)

    Returns
    -------
    Q : numpy.ndarray, shape (h p, k)
    s : numpy.ndarray, shape (h p,)
    """
    (m, h), k = a.shape, y.shape[1]
    weighted = np.empty((m, h, k + 1))
    np.multiply(a[:, :, None], y[:, None, :], out=weighted[:, :, :k])
    weighted[:, :, k] = a
    sums = (x_aug.T @ weighted.reshape(m, h * (k + 1))).reshape(-1, h, k + 1).transpose(1, 0, 2)  # (h, p, k + 1)
    return sums[:, :, :k].reshape(-1, k), sums[:, :, k].ravel()


def neuron_grams(active: np.ndarray, x_aug: np.ndarray, alpha: float) -> np.ndarray:
    """The diagonal blocks of ``P``: ``D_j = sum_i a_ij^2 x~_i x~_i^T`` for each neuron, shape (h, p, p).

    With slopes in ``{alpha, 1}``, ``D_j = alpha^2 X~^T X~ + (1 - alpha^2) X~_j^T X~_j`` over
    the rows ``X~_j`` where neuron ``j`` is active (``active``, bool, shape (m, h)): one
    Gram of about half the rows per neuron, ``h p^2 / 4`` multiply-adds per row.
    """
    h, p = active.shape[1], x_aug.shape[1]
    blocks = np.empty((h, p, p))
    for j in range(h):
        rows = x_aug[active[:, j]]
        blocks[j] = rows.T @ rows  # numpy runs syrk for a product with its own transpose
    if alpha != 0.0:
        blocks *= 1.0 - alpha**2
        blocks += alpha**2 * (x_aug.T @ x_aug)
    return blocks


def symmetric_from_upper(upper: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose upper triangle is ``upper``'s, C-ordered."""
    full = np.triu(upper)
    full += np.triu(upper, 1).T
    return full


def block_statistics(
    x: np.ndarray,
    y: np.ndarray,
    W: np.ndarray,
    B: np.ndarray,
    alpha: float,
    *,
    validation: np.ndarray | None = None,
    W_prev: np.ndarray | None = None,
    hidden: bool = True,
    dropped: int = 0,
    fresh: np.ndarray | None = None,
    held_out: bool = False,
    dense: bool = True,
) -> PassStatistics:
    """Statistics of one block of standardised rows for the model ``(W, B)``.

    Parameters
    ----------
    x : numpy.ndarray, shape (m, d)
        Standardised inputs (float64).
    y : numpy.ndarray, shape (m, k)
        Standardised targets (float64).
    W : numpy.ndarray, shape (h, d + 1)
    B : numpy.ndarray, shape (h + 1, k)
    alpha : float
        Slope of the activation for ``u <= 0``.
    validation : numpy.ndarray of bool, shape (m,), optional
        Rows that only contribute to the validation loss.
    W_prev : numpy.ndarray, shape (h, d + 1), optional
        Previous hidden weights, to count pattern flips.
    hidden : bool
        Whether to build ``P``, ``Q`` and ``s`` (the costly part).
    dropped : int
        Rows the caller skipped, carried into the result.
    fresh : numpy.ndarray of bool, shape (m,), optional
        Rows new to the model, whose loss is also summed apart (validation rows never count).
    held_out : bool
        Whether to sum :class:`HeldOutSums` over the validation rows too (with ``hidden``).
    dense : bool
        With ``hidden``: build ``P`` (True) or the block form's ``D`` (False).
    """
    x_aug = augment(x)
    u, a, phi = hidden_features(x_aug, W, alpha)
    residual = y - phi @ B
    row_error = (residual**2).sum(axis=1)
    held = None
    if held_out and hidden:
        val = np.zeros(len(y), dtype=bool) if validation is None else validation
        held = HeldOutSums.of(a[val], x_aug[val], phi[val], y[val], dense)
    if validation is not None and validation.any():
        val_sse = (residual[validation] ** 2).sum(axis=0)
        val_sse_sq = float((row_error[validation] ** 2).sum())
        n_val = int(validation.sum())
        train = ~validation
        x_aug, y, u, a, phi, residual = x_aug[train], y[train], u[train], a[train], phi[train], residual[train]
        row_error = row_error[train]
        fresh = None if fresh is None else fresh[train]
    else:
        val_sse, val_sse_sq, n_val = np.zeros(y.shape[1]), 0.0, 0
    fresh_error = row_error[fresh] if fresh is not None else row_error[:0]
    flips = 0 if W_prev is None else int(((x_aug @ W_prev.T > 0) != (u > 0)).sum())
    P = Q = s = D = None
    if hidden and dense:
        P, Q, s = hidden_gram(a, x_aug, y)
    elif hidden:
        (Q, s), D = hidden_rhs_sums(a, x_aug, y), neuron_grams(u > 0, x_aug, alpha)
    return PassStatistics(
        n=len(y),
        sum_y=y.sum(axis=0),
        sum_yy=(y**2).sum(axis=0),
        G=phi.T @ phi,
        C=phi.T @ y,
        sse=(residual**2).sum(axis=0),
        active=(u > 0).sum(axis=0).astype(np.int64),
        flips=flips,
        n_val=n_val,
        val_sse=val_sse,
        dropped=dropped,
        sse_sq=float((row_error**2).sum()),
        val_sse_sq=val_sse_sq,
        fresh_n=len(fresh_error),
        fresh_sse=float(fresh_error.sum()),
        fresh_sse_sq=float((fresh_error**2).sum()),
        P=P,
        Q=Q,
        s=s,
        D=D,
        held_out=held,
    )
