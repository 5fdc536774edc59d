"""Random row samples that do not depend on chunking, and the in-memory pool of sampled rows.

A row's sample rank is a hash of its global index and the seed (:func:`streamls.split.row_ranks`),
so the sample of fraction ``f`` (the rows ranked below ``f``) is the same whatever the block
size or the worker that read it, and samples of growing ``f`` are nested. The pool holds
its rows sorted by rank, so any smaller sample of it is a prefix: views, not copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..sources import Block
from ..split import row_ranks

#: Bytes a pooled row carries besides its values: its global index (int64) and rank (float64).
POOLED_ROW_OVERHEAD = 16
#: Copies of the pool held at once while it is sorted by rank (see :func:`rank_sorted`).
POOL_SORT_COPIES = 2


@dataclass(frozen=True)
class Sample:
    """The rows whose rank is below ``fraction`` (every row when ``fraction >= 1``)."""

    fraction: float = 1.0
    seed: int = 0

    @property
    def everything(self) -> bool:
        """Whether the sample is every row (no rank is computed then)."""
        return self.fraction >= 1.0

    def of(self, block: Block) -> Block:
        """The block's kept rows that are in the sample (the block itself when it is every row).

        A pooled block (ranks known and sorted) gives a prefix view; any other block a copy
        with ``index`` set and ``keep`` applied.
        """
        if self.everything:
            return block
        if block.ranks is not None:
            m = int(np.searchsorted(block.ranks, self.fraction))
            index = None if block.index is None else block.index[:m]
            return Block(block.start, block.x[:m], block.y[:m], None, index, block.ranks[:m])
        rows = block.rows
        chosen = row_ranks(rows, self.seed) < self.fraction
        if block.keep is not None:
            chosen &= block.keep
        return Block(block.start, block.x[chosen], block.y[chosen], None, rows[chosen])


def pooled(block: Block, sample: Sample) -> Block:
    """A copy of the block's kept rows in ``sample``, sorted by rank (the pool's layout).

    Returns
    -------
    Block
        With ``index`` (int64, shape (m,)) and ascending ``ranks`` (float64, shape (m,)).
    """
    rows = block.rows
    ranks = row_ranks(rows, sample.seed)
    chosen = ranks < sample.fraction if not sample.everything else np.ones(len(rows), dtype=bool)
    if block.keep is not None:
        chosen &= block.keep
    where = np.flatnonzero(chosen)
    where = where[np.argsort(ranks[where], kind="stable")]
    return Block(block.start, block.x[where], block.y[where], None, rows[where].astype(np.int64), ranks[where])


def drained(blocks: list[Block]) -> Iterator[Block]:
    """The list's blocks in order, each removed from the list as it is handed out (the list ends empty)."""
    blocks.reverse()
    while blocks:
        yield blocks.pop()


def rank_sorted(blocks: Iterable[Block], rows_per_block: int) -> list[Block]:
    """All pooled rows sorted by rank (ties by row index) and cut into blocks of ``rows_per_block``.

    A stage's rows are then the first blocks of the pool, whole but the last, so even a small
    stage runs as a few large blocks rather than a small prefix of every stored block. The
    order does not depend on the order of ``blocks``. While sorting, the rows are held twice
    (fed by :func:`drained`, the input blocks are freed once concatenated); the blocks
    returned are views of one array each for inputs, targets, indices and ranks.
    """
    parts = [b for b in blocks if len(b.x)]
    if not parts:
        return []
    start = parts[0].start
    x = np.concatenate([b.x for b in parts])
    y = np.concatenate([b.y for b in parts])
    index = np.concatenate([b.index for b in parts if b.index is not None])
    ranks = np.concatenate([b.ranks for b in parts if b.ranks is not None])
    del parts
    order = np.lexsort((index, ranks))
    x, y, index, ranks = x[order], y[order], index[order], ranks[order]
    return [
        Block(start, x[lo : lo + rows_per_block], y[lo : lo + rows_per_block], None,
              index[lo : lo + rows_per_block], ranks[lo : lo + rows_per_block])
        for lo in range(0, len(x), rows_per_block)
    ]


def in_sample(blocks: Sequence[Block], sample: Sample) -> Sequence[Block]:
    """The rank-sorted pool blocks that hold rows of ``sample``: a prefix of the pool."""
    if sample.everything:
        return blocks
    count = 0
    while count < len(blocks) and blocks[count].ranks is not None and blocks[count].ranks[0] < sample.fraction:
        count += 1
    return blocks[:count]


def block_bytes(block: Block) -> int:
    """Memory a pooled block holds: its values, indices and ranks."""
    extra = sum(a.nbytes for a in (block.index, block.ranks) if a is not None)
    return int(block.x.nbytes + block.y.nbytes + extra)
