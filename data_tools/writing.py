"""Pieces every data_tools writer shares: chunk sizing, appending rows, progress."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from tqdm import tqdm

from streamls.sources.sinks import OutputFile

#: Bytes a stored chunk aims for: large enough for fast sequential I/O and compression,
#: small enough that a reader's block of whole chunks stays a few tens of MB.
TARGET_CHUNK_BYTES = 4 << 20
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 1024, 65536


def default_chunk_rows(row_bytes: int) -> int:
    """Rows per stored chunk for rows of ``row_bytes`` bytes: a power of two near 4 MiB of data."""
    rows = TARGET_CHUNK_BYTES // max(row_bytes, 1)
    power = 1 << max(int(rows).bit_length() - 1, 0)
    return int(np.clip(power, MIN_CHUNK_ROWS, MAX_CHUNK_ROWS))


def fitted_chunk_rows(row_bytes: int, n_rows: int | None, requested: int | None = None) -> int:
    """Rows per stored chunk: ``requested`` or :func:`default_chunk_rows`, but no more than the data's ``n_rows``.

    An HDF5 chunk takes its full size on disk however few rows it holds, so a table smaller
    than one default chunk gets a single chunk of its own length (``n_rows=None``: unknown,
    no cap).
    """
    chunk = requested or default_chunk_rows(row_bytes)
    return chunk if n_rows is None else max(1, min(chunk, n_rows))


class ArrayAppender:
    """An array of unknown final length in an :class:`OutputFile`, grown block by block.

    Parameters
    ----------
    out : OutputFile
    name : str
    n_cols : int or None
        Columns; ``None`` makes a 1-D array (a single target).
    dtype, chunk_rows, compression
        As for :meth:`OutputFile.create_array`.
    """

    def __init__(
        self, out: OutputFile, name: str, n_cols: int | None, dtype: Any, chunk_rows: int, compression: str | None
    ) -> None:
        self.trailing = () if n_cols is None else (n_cols,)
        self.dtype = np.dtype(dtype)
        self.array = out.create_array(name, (0, *self.trailing), self.dtype, chunk_rows, compression, resizable=True)
        self.n_rows = 0

    def append(self, rows: np.ndarray) -> None:
        """Append rows, shape (m, n_cols) (or (m,) / (m, 1) for a 1-D array)."""
        rows = np.asarray(rows).reshape(-1, *self.trailing)
        if not len(rows):
            return
        stop = self.n_rows + len(rows)
        self.array.resize((stop, *self.trailing))
        self.array[self.n_rows : stop] = rows.astype(self.dtype, copy=False)
        self.n_rows = stop


def progress_bar(enabled: bool | None, total: int | None, desc: str) -> tqdm:
    """A tqdm bar counting rows, shown by default only when stderr is a terminal."""
    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, unit="rows", unit_scale=True, desc=desc, disable=not show, leave=False)
