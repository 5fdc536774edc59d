"""Memory estimates for a training run, and the block size that keeps the peak under a limit.

The peak of a local run is dominated by the hidden-layer statistics: ``P`` has
``(h p)^2`` float64 entries (``p = d + 1``). While a block is summed, up to five matrices of
that size live at once: the previous pass's statistics (still referenced by the training
loop), the running total, the previous block's part (still bound in the accumulation loop),
and the new block's full matrix with its pair sums (a quarter of one). During the solve there
are five: ``P``, ``M``, ``M`` plus the ridge, its Cholesky factor and the temporary of the
norm estimate. Measured with tracemalloc (h = 48, d = 31), the live peak was 4.9 matrices
plus the block buffers; the count of six keeps a margin. Everything else scales with the
block's rows. Each further thread computing blocks in parallel holds one more block's
buffers and up to three more matrices (its pair sums, full matrix and finished part).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError
from ..sizes import format_size
from ..stats.pass_stats import pair_counts, pair_tile_rows
from .messages import rechunk_command

#: Matrices of size ``(h p)^2`` alive at the peak with one block thread, and per further thread
#: (see the module docstring).
MATRIX_COPIES, MATRIX_COPIES_PER_WORKER = 6, 3
#: Resident memory assumed for the interpreter and libraries when it cannot be measured.
FALLBACK_BASELINE_BYTES = 256 << 20
#: BLAS work buffers, allocated at the first product and not seen by tracemalloc: the
#: process peak exceeded the traced peak plus the baseline by about 27 MiB (h = 64).
BLAS_WORKSPACE_BYTES = 64 << 20


class MemoryLimitError(ConfigError):
    """The run cannot fit under ``--memory-limit`` whatever the block size."""


def resident_bytes() -> int:
    """This process's resident memory now (the interpreter and imported libraries)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return FALLBACK_BASELINE_BYTES


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of a local training run.

    Attributes
    ----------
    hidden_units, n_features, n_targets : int
        ``h``, ``d`` and ``k``.
    baseline_bytes : int
        The interpreter and libraries.
    workers : int
        Threads computing blocks at once.
    """

    hidden_units: int
    n_features: int
    n_targets: int
    baseline_bytes: int
    workers: int = 1

    @property
    def matrix_copies(self) -> int:
        """``(h p)^2`` matrices alive at the peak."""
        return MATRIX_COPIES + MATRIX_COPIES_PER_WORKER * (self.workers - 1)

    @property
    def hp(self) -> int:
        """Unknowns of the hidden layer, ``h (d + 1)``."""
        return self.hidden_units * (self.n_features + 1)

    @property
    def matrix_bytes(self) -> int:
        """The ``(h p)^2`` float64 statistics matrices and their copies."""
        return self.matrix_copies * self.hp**2 * 8

    @property
    def tile_bytes(self) -> int:
        """The tiles of pair products of :func:`streamls.stats.pass_stats.pair_gram`."""
        h, p = self.hidden_units, self.n_features + 1
        return pair_tile_rows(h, p) * sum(pair_counts(h, p)) * 8

    @property
    def row_bytes(self) -> int:
        """Bytes per row of a block: the raw rows (twice, for the prefetched block), their
        float64 copies and the ``(m, h)``-shaped temporaries of the block statistics."""
        d, k, h = self.n_features, self.n_targets, self.hidden_units
        return 8 * (6 * (d + k) + 2 * (d + 1) + 8 * (h + 1))

    @property
    def fixed_bytes(self) -> int:
        """Bytes that do not grow with the block size: baseline, BLAS workspace, statistics matrices and tiles."""
        return self.baseline_bytes + BLAS_WORKSPACE_BYTES + self.matrix_bytes + self.workers * self.tile_bytes

    def peak_bytes(self, block_rows: int) -> int:
        """Estimated peak with blocks of ``block_rows`` rows."""
        return self.fixed_bytes + self.workers * block_rows * self.row_bytes


def plan_block_rows(estimate: MemoryEstimate, limit: int, requested: int, chunk_rows: int, data: str = "DATA") -> int:
    """The largest block size up to ``requested`` whose estimated peak stays under ``limit``.

    Blocks are whole multiples of the stored chunk (``chunk_rows``), so the smallest
    possible block is one chunk.

    Raises
    ------
    MemoryLimitError
        When even one stored chunk does not fit; the message names the size needed, the
        hyperparameters that drive it and, when smaller chunks would fit, how to re-chunk
        ``data`` (the inputs' data spec).
    """
    requested = max(chunk_rows, -(-requested // chunk_rows) * chunk_rows)
    block = min(requested, (fitting_rows(estimate, limit) // chunk_rows) * chunk_rows)
    if block >= chunk_rows:
        return int(block)
    raise limit_error(estimate, limit, chunk_rows, data)


def fitting_rows(estimate: MemoryEstimate, limit: int) -> int:
    """The most rows per block whose estimated peak stays under ``limit`` (0 or less: none fit)."""
    return (limit - estimate.fixed_bytes) // (estimate.workers * estimate.row_bytes)


def limit_error(estimate: MemoryEstimate, limit: int, block_rows: int, data: str = "DATA") -> MemoryLimitError:
    """The refusal for blocks of ``block_rows`` rows of ``data``: the size needed, what drives it, what would fit."""
    e = estimate
    fitting = fitting_rows(e, limit)
    remedies = "Lower --hidden-units (memory grows as its square) or raise --memory-limit"
    if 1 <= fitting < block_rows:
        # Blocks are whole stored chunks: smaller chunks are the one remedy that keeps the model.
        rows = 1 << (int(fitting).bit_length() - 1)  # a power of two, as data_tools sizes chunks
        remedies += (
            f", or store the data in smaller chunks (blocks are whole stored chunks, here {block_rows} rows; "
            f"blocks of {rows} rows fit): {rechunk_command(data, rows)}"
        )
    return MemoryLimitError(
        f"--memory-limit {format_size(limit)} is too small: hidden_units={e.hidden_units} with "
        f"{e.n_features} input features gives h*(d+1) = {e.hp} hidden-layer unknowns, whose statistics "
        f"need {format_size(e.matrix_bytes)} ({e.matrix_copies} float64 matrices of {e.hp} x {e.hp}); with "
        f"{format_size(e.baseline_bytes + BLAS_WORKSPACE_BYTES)} for the interpreter and BLAS buffers and "
        f"{format_size(e.workers * (e.tile_bytes + block_rows * e.row_bytes))} for blocks of {block_rows} rows the run needs "
        f"at least {format_size(e.peak_bytes(block_rows))}. {remedies}."
    )
