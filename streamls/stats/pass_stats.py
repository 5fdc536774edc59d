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

from ..errors import StatisticsError

#: Bytes of one tile of rows built for a matrix product (the pair products of
#: :func:`pair_gram`, the candidates' features): small enough to stay in cache while BLAS
#: reads it, large enough for the product to run near peak.
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
        ``P``) over ``D_rows`` of the training rows, for the matrix-free hidden solve; ``None``
        otherwise. :meth:`block_diagonal` scales them to every training row.
    D_rows : int
        Training rows summed into ``D``.
    D_trace : numpy.ndarray, shape (h,), or None
        ``tr(D_j)`` over every training row (exact even when ``D`` covers fewer).
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
    D_rows: int = 0
    D_trace: np.ndarray | None = None
    held_out: HeldOutSums | None = None

    def __add__(self, other: PassStatistics) -> PassStatistics:
        return PassStatistics(**{f.name: _add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})

    def block_diagonal(self) -> np.ndarray:
        """``D`` scaled from its ``D_rows`` rows to all ``n`` training rows, shape (h, p, p)."""
        assert self.D is not None, "the pass did not build the block form"
        return self.D if self.D_rows == self.n else self.D * (self.n / max(self.D_rows, 1))

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
    return slopes(u > 0, alpha)


def slopes(active: np.ndarray, alpha: float, dtype: np.dtype = np.dtype(np.float64)) -> np.ndarray:
    """Activation slopes ``a`` (float64 unless ``dtype``): 1 where ``active`` (bool), else ``alpha``; shape of ``active``."""
    a = active.astype(dtype)  # several times faster than np.where with scalars
    if alpha != 0.0:
        np.copyto(a, alpha, where=~active)
    return a


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


def pair_index(w: int) -> np.ndarray:
    """Where each unordered pair of ``w`` columns sits in ``np.triu_indices(w)`` order, shape (w, w), symmetric."""
    index = np.empty((w, w), dtype=np.intp)
    rows, cols = np.triu_indices(w)
    index[rows, cols] = index[cols, rows] = np.arange(len(rows))
    return index


def pair_products(columns: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Products of every pair ``j <= l`` of rows of ``columns`` (w, m), in ``np.triu_indices(w)`` order, into ``out`` (w (w + 1) / 2, m)."""
    start = 0
    for j in range(len(columns)):
        # Rows of length m: the inner loops run over contiguous memory (rows of the (m, w)
        # layout would be only w - j long).
        np.multiply(columns[j:], columns[j], out=out[start : start + len(columns) - j])
        start += len(columns) - j
    return out


def pair_counts(h: int, p: int) -> tuple[int, int]:
    """Distinct pairs of ``h`` slopes and of ``p`` inputs: the shape of :func:`pair_gram`'s ``T``."""
    return h * (h + 1) // 2, p * (p + 1) // 2


def pair_tile_rows(h: int, p: int) -> int:
    """Rows of one tile of pair products in :func:`pair_gram` (:func:`tile_rows` of both pair counts)."""
    return tile_rows(sum(pair_counts(h, p)))


def pair_gram(a: np.ndarray, x_aug: np.ndarray) -> np.ndarray:
    """``T = sum_i pairs(a_i) pairs(x~_i)^T``: every distinct entry of ``P``, shape (h (h + 1) / 2, p (p + 1) / 2).

    ``P[(j, l), (k, q)] = sum_i a_ij a_ik x~_il x~_iq`` is symmetric in ``(j, k)`` and in
    ``(l, q)`` apart, so the products of the pairs ``j <= k`` of slopes with the pairs
    ``l <= q`` of inputs hold all of it: one matrix product of ``h^2 p^2 / 4`` multiply-adds
    per row, about half of a symmetric rank-k update of the rows ``a_i kron x~_i``
    (``h^2 p^2 / 2``), and at the rate of a general one. The rows are built in cache-sized
    tiles whose memory is reused.

    Parameters
    ----------
    a : numpy.ndarray, shape (m, h)
    x_aug : numpy.ndarray, shape (m, p)

    Returns
    -------
    numpy.ndarray, shape (h (h + 1) / 2, p (p + 1) / 2)
    """
    (m, h), p = a.shape, x_aug.shape[1]
    slope_pairs, input_pairs = pair_counts(h, p)
    tile = max(1, min(m, pair_tile_rows(h, p)))
    total, product = np.zeros((slope_pairs, input_pairs)), np.empty((slope_pairs, input_pairs))
    slopes, inputs = np.empty((slope_pairs, tile)), np.empty((input_pairs, tile))
    for start in range(0, m, tile):
        stop = min(start + tile, m)
        if stop - start < tile:  # the last, shorter tile gets its own buffers: slices would be copied for BLAS
            slopes, inputs = np.empty((slope_pairs, stop - start)), np.empty((input_pairs, stop - start))
        pair_products(np.ascontiguousarray(a[start:stop].T), slopes)
        pair_products(np.ascontiguousarray(x_aug[start:stop].T), inputs)
        # numpy's matmul, not scipy.linalg.blas: f2py's wrappers hold the GIL, so blocks on
        # two threads ran no faster than on one.
        np.matmul(slopes, inputs.T, out=product)
        total += product
    return total


def gram_from_pairs(pairs: np.ndarray, h: int, p: int) -> np.ndarray:
    """``P`` (h p, h p) from its distinct entries :func:`pair_gram`'s ``T``."""
    slopes, inputs = pair_index(h), pair_index(p)
    P = np.empty((h, p, h, p))
    for j in range(h):
        P[j] = pairs[slopes[j]][:, inputs].transpose(1, 0, 2)  # [k, l, q] -> [l, k, q]
    return P.reshape(h * p, h * p)


def hidden_gram(a: np.ndarray, x_aug: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P``, ``Q`` and ``s`` of a block of rows.

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
    h, p = a.shape[1], x_aug.shape[1]
    return (gram_from_pairs(pair_gram(a, x_aug), h, p), *hidden_rhs_sums(a, x_aug, y))


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


def block_statistics(
    x_aug: np.ndarray,
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
    grams: np.ndarray | None = None,
) -> PassStatistics:
    """Statistics of one block of standardised rows for the model ``(W, B)``.

    Parameters
    ----------
    x_aug : numpy.ndarray, shape (m, d + 1)
        Standardised inputs with the bias column (float64, :meth:`Standardizer.design`).
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
    grams : numpy.ndarray of bool, shape (m,), optional
        In the block form, the rows whose Grams make ``D`` (training rows among them; default all).
    """
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
        grams = None if grams is None else grams[train]
    else:
        val_sse, val_sse_sq, n_val = np.zeros(y.shape[1]), 0.0, 0
    fresh_error = row_error[fresh] if fresh is not None else row_error[:0]
    flips = 0 if W_prev is None else int(((x_aug @ W_prev.T > 0) != (u > 0)).sum())
    P = Q = s = D = D_trace = None
    D_rows = 0
    if hidden and dense:
        P, Q, s = hidden_gram(a, x_aug, y)
    elif hidden:
        Q, s = hidden_rhs_sums(a, x_aug, y)
        D_trace = (a**2).T @ (x_aug**2).sum(axis=1)
        some = slice(None) if grams is None else grams
        rows = x_aug[some]
        D, D_rows = neuron_grams(u[some] > 0, rows, alpha), len(rows)
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
        D_rows=D_rows,
        D_trace=D_trace,
        held_out=held,
    )
