"""Random row samples that do not depend on chunking, and the in-memory pool of sampled rows.

A row's sample rank is a hash of its global index and the seed (:func:`streamls.split.row_ranks`),
so the sample of fraction ``f`` (the rows ranked below ``f``) is the same whatever the block
size or the worker that read it, and samples of growing ``f`` are nested. The pool holds
its rows in rank bands, one per stage, so a stage's rows are whole blocks at its start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..sources import Block
from ..split import row_ranks

#: Bytes a pooled row carries besides its values: its global index (int64) and rank (float64).
POOLED_ROW_OVERHEAD = 16
#: Copies of the pool held at once while it is grouped into bands (see :func:`banded`).
POOL_BUILD_COPIES = 2


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

        A pooled block wholly in the sample is returned as it is; any other block gives
        :meth:`taken`'s copy.
        """
        if self.everything or (block.ranks is not None and block.ranks.max() < self.fraction):
            return block
        return self.taken(block)

    def taken(self, block: Block) -> Block:
        """A copy of the block's kept rows in the sample, with their indices and ranks (the pool's layout).

        Known ranks (a pooled block's) are reused; otherwise they are hashed once here.

        Returns
        -------
        Block
            With ``index`` (int64, shape (m,)) and ``ranks`` (float64, shape (m,)), in row order.
        """
        rows = block.rows
        ranks = block.ranks if block.ranks is not None else row_ranks(rows, self.seed)
        chosen = ranks < self.fraction
        if block.keep is not None:
            chosen &= block.keep
        return Block(block.start, block.x[chosen], block.y[chosen], None, rows[chosen].astype(np.int64), ranks[chosen])


def drained(blocks: list[Block]) -> Iterator[Block]:
    """The list's blocks in order, each removed from the list as it is handed out (the list ends empty)."""
    blocks.reverse()
    while blocks:
        yield blocks.pop()


def banded(blocks: Iterable[Block], edges: Sequence[float], rows_per_block: int) -> list[Block]:
    """Pooled rows grouped into rank bands ``[edges[i-1], edges[i])``, each cut into blocks of ``rows_per_block``.

    With the stage fractions as edges, a stage's rows are exactly the first bands of the pool,
    in whole blocks, so even a small stage runs as a few large blocks rather than a small part
    of every stored block. Within a band rows keep their row order, which does not depend on
    chunking. While grouping, the rows are held twice (fed by :func:`drained`, each input
    block is freed once split).
    """
    edges = edges if len(edges) else (math.inf,)  # no stages given: one band
    bands: list[list[Block]] = [[] for _ in edges]
    for block in blocks:
        assert block.ranks is not None and block.index is not None, "banded() takes pooled blocks"
        which = np.searchsorted(edges, block.ranks, side="right")
        for band in np.unique(which):
            rows = which == band
            bands[band].append(Block(block.start, block.x[rows], block.y[rows], None, block.index[rows], block.ranks[rows]))
    out: list[Block] = []
    for parts in bands:
        if not parts:
            continue
        start = parts[0].start
        x, y = np.concatenate([b.x for b in parts]), np.concatenate([b.y for b in parts])
        index = np.concatenate([b.index for b in parts])  # type: ignore[misc]
        ranks = np.concatenate([b.ranks for b in parts])  # type: ignore[misc]
        parts.clear()
        out += [
            Block(start, x[lo : lo + rows_per_block], y[lo : lo + rows_per_block], None,
                  index[lo : lo + rows_per_block], ranks[lo : lo + rows_per_block])
            for lo in range(0, len(x), rows_per_block)
        ]
    return out


def in_sample(blocks: Sequence[Block], sample: Sample) -> Sequence[Block]:
    """The blocks of a banded pool that hold rows of ``sample``: a prefix of the pool."""
    if sample.everything:
        return blocks
    count = 0
    while count < len(blocks) and blocks[count].ranks is not None and blocks[count].ranks.min() < sample.fraction:
        count += 1
    return blocks[:count]


def block_bytes(block: Block) -> int:
    """Memory a pooled block holds: its values, indices and ranks."""
    extra = sum(a.nbytes for a in (block.index, block.ranks) if a is not None)
    return int(block.x.nbytes + block.y.nbytes + extra)
