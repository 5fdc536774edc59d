"""Random row samples that do not depend on chunking, and the in-memory pool of sampled rows.

A row's sample rank is a hash of its global index and the seed (:func:`streamls.split.row_ranks`),
so the sample of fraction ``f`` (the rows ranked below ``f``) is the same whatever the block
size or the worker that read it, and samples of growing ``f`` are nested. A pooled block holds
its rows sorted by rank, so any smaller sample of it is a prefix: a view, not a copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..sources import Block
from ..split import row_ranks

#: Bytes a pooled row carries besides its values: its global index (int64) and rank (float64).
POOLED_ROW_OVERHEAD = 16


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


def coalesced(blocks: Iterable[Block], rows_per_block: int) -> list[Block]:
    """Neighbouring pooled blocks merged into blocks of about ``rows_per_block`` rows, rank-sorted.

    A small sample leaves a few rows per stored block; merging them keeps the BLAS work of
    a pass in large blocks. Fed by :func:`drained`, each block is freed once merged.
    """
    merged: list[Block] = []
    group: list[Block] = []
    for block in blocks:
        if group and sum(len(b.x) for b in group) + len(block.x) > rows_per_block:
            merged.append(_merge(group))
            group = []
        group.append(block)
    if group:
        merged.append(_merge(group))
    return [b for b in merged if len(b.x)]


def _merge(group: Sequence[Block]) -> Block:
    if len(group) == 1:
        return group[0]
    ranks = np.concatenate([b.ranks for b in group if b.ranks is not None])
    order = np.argsort(ranks, kind="stable")
    index = np.concatenate([b.index for b in group if b.index is not None])
    return Block(
        group[0].start,
        np.concatenate([b.x for b in group])[order],
        np.concatenate([b.y for b in group])[order],
        None,
        index[order],
        ranks[order],
    )


def block_bytes(block: Block) -> int:
    """Memory a pooled block holds: its values, indices and ranks."""
    extra = sum(a.nbytes for a in (block.index, block.ranks) if a is not None)
    return int(block.x.nbytes + block.y.nbytes + extra)
