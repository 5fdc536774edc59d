"""In-process backend: a reader thread prefetches blocks while worker threads compute them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from ..concurrency import available_threads
from ..errors import parameter_error
from ..sources import Block, Dataset
from ..stats import DataMoments, MomentsRequest, PassRequest, PassStatistics, accumulate
from ..stats.passes import PatternRequest, ProductRequest, accumulate_blocks
from ..stats.products import HiddenProducts, PatternBlocks, PatternRows
from ..stats.sample import banded, in_sample

S = TypeVar("S", DataMoments, PassStatistics, HiddenProducts, PatternBlocks)

#: Above this size of one block's statistics (a Gram matrix about 720 wide) the matrix
#: product of ``P`` dominates a pass and one multi-threaded product beats several
#: single-threaded ones that each stream their own matrix through the cache. Measured on 2
#: cores from HDF5, blocks in parallel over one block thread: 1.22x at 272 hidden unknowns,
#: 1.08x at 544 and 0.80x at 1056 (with the pair products of
#: :func:`streamls.stats.pass_stats.pair_gram`; the symmetric rank-k update before them gave
#: 1.27x at 544 and 0.75x at 1056).
PARALLEL_BLOCKS_MAX_BYTES = 4 << 20


@dataclass
class LocalPool:
    """Pooled rows in this process, in rank bands (one per stage) of blocks of ``block_rows`` rows."""

    blocks: list[Block]


class LocalBackend:
    """Evaluate passes in this process.

    Parameters
    ----------
    prefetch : bool
        Read the next block in a background thread while the current ones are computed.
    progress : callable, optional
        Called with the row count of every finished block (the CLI's progress bar).
    workers : int, optional
        Most blocks computed at once, each by its own thread with single-threaded BLAS
        (default: :func:`streamls.concurrency.available_threads`, which follows
        ``threadpool_limits`` and the BLAS thread variables). Passes whose per-block
        statistics exceed :data:`PARALLEL_BLOCKS_MAX_BYTES` run one block at a time.
    """

    def __init__(self, prefetch: bool = True, progress: Callable[[int], None] | None = None, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise parameter_error("LocalBackend", "workers", "an int in the range [1, inf) or None", workers)
        self.prefetch = prefetch
        self.progress = progress
        self.workers = workers

    def workers_for(self, request: PassRequest[S]) -> int:
        """Threads that compute ``request``'s blocks: at most ``workers`` and the available threads."""
        if request.statistics_bytes > PARALLEL_BLOCKS_MAX_BYTES:
            return 1
        available = available_threads()
        return available if self.workers is None else min(self.workers, available)

    def run(self, dataset: Dataset, request: PassRequest[S]) -> S:
        """Sum ``request``'s statistics over all blocks of ``dataset`` in this process.

        Same as :func:`streamls.stats.accumulate` with this backend's ``prefetch``, ``progress``
        and :meth:`workers_for` threads.
        """
        return accumulate(dataset, request, prefetch=self.prefetch, progress=self.progress, workers=self.workers_for(request))

    def pool(self, dataset: Dataset, request: MomentsRequest) -> tuple[DataMoments, LocalPool]:
        """The moments pass, keeping ``request.pool``'s rows in this process's memory.

        Returns the moments (without the rows) and the pool for :meth:`run_pooled`.
        """
        moments = self.run(dataset, request)
        blocks = list(moments.pooled)
        moments = replace(moments, pooled=())  # the list is now the rows' only holder, so merging frees them
        return moments, LocalPool(banded(blocks, request.bands, dataset.block_rows))

    def run_pooled(self, pool: LocalPool, request: PassRequest[S]) -> S:
        """Sum ``request``'s statistics over the pooled blocks holding its sample, blocks on :meth:`workers_for` threads."""
        return self._accumulate(in_sample(pool.blocks, request.sample), request, "pool")

    def fix_pattern(self, pool: LocalPool, request: PatternRequest) -> PatternBlocks:
        """The pooled rows of ``request.sample`` under its pattern, kept in this process for :meth:`run_fixed`."""
        return self.run_pooled(pool, request)

    def run_fixed(self, fixed: PatternBlocks, request: ProductRequest) -> HiddenProducts:
        """Sum ``request``'s products over the pattern rows of :meth:`fix_pattern`, blocks on :meth:`workers_for` threads."""
        return self._accumulate(fixed.blocks, request, "pattern rows")

    def _accumulate(self, blocks: Sequence[Block] | Sequence[PatternRows], request: PassRequest[S], what: str) -> S:
        """:func:`accumulate_blocks` over rows in memory, on :meth:`workers_for` threads (at most one per block)."""
        return accumulate_blocks(blocks, request, self.progress, max(1, min(self.workers_for(request), len(blocks))), what)

    def close(self) -> None:
        """Nothing to release."""
