"""Random row samples that do not depend on chunking, and the in-memory pool of sampled rows.

A row's sample rank is a hash of its global index and the seed (:func:`streamls.split.row_ranks`),
so the sample of fraction ``f`` (the rows ranked below ``f``) is the same whatever the block
size or the worker that read it, and samples of growing ``f`` are nested. The pool holds
its rows in rank bands, one per stage, so a stage's rows are whole blocks or prefixes of
blocks, never a scattered subset that would have to be copied on every pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..sources import Block
from ..split import row_ranks

#: Bytes a pooled row carries besides its values: its global index (int64) and rank (float64).
POOLED_ROW_OVERHEAD = 16
#: Copies of the pool held at once while it is grouped into bands, at most (see :func:`banded`).
POOL_BUILD_COPIES = 2
#: Bands holding fewer pooled rows than this per stored block, counted together, are gathered
#: into whole blocks; the larger bands stay in the blocks the moments pass pooled, uncopied.
#: Copying a big pool costs about as much as reading it (fresh memory is slow to touch), while
#: a pass over blocks of this many rows is as fast as over larger ones.
MIN_IN_PLACE_ROWS = 4096


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

    def taken(self, block: Block, bands: Sequence[float] = ()) -> Block:
        """A copy of the block's kept rows in the sample, with their indices and ranks (the pool's layout).

        Known ranks (a pooled block's) are reused; otherwise they are hashed once here.

        Parameters
        ----------
        block : Block
        bands : sequence of float
            Rank band edges (see :func:`banded`): the rows are ordered by band, in row order
            within a band. Empty: in row order.

        Returns
        -------
        Block
            With ``index`` (int64, shape (m,)) and ``ranks`` (float64, shape (m,)).
        """
        rows = block.rows
        ranks = block.ranks if block.ranks is not None else row_ranks(rows, self.seed)
        chosen = ranks < self.fraction
        if block.keep is not None:
            chosen &= block.keep
        chosen = np.flatnonzero(chosen)
        if len(bands):
            chosen = chosen[np.argsort(band_of(ranks[chosen], bands), kind="stable")]
        return Block(block.start, block.x[chosen], block.y[chosen], None, rows[chosen].astype(np.int64), ranks[chosen])


def band_of(ranks: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The band ``i`` with ``edges[i-1] <= rank < edges[i]`` of each rank, shape like ``ranks``."""
    return np.searchsorted(edges, ranks, side="right").astype(np.uint16)


def sliced(block: Block, rows: slice) -> Block:
    """A view of the block's ``rows`` (of a pooled block: with their indices and ranks)."""
    return Block(block.start, block.x[rows], block.y[rows], None,
                 None if block.index is None else block.index[rows], None if block.ranks is None else block.ranks[rows])


def drained(blocks: list[Block]) -> Iterator[Block]:
    """The list's blocks in order, each removed from the list as it is handed out (the list ends empty)."""
    blocks.reverse()
    while blocks:
        yield blocks.pop()


def banded(blocks: list[Block], edges: Sequence[float], rows_per_block: int) -> list[Block]:
    """The pool: pooled rows in rank bands ``[edges[i-1], edges[i])``, so that a stage is a prefix of each block.

    ``blocks`` are the moments pass's pooled blocks, their rows ordered by band
    (:meth:`Sample.taken` with ``edges``). The first bands, those that together hold fewer
    than :data:`MIN_IN_PLACE_ROWS` rows per block, are gathered into whole blocks of
    ``rows_per_block`` rows, so even a small stage runs as a few large blocks rather than a
    small part of every stored block. The other rows stay where they are: the blocks (now
    views of their later bands) follow the gathered ones, and a stage covers a prefix of
    each, which :func:`in_sample` cuts without copying. Within a gathered band rows keep
    their row order, which does not depend on chunking. The list is emptied as it is read and
    a block wholly gathered is freed once copied, so the rows are held at most twice (once
    when nothing is gathered).
    """
    edges = edges if len(edges) else (math.inf,)  # no stages given: one band
    if not blocks:
        return []
    bands = []
    for block in blocks:
        assert block.ranks is not None and block.index is not None, "banded() takes pooled blocks"
        bands.append(band_of(block.ranks, edges))
        assert np.all(bands[-1][1:] >= bands[-1][:-1]), "banded() takes blocks ordered by band"
    counts = np.array([np.bincount(b, minlength=len(edges)) for b in bands])
    sizes = counts.sum(axis=0)
    gathered = int(np.searchsorted(np.cumsum(sizes), MIN_IN_PLACE_ROWS * len(blocks), side="left"))
    first = blocks[0]
    # A gathered band starts at the first stored block that holds any of its rows.
    parts = [Block(blocks[int(np.argmax(counts[:, band] > 0))].start, np.empty((size, *first.x.shape[1:]), first.x.dtype),
                   np.empty((size, *first.y.shape[1:]), first.y.dtype), None, np.empty(size, np.int64), np.empty(size, np.float64))
             for band, size in enumerate(sizes[:gathered])]
    filled = np.zeros(gathered, np.int64)
    in_place: list[Block] = []
    for block, count in zip(drained(blocks), counts):
        lo = 0
        for band in range(gathered):
            hi, at = lo + count[band], filled[band]
            for source, target in zip((block.x, block.y, block.index, block.ranks), (parts[band].x, parts[band].y, parts[band].index, parts[band].ranks)):
                target[at : at + hi - lo] = source[lo:hi]  # type: ignore[index]
            filled[band] += hi - lo
            lo = hi
        if lo < len(block.x):
            in_place.append(sliced(block, slice(lo, None)))
    return [
        sliced(part, slice(lo, lo + rows_per_block))
        for part in parts
        for lo in range(0, len(part.x), rows_per_block)
    ] + in_place


def in_sample(blocks: Sequence[Block], sample: Sample) -> list[Block]:
    """The pool's rows in ``sample``: whole blocks and views of block prefixes, copied only where they are not a prefix.

    At a stage's fraction (a band edge) the sampled rows of every pooled block are a prefix.
    """
    if sample.everything:
        return list(blocks)
    out = []
    for block in blocks:
        assert block.ranks is not None, "in_sample() takes pooled blocks"
        inside = int(np.count_nonzero(block.ranks < sample.fraction))
        if inside == len(block.ranks):
            out.append(block)
        elif inside and block.ranks[:inside].max() < sample.fraction:
            out.append(sliced(block, slice(0, inside)))
        elif inside:
            out.append(sample.taken(block))
    return out


def block_bytes(block: Block) -> int:
    """Memory a pooled block holds: its values, indices and ranks."""
    extra = sum(a.nbytes for a in (block.index, block.ranks) if a is not None)
    return int(block.x.nbytes + block.y.nbytes + extra)
