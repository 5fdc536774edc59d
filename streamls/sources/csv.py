"""CSV files (plain or gzip) streamed straight into training, with the parser of ``data_tools convert``.

Random access: opening a CSV source scans the file once and records the byte offset
(in the decompressed stream, for gzip) of every :data:`INDEX_ROWS`-th data row. Reading
rows ``[a, b)`` seeks to the nearest recorded row at or before ``a`` (or continues from
where the previous read ended, when that is nearer) and parses ``b - a`` rows with
:class:`data_tools.readers.CSVParser`. So a CSV is read through the same
``Source.read(start, stop)`` as every other format, and the blocks of a pass, which come
in row order, cost one sequential read of the file. A gzip stream cannot seek backwards
without decompressing from its start, which it does once per pass, at the pass's first
block.

What it cannot give is cheap reads of rows ``[a, b)`` in another process: every Dask worker
would scan (and decompress) the whole file to find its rows. Backends that split rows
among processes refuse CSV sources (:meth:`CSVSource.check_partitionable`) and name the
conversion command instead.

``data_tools`` builds on streamls, so its reader module is imported when a CSV source is
first opened, not when streamls is (which would be circular).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import IO, TYPE_CHECKING

import numpy as np

from ..errors import SourceFormatError, SourceNotFoundError
from .base import Source

if TYPE_CHECKING:
    from data_tools.readers import CSVLayout

#: Data rows between recorded offsets: a read skips fewer than this many lines to reach its first row.
INDEX_ROWS = 4096


class CSVSource(Source):
    """A CSV file of numbers, plain or gzip (told by content), one row per non-blank line.

    Parameters
    ----------
    path : str or os.PathLike
        A local file.
    columns : sequence of str or int, optional
        Columns to read, by header name or index (negative counts from the end), in this
        order. Default: all.
    header : bool or None
        Whether the first non-blank line names the columns; ``None`` decides from the line
        (numbers: data; no numbers: header; both: an error asking to say which), and logs
        the decision, also kept in :attr:`header_decision`.
    delimiter : str
        Field separator.

    Notes
    -----
    Empty cells and ``NA`` read as NaN, which ``nan_policy`` then handles. Values are
    float64. A malformed line raises :class:`data_tools.CSVFormatError` (a
    :class:`~streamls.errors.SourceFormatError`) naming its line and, counting from 0 as
    ``target_cols`` does, its column.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Sequence[str | int] | None = None,
        header: bool | None = None,
        delimiter: str = ",",
    ) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.columns = None if columns is None else list(columns)
        self.header, self.delimiter = header, delimiter
        self.name = self.path if self.columns is None else f"{self.path}:{','.join(map(str, self.columns))}"

    def _open(self) -> CSVTable:
        from data_tools import readers

        if "://" in self.path:
            raise SourceFormatError(f"{self.path}: CSV sources must be local files; copy it here or convert it to Zarr or Parquet")
        if not os.path.isfile(self.path):
            raise SourceNotFoundError(f"{self.path}: no such CSV file")
        layout = readers.read_layout(self.path, self.header, self.delimiter)
        usecols = list(range(layout.n_fields)) if self.columns is None else readers.resolve_columns(self.columns, layout.names, self.path)
        table = CSVTable(readers, layout, usecols)
        _ = table[0:1]  # a wrong delimiter or header fails now, not in the middle of training
        self._names = [layout.names[j] for j in usecols] if layout.has_header else None
        return table

    @property
    def header_decision(self) -> str:
        """Whether the first line was taken as the header, and why (see :func:`data_tools.readers.read_layout`)."""
        return str(self.array.layout.decision)

    def check_partitionable(self, backend: str) -> None:
        """Refuse: a CSV file gives no cheap reads of rows ``[a, b)`` to other processes.

        Raises
        ------
        SourceFormatError
            Naming the ``data_tools convert`` command that writes the same rows as HDF5.
        """
        out = os.path.splitext(self.path.removesuffix(".gz"))[0] + ".h5"
        raise SourceFormatError(
            f"{self.path}: {backend} cannot split a CSV file among its workers: a CSV has no random row access "
            f"(each worker would read the whole file to find its rows). Convert it once: python -m data_tools "
            f"convert {self.path} {out} --target-cols -1, then train on '{out}:/X' with y '{out}:/y'; "
            f"or train with the local backend"
        )

    def close(self) -> None:
        """Close the file; the next read reopens it, without scanning it again."""
        if self._array is not None:
            self._array.close()


class CSVTable:
    """A CSV file's selected columns as an array-like table: ``shape``, ``dtype`` (float64), ``table[a:b]``.

    Parameters
    ----------
    readers : module
        :mod:`data_tools.readers`.
    layout : data_tools.readers.CSVLayout
    usecols : list of int
        Columns of the file to return, in this order.
    """

    dtype = np.dtype(np.float64)

    def __init__(self, readers: ModuleType, layout: CSVLayout, usecols: list[int]) -> None:
        self._readers, self.layout, self.usecols = readers, layout, usecols
        self._parser = readers.CSVParser(layout, usecols)
        self.offsets, self.lines, n_rows = readers.index_rows(layout, INDEX_ROWS)
        self.shape = (n_rows, len(usecols))
        self._handle: IO[bytes] | None = None
        self._cursor = self._entry(0)
        self._lock = threading.Lock()

    def _entry(self, k: int) -> tuple[int, int, int]:
        """Index entry ``k`` as a cursor: the row, its byte offset, its line number."""
        return k * INDEX_ROWS, int(self.offsets[k]), int(self.lines[k])

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        if stop <= start:
            return np.empty((0, len(self.usecols)))
        with self._lock:
            lines, first_line = self._lines(start, stop)
        values = self._parser.parse(lines, first_line).values
        if len(values) != stop - start:
            raise SourceFormatError(f"{self.layout.path}: rows {start}-{stop - 1}: the file changed since it was opened")
        return values

    def _lines(self, start: int, stop: int) -> tuple[list[str], int]:
        """The lines of data rows ``[start, stop)`` (with blank lines between them) and the first one's number."""
        row, offset, line_no = self._cursor  # where the handle stands: next row, its offset and line
        if not (start // INDEX_ROWS) * INDEX_ROWS <= row <= start:
            row, offset, line_no = self._entry(start // INDEX_ROWS)
        if self._handle is None:
            self._handle = self._readers.open_binary(self.layout.path)
        lines: list[bytes] = []
        first_line = line_no
        with self._readers.read_errors(self.layout.path, line_no):
            self._handle.seek(offset)  # free when the handle is already there, as in a pass
            while row < stop and (raw := self._handle.readline()):
                current, line_no, offset = line_no, line_no + 1, offset + len(raw)
                if raw in self._readers.BLANK_LINES:
                    if lines:
                        lines.append(raw)
                    continue
                if row >= start:
                    first_line = first_line if lines else current
                    lines.append(raw)
                row += 1
        self._cursor = (row, offset, line_no)
        return [raw.decode("utf-8-sig", errors="replace") for raw in lines], first_line

    def close(self) -> None:
        """Close the file (the index stays); the next read reopens it."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
            self._handle = None
            self._cursor = self._entry(0)
