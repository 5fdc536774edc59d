"""What one pass over the data computes, independent of where it runs.

A request turns a :class:`~streamls.sources.Block` into additive statistics. Every
backend evaluates the same request the same way: :func:`accumulate` over a row range,
then ``+`` over ranges (sequentially in-process, as a tree reduction on Dask).
Requests are small, picklable and carry the current model, so a worker needs nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from ..concurrency import ordered_map, single_threaded_blas
from ..errors import StatisticsError, parameter_error
from ..sources import Block, Dataset
from ..split import row_ranks, row_uniforms
from .moments import ColumnMoments, DataMoments, Standardizer
from .pass_stats import PassStatistics, block_statistics
from .products import CandidateSums, HiddenProducts, PatternBlocks, PatternRows, candidate_sums, kept_dtype, pattern_rows
from .sample import Sample, block_bytes

S = TypeVar("S", DataMoments, PassStatistics, HiddenProducts, CandidateSums, PatternBlocks)


class PassRequest(Protocol[S]):  # type: ignore[misc]
    """Anything that maps a block of rows to additive statistics."""

    def on_block(self, block: Block) -> S:
        """Statistics of one block's rows, to be summed with ``+`` over blocks.

        Parameters
        ----------
        block : Block
            Rows ``[block.start, block.stop)``; those not in ``block.keep`` are ignored.

        Returns
        -------
        DataMoments or PassStatistics
            Additive: the statistics of a row range are the sum over its blocks.
        """

    @property
    def statistics_bytes(self) -> int:
        """Approximate bytes of one block's statistics: what each extra worker thread holds."""


@dataclass(frozen=True)
class Holdout:
    """Rows held out for validation: those whose row hash falls below ``fraction``."""

    fraction: float = 0.0
    seed: int = 0

    def mask(self, block: Block) -> np.ndarray:
        """Validation rows of ``block``, shape (m,)."""
        if self.fraction <= 0.0:
            return np.zeros(len(block.x), dtype=bool)
        return row_uniforms(block.rows, self.seed) < self.fraction


def _kept(block: Block, holdout: Holdout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, targets and validation mask of the rows the NaN policy keeps."""
    validation = holdout.mask(block)
    if block.keep is None:
        return block.x, block.y, validation
    return block.x[block.keep], block.y[block.keep], validation[block.keep]


@dataclass(frozen=True)
class MomentsRequest:
    """The first pass: moments of the training rows' inputs and targets.

    Attributes
    ----------
    holdout : Holdout
    anchor_candidates : numpy.ndarray of int64, shape (r,)
        Sorted global row indices whose inputs to collect (for initialisation) when they
        are training rows.
    pool : Sample or None
        Rows to keep in memory as well (training and validation rows alike), or none.
    bands : tuple of float
        Ascending rank fractions (the stages within the pool, the last ``pool.fraction``)
        by which the pool groups its rows.
    """

    holdout: Holdout
    anchor_candidates: np.ndarray
    pool: Sample | None = None
    bands: tuple[float, ...] = ()

    @property
    def statistics_bytes(self) -> int:
        """Bytes of one block's moments: a few vectors and the block's anchors, negligible."""
        return 0

    def on_block(self, block: Block) -> DataMoments:
        """Moments of the block's kept training rows, in the stored units.

        Returns
        -------
        DataMoments
            Column moments of the training rows' inputs (d columns) and targets (k columns),
            the count of kept validation rows, ``block.dropped``, the anchor candidates in
            ``[block.start, block.stop)`` that are training rows: global indices, shape (r_b,),
            and their inputs as float64, shape (r_b, d); and, with ``pool``, the block's kept rows
            in the pool (see :meth:`streamls.stats.sample.Sample.taken`).
        """
        validation = self.holdout.mask(block)
        train = ~validation if block.keep is None else ~validation & block.keep
        lo, hi = np.searchsorted(self.anchor_candidates, [block.start, block.stop])
        local = self.anchor_candidates[lo:hi] - block.start
        local = local[train[local]]
        kept = () if self.pool is None else (self.pool.taken(block, self.bands),)
        return DataMoments(
            ColumnMoments.of(block.x[train]),
            ColumnMoments.of(block.y[train]),
            int(validation.sum() if block.keep is None else (validation & block.keep).sum()),
            block.dropped,
            local + block.start,
            np.asarray(block.x[local], dtype=np.float64),
            kept,
            sum(len(b.x) for b in kept),
            sum(block_bytes(b) for b in kept),
        )


@dataclass(frozen=True)
class StatisticsRequest:
    """A training pass for the model ``(W, B)`` in standardised coordinates.

    Attributes
    ----------
    standardizer : Standardizer
    W : numpy.ndarray, shape (h, d + 1)
    B : numpy.ndarray, shape (h + 1, k)
    alpha : float
    holdout : Holdout
    W_prev : numpy.ndarray or None
        Previous hidden weights, to count pattern flips.
    hidden : bool
        Whether to build the hidden-layer statistics (False for a final evaluation).
    sample : Sample
        The rows the pass covers (training and validation rows alike).
    seen : float
        Rows ranked below it were in the previous stage's sample; the others are fresh to
        the model, and their loss is summed apart (0: none was seen).
    held_out : bool
        Whether to sum the validation rows' :class:`~streamls.stats.pass_stats.HeldOutSums`
        too, which score candidate layers (``l2="auto"``).
    dense : bool
        Build the dense ``P``; else the block form for the matrix-free hidden solve
        (``D``, ``h p^2`` numbers).
    grams_rank : float
        In the block form, only the sample's rows ranked below it add to ``D``
        (:func:`streamls.matrix_free.preconditioner_share`); 1 for every row.
    """

    standardizer: Standardizer
    W: np.ndarray
    B: np.ndarray
    alpha: float
    holdout: Holdout
    W_prev: np.ndarray | None = None
    hidden: bool = True
    sample: Sample = Sample()
    seen: float = 0.0
    held_out: bool = False
    dense: bool = True
    grams_rank: float = 1.0

    @property
    def statistics_bytes(self) -> int:
        """Bytes of the Gram matrices a block builds: ``(h p + k + 1)^2`` float64 (twice with
        ``held_out``), ``h p^2`` in the block form, or ``(h + 1)^2`` without hidden sums."""
        if not self.hidden:
            return 8 * self.B.shape[0] ** 2
        if not self.dense:
            return 8 * self.W.size * self.W.shape[1]
        return 8 * (self.W.size + self.B.shape[1] + 1) ** 2 * (2 if self.held_out else 1)

    def on_block(self, block: Block) -> PassStatistics:
        """Pass statistics of the block's kept rows under the model ``(W, B)``.

        Only the rows in ``sample`` count. Inputs and targets are standardised first;
        validation rows add only to ``n_val``, ``val_sse``, ``val_sse_sq`` and, with
        ``held_out``, ``held_out``.

        Returns
        -------
        PassStatistics
            Sums over the block's training rows: ``G`` (h + 1, h + 1), ``C`` (h + 1, k), ``sse``
            (k,), ``active`` (h,) and, when ``hidden``, ``P`` (h p, h p), ``Q`` (h p, k) and ``s``
            (h p,) with ``p = d + 1``; ``dropped`` is ``block.dropped``.
        """
        dropped = block.dropped
        block = self.sample.of(block)
        x, y, validation = _kept(block, self.holdout)
        fresh = grams = None
        subset = self.hidden and not self.dense and self.grams_rank < self.sample.fraction
        if self.seen > 0 or subset:
            # A sampled block carries its ranks; only an every-row pass hashes them here.
            ranks = block.ranks if block.ranks is not None else row_ranks(block.rows, self.sample.seed)
            ranks = ranks[block.keep] if block.keep is not None else ranks
            fresh = ranks >= self.seen if self.seen > 0 else None
            grams = ranks < self.grams_rank if subset else None
        return block_statistics(
            self.standardizer.design(x),
            self.standardizer.targets(y),
            self.W,
            self.B,
            self.alpha,
            validation=validation,
            W_prev=self.W_prev,
            hidden=self.hidden,
            dropped=dropped,
            fresh=fresh,
            held_out=self.held_out,
            dense=self.dense,
            grams=grams,
        )


@dataclass(frozen=True)
class PatternRequest:
    """The rows of a sample under the pattern of ``W``: what the product passes of one iteration compute from.

    Not a sum: a backend keeps each block's :class:`~.products.PatternRows` where the block
    is pooled (``Backend.fix_pattern``), so that those passes skip the standardisation and
    the pattern: on pooled float32 rows (d = 128, h = 32, one core) a product pass took
    0.75 us a row from them in float64, 0.33 us in float32, against 1.5 to 1.9 from the
    stored rows.

    Attributes
    ----------
    standardizer : Standardizer
    W : numpy.ndarray, shape (h, d + 1)
        Hidden weights that fix the pattern.
    holdout : Holdout
    sample : Sample
    """

    standardizer: Standardizer
    W: np.ndarray
    holdout: Holdout
    sample: Sample = Sample()

    @property
    def statistics_bytes(self) -> int:
        """Bytes of one block's result besides the rows it keeps: negligible."""
        return 0

    def rows_of(self, block: Block) -> PatternRows:
        """The block's kept rows of the sample under the pattern, training and validation rows apart."""
        x, _, validation = _kept(self.sample.of(block), self.holdout)
        return pattern_rows(self.standardizer.design(x), self.W, validation, kept_dtype(x.dtype))

    def on_block(self, block: Block) -> PatternBlocks:
        """:meth:`rows_of` the block, to be joined with the next blocks' by ``+``."""
        return PatternBlocks((self.rows_of(block),))


@dataclass(frozen=True)
class ProductRequest:
    """A product pass of the matrix-free hidden solve: ``M v`` for directions ``v`` (see :mod:`.products`).

    ``M`` is the matrix of the pattern of ``rows.W`` (the pass's model) and output weights
    ``V``. Covers the same rows as the statistics pass it follows: blocks of stored rows, or
    the pattern rows a backend kept of them (:class:`PatternRequest`).

    Attributes
    ----------
    rows : PatternRequest
    V : numpy.ndarray, shape (h, k)
    directions : numpy.ndarray, shape (r, h, d + 1)
    alpha : float
    validation : bool
        Whether to sum the validation rows' products too (else they are zeros).
    """

    rows: PatternRequest
    V: np.ndarray
    directions: np.ndarray
    alpha: float
    validation: bool = False

    @property
    def statistics_bytes(self) -> int:
        """Bytes of one block's products: two ``(r, h, p)`` arrays."""
        return 16 * self.directions.size

    def on_block(self, block: Block | PatternRows) -> HiddenProducts:
        """The products over a block's kept rows of the sample (or over its kept pattern rows).

        Returns
        -------
        HiddenProducts
            ``train`` and ``validation``, each shape (r, h, p).
        """
        fixed = block if isinstance(block, PatternRows) else self.rows.rows_of(block)
        return fixed.products(self.V, self.directions, self.alpha, self.validation)


@dataclass(frozen=True)
class CandidateRequest:
    """A pass that scores candidate hidden layers: the output layer's sums under each (see :mod:`.products`).

    Covers the training rows of the same sample as the statistics pass it follows.

    Attributes
    ----------
    standardizer : Standardizer
    candidates : numpy.ndarray, shape (r, h, d + 1)
    alpha : float
    holdout : Holdout
    sample : Sample
    """

    standardizer: Standardizer
    candidates: np.ndarray
    alpha: float
    holdout: Holdout
    sample: Sample = Sample()

    @property
    def statistics_bytes(self) -> int:
        """Bytes of one block's sums: ``r (h + 1)^2`` float64, ``C`` aside."""
        r, h, _ = self.candidates.shape
        return 8 * r * (h + 1) ** 2

    def on_block(self, block: Block) -> CandidateSums:
        """The sums over the block's kept training rows of the sample.

        Returns
        -------
        CandidateSums
            ``G`` (r, h + 1, h + 1) and ``C`` (r, h + 1, k).
        """
        x, y, validation = _kept(self.sample.of(block), self.holdout)
        x_aug = self.standardizer.design(x[~validation])
        return candidate_sums(x_aug, self.standardizer.targets(y[~validation]), self.candidates, self.alpha)


def accumulate(
    dataset: Dataset,
    request: PassRequest[S],
    start: int = 0,
    stop: int | None = None,
    prefetch: bool = True,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> S:
    """Sum ``request``'s statistics over the blocks of rows ``[start, stop)`` of ``dataset``.

    The blocks are read in a background thread when ``prefetch``; see :func:`accumulate_blocks`.
    """
    workers = min(workers, len(dataset.block_ranges(start, stop)))
    with contextlib.closing(dataset.blocks(start, stop, prefetch=prefetch)) as blocks:
        return accumulate_blocks(blocks, request, progress, workers, f"{dataset.name}: rows [{start}, {stop})")


def accumulate_blocks(
    blocks: Iterable[Block] | Iterable[PatternRows],
    request: PassRequest[S],
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    what: str = "blocks",
) -> S:
    """Sum ``request``'s statistics over ``blocks``, in their order.

    With ``workers > 1`` that many threads compute blocks at once, each with single-threaded
    BLAS (the thread count stays ``workers``); parts are still summed in block order, so
    the result does not depend on which thread finished first. ``progress``, if given, is
    called with the number of rows of each finished block.
    """
    if workers < 1:
        raise parameter_error("accumulate_blocks", "workers", "an int in the range [1, inf)", workers)

    def rows_and_part(block: Block) -> tuple[int, S]:
        return block.n_rows, request.on_block(block)  # a ProductRequest takes PatternRows too

    # Every thread started here is stopped on the way out, even on an error or interrupt.
    with contextlib.ExitStack() as stack:
        if workers <= 1:
            parts: Iterator[tuple[int, S]] = map(rows_and_part, blocks)
        else:
            # BLAS threads on top of ours would oversubscribe the cores.
            stack.enter_context(single_threaded_blas())
            # One block queued beyond the busy workers keeps them fed; more would only hold memory.
            parts = stack.enter_context(contextlib.closing(ordered_map(rows_and_part, blocks, workers, ahead=workers + 1)))
        total = None
        for rows, part in parts:
            total = part if total is None else total + part
            del part  # free this block's matrices before the next block builds its own
            if progress is not None:
                progress(rows)
    if total is None:
        raise StatisticsError(f"{what}: empty row range")
    return total
