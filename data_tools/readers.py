"""Streaming readers of tables (CSV, gzipped CSV, Parquet) in blocks of rows.

A reader knows its column names and yields :class:`RowBlock` objects holding the
selected columns of a few tens of thousands of rows as float64, so memory stays the same
whatever the file's length. CSV blocks are parsed by ``np.loadtxt`` (NumPy's C parser);
only when a block fails does the reader bisect it to find the first bad line, so line
numbers in messages are exact and the fast path pays nothing for them.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import logging
import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from streamls.errors import SourceNotFoundError

from .errors import CSVFormatError, DataToolsError

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
#: Lines (CSV) or rows (Parquet) per block: a few MB of text, fast to parse in one call.
DEFAULT_BLOCK_ROWS = 65536
BAD_ROW_POLICIES = ("error", "skip")


@dataclass(frozen=True)
class BadRow:
    """A CSV line that was skipped: its 1-based number, text and what was wrong."""

    line: int
    text: str
    problem: str


@dataclass(frozen=True)
class RowBlock:
    """Consecutive rows of the selected columns.

    Attributes
    ----------
    values : numpy.ndarray of float64, shape (m, c)
        The ``c`` selected columns, in the order they were asked for.
    bad : tuple of BadRow
        Lines skipped in this block (``on_bad_row="skip"`` only).
    """

    values: np.ndarray
    bad: tuple[BadRow, ...] = ()


class TableReader(Protocol):
    """What :func:`open_table` returns."""

    path: str
    names: tuple[str, ...]
    has_header: bool
    n_rows_hint: int | None

    def blocks(self, usecols: Sequence[int]) -> Iterator[RowBlock]:
        """Yield every data row's ``usecols`` columns, block by block.

        Yields
        ------
        RowBlock
            ``values`` of shape (m, len(usecols)), float64, columns in the order of ``usecols``.
        """

    def close(self) -> None:
        """Close the file."""


def open_table(
    path: str | os.PathLike[str],
    header: bool | None = None,
    delimiter: str = ",",
    block_rows: int = DEFAULT_BLOCK_ROWS,
    on_bad_row: str = "error",
) -> TableReader:
    """Open a CSV (plain or gzip, told by content) or Parquet file for block reading.

    Parameters
    ----------
    path : str or os.PathLike
    header : bool or None
        Whether the first non-blank CSV line names the columns; ``None`` guesses (a
        header is a first line with a token that is not a number).
    delimiter : str
    block_rows : int
        Lines (CSV) or rows (Parquet) per block.
    on_bad_row : {"error", "skip"}
        What a malformed CSV line does: raise :class:`CSVFormatError`, or be skipped and
        reported in :attr:`RowBlock.bad`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SourceNotFoundError(f"{path}: no such file")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == PARQUET_MAGIC or path.lower().endswith((".parquet", ".pq")):
        return ParquetReader(path, block_rows)
    return CSVReader(path, header, delimiter, block_rows, on_bad_row == "skip")


def resolve_columns(specs: Sequence[str | int], names: Sequence[str], path: str) -> list[int]:
    """Column indices for names or (possibly negative) integer indices.

    A spec that equals a column name is that column, even if it also reads as a number.
    """
    index = {name: i for i, name in enumerate(names)}
    found: list[int] = []
    for spec in specs:
        text = str(spec)
        if text in index:
            found.append(index[text])
            continue
        try:
            position = int(text)
        except ValueError:
            raise DataToolsError(f"{path}: no column named {text!r}; the columns are {list(names)}") from None
        if not -len(names) <= position < len(names):
            raise DataToolsError(f"{path}: column index {position} is out of range for {len(names)} columns")
        found.append(position % len(names))
    return found


def _open_text(path: str) -> io.TextIOBase:
    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    # Undecodable bytes become U+FFFD, which then fails to parse with its line number.
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace")  # type: ignore[return-value]
    return open(path, encoding="utf-8-sig", errors="replace")


def _tokens(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class CSVReader:
    """A delimited text file of numbers, read in blocks of lines.

    Blank lines are skipped (as ``np.loadtxt`` does); fields may be quoted with ``"``.
    Without a header the columns are named ``"0"``, ``"1"``, ...
    """

    def __init__(self, path: str, header: bool | None, delimiter: str, block_lines: int, skip_bad: bool) -> None:
        self.path, self.delimiter, self.block_lines, self.skip_bad = path, delimiter, block_lines, skip_bad
        self.n_rows_hint = None
        self._next_line = 1
        self._handle = _open_text(path)
        try:
            self._start(header)
        except BaseException:
            self._handle.close()
            raise

    def _start(self, header: bool | None) -> None:
        """Read up to the first non-blank line: column count, names, whether it is a header."""
        line_no, first = 0, ""
        while not first.strip():
            read = self._lines(1)
            if not read:
                raise CSVFormatError(self.path, line_no + 1, "", "the file is empty: no header and no data rows")
            line_no, first = line_no + 1, read[0]
        tokens = _tokens(first, self.delimiter)
        self.has_header = header if header is not None else not all(_is_number(t) for t in tokens)
        self.n_fields = len(tokens)
        self.names = tuple(t.strip() for t in tokens) if self.has_header else tuple(str(i) for i in range(len(tokens)))
        self._pending = [] if self.has_header else [first]
        self._next_line = line_no + 1 if self.has_header else line_no

    def _lines(self, count: int) -> list[str]:
        """The next ``count`` lines (fewer at the end), with read errors named by line."""
        try:
            return list(itertools.islice(self._handle, count))
        except (OSError, EOFError, zlib.error) as exc:
            raise DataToolsError(f"{self.path}: cannot read past line {self._next_line}: {exc}") from exc

    def blocks(self, usecols: Sequence[int]) -> Iterator[RowBlock]:
        """Yield the selected columns of every data row, block by block.

        Raises
        ------
        CSVFormatError
            At the first malformed line (unless skipping), or when there are no data rows.
        """
        parser = _BlockParser(self, list(usecols))
        rows = 0
        while True:
            lines = self._pending + self._lines(self.block_lines - len(self._pending))
            self._pending = []
            if not lines:
                break
            block = parser.parse(lines, self._next_line)
            self._next_line += len(lines)
            rows += len(block.values)
            yield block
        if rows == 0:
            where = "after the header" if self.has_header else "in the file"
            raise CSVFormatError(self.path, self._next_line, "", f"no data rows {where}")

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


class _BlockParser:
    """Parse a block of lines; on failure find the bad lines by bisection."""

    def __init__(self, reader: CSVReader, usecols: list[int]) -> None:
        self.reader, self.usecols = reader, usecols
        self.n_fields, self.delimiter = reader.n_fields, reader.delimiter

    def parse(self, lines: list[str], first_line: int) -> RowBlock:
        parts: list[np.ndarray] = []
        bad: list[BadRow] = []
        start = 0
        for i in self._ragged(lines):
            self._parse_run(lines, start, i, first_line, parts, bad)
            fields = len(_tokens(lines[i], self.delimiter))
            self._reject(BadRow(first_line + i, lines[i], f"{fields} fields where the file has {self.n_fields}"), bad)
            start = i + 1
        self._parse_run(lines, start, len(lines), first_line, parts, bad)
        values = np.concatenate(parts) if parts else np.empty((0, len(self.usecols)))
        return RowBlock(values, tuple(bad))

    def _ragged(self, lines: list[str]) -> list[int]:
        """Indices of non-blank lines with the wrong number of fields (cheap count first)."""
        d, expected = self.delimiter, self.n_fields - 1
        suspects = [i for i, line in enumerate(lines) if line.count(d) != expected]
        return [
            i
            for i in suspects
            if lines[i].strip() and ('"' not in lines[i] or len(_tokens(lines[i], d)) != self.n_fields)
        ]

    def _loadtxt(self, lines: Sequence[str]) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
            return np.loadtxt(
                lines, delimiter=self.delimiter, comments=None, quotechar='"', usecols=self.usecols, ndmin=2,
                dtype=np.float64,
            )

    def _parse_run(
        self, lines: list[str], lo: int, hi: int, first_line: int, parts: list[np.ndarray], bad: list[BadRow]
    ) -> None:
        """Parse ``lines[lo:hi]`` (all with the right field count), in order."""
        if lo >= hi:
            return
        try:
            values = self._loadtxt(lines[lo:hi])
        except ValueError:
            if hi - lo == 1:
                self._reject(self._diagnose(lines[lo], first_line + lo), bad)
                return
            mid = (lo + hi) // 2
            self._parse_run(lines, lo, mid, first_line, parts, bad)
            self._parse_run(lines, mid, hi, first_line, parts, bad)
            return
        if len(values):
            parts.append(values)

    def _diagnose(self, line: str, line_no: int) -> BadRow:
        """Name the first selected token of a bad line that is not a number."""
        tokens = _tokens(line, self.delimiter)
        for j in self.usecols:
            try:
                self._parse_token(tokens[j])
            except ValueError:
                name = f" ({self.reader.names[j]!r})" if self.reader.has_header else ""
                return BadRow(line_no, line, f"column {j + 1}{name} holds {tokens[j]!r}, not a number")
        return BadRow(line_no, line, "not a row of numbers")

    def _parse_token(self, token: str) -> None:
        np.loadtxt([token], delimiter=self.delimiter, comments=None, quotechar='"', ndmin=2, dtype=np.float64)

    def _reject(self, row: BadRow, bad: list[BadRow]) -> None:
        if not self.reader.skip_bad:
            raise CSVFormatError(self.reader.path, row.line, row.text, row.problem)
        bad.append(row)


class ParquetReader:
    """A Parquet file (needs pyarrow: ``pip install streamls[parquet]``), read in row batches.

    Nulls become NaN; columns must be numeric or boolean.
    """

    has_header = True

    def __init__(self, path: str, block_rows: int) -> None:
        pq, self._pa = _pyarrow(path)
        self.path, self.block_rows = path, block_rows
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError family
            raise DataToolsError(f"{path}: not a readable Parquet file: {exc}") from exc
        self.names = tuple(self._file.schema_arrow.names)
        self.n_rows_hint = int(self._file.metadata.num_rows)

    def blocks(self, usecols: Sequence[int]) -> Iterator[RowBlock]:
        """Yield the ``usecols`` columns of up to ``block_rows`` rows at a time, as float64.

        Nulls become NaN.

        Raises
        ------
        DataToolsError
            If a selected column is not numeric or boolean.
        """
        pa = self._pa
        schema = self._file.schema_arrow
        for j in usecols:
            kind = schema.field(j).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
                raise DataToolsError(f"{self.path}: column {self.names[j]!r} has type {kind}, not a number")
        selected = [self.names[j] for j in usecols]
        for batch in self._file.iter_batches(batch_size=self.block_rows, columns=selected):
            values = np.empty((batch.num_rows, len(selected)))
            for j, column in enumerate(batch.columns):
                values[:, j] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            yield RowBlock(values)

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def _pyarrow(path: str) -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataToolsError(f"{path}: reading Parquet needs pyarrow: pip install 'streamls[parquet]'") from exc
    return pq, pa
