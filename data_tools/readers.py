"""Streaming readers of tables (CSV, gzipped CSV, Parquet) in blocks of rows.

A reader knows its column names and yields :class:`RowBlock` objects holding the
selected columns of a few tens of thousands of rows as float64, so memory stays the same
whatever the file's length. CSV blocks are parsed by ``np.loadtxt`` (NumPy's C parser);
only when a block fails does the reader bisect it to find the first bad line, so line
numbers in messages are exact and the fast path pays nothing for them.

The CSV pieces are shared with :class:`streamls.sources.csv.CSVSource`, which streams a
CSV file into training without converting it: :func:`read_layout` (delimiter, header
decision, column names), :class:`CSVParser` (lines to numbers, with the messages below)
and :func:`open_binary`. Column numbers in messages count from 0, as ``target_cols`` does;
line numbers count from 1, as editors do.
"""

from __future__ import annotations

import contextlib
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
from typing import IO, Any, Protocol

import numpy as np

from streamls.errors import SourceNotFoundError
from streamls.sources import ParquetSource
from streamls.sources.dataset import round_block_rows

from .errors import CSVFormatError, DataToolsError

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
#: Lines (CSV) or rows (Parquet) per block: a few MB of text, fast to parse in one call.
DEFAULT_BLOCK_ROWS = 65536
BAD_ROW_POLICIES = ("error", "skip")
#: Cells that read as NaN (after stripping blanks): a missing value, left to the NaN policy.
MISSING_CELLS = ("", "NA")
#: Lines that ``np.loadtxt`` skips, and that are therefore not rows.
BLANK_LINES = (b"\n", b"\r\n")
#: Delimiters suggested when a file read with another one has a single column.
LIKELY_DELIMITERS = (";", "\t", "|", ",")


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
        Whether the first non-blank CSV line names the columns; ``None`` decides from
        the line itself (see :func:`read_layout`).
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
    return CSVReader(read_layout(path, header, delimiter), block_rows, on_bad_row == "skip")


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


def open_binary(path: str) -> IO[bytes]:
    """The file's bytes, decompressed when it starts with the gzip magic (whatever its name)."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # type: ignore[return-value]


def _open_text(path: str) -> io.TextIOBase:
    # Undecodable bytes become U+FFFD, which then fails to parse with its line number.
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", errors="replace")


#: What a failed read raises: a disk error, a truncated or corrupt gzip stream.
READ_ERRORS = (OSError, EOFError, zlib.error)


def read_failure(path: str, line: int, exc: BaseException) -> DataToolsError:
    """The error for a read that failed (one of :data:`READ_ERRORS`) after line ``line``."""
    return DataToolsError(f"{path}: cannot read past line {line}: {exc}")


@contextlib.contextmanager
def read_errors(path: str, line: int) -> Iterator[None]:
    """Turn a failed read inside the block into :func:`read_failure` at ``line``."""
    try:
        yield
    except READ_ERRORS as exc:
        raise read_failure(path, line, exc) from exc


def _tokens(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def _is_missing(token: str) -> bool:
    return token.strip() in MISSING_CELLS


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _cell(token: str) -> float:
    """One cell as ``np.loadtxt`` reads it, with :data:`MISSING_CELLS` as NaN.

    Used only for blocks the C parser refused; ``float`` would also take ``1_000``,
    which the C parser does not, so underscores are refused here too.
    """
    if _is_missing(token):
        return float("nan")
    if "_" in token:
        raise ValueError(f"could not convert string {token!r} to float64")
    return float(token)


@dataclass(frozen=True)
class CSVLayout:
    """What the first non-blank line of a CSV file says about the rest.

    Attributes
    ----------
    path : str
    delimiter : str
    has_header : bool
        Whether that line names the columns.
    names : tuple of str
        Column names: the header's fields, or ``"0"``, ``"1"``, ... without a header.
    n_fields : int
        Fields per line.
    first_line : int
        1-based number of the first non-blank line (the header, or the first data row).
    decision : str
        Why ``has_header`` is what it is, for logs and messages.
    """

    path: str
    delimiter: str
    has_header: bool
    names: tuple[str, ...]
    n_fields: int
    first_line: int
    decision: str

    @property
    def data_line(self) -> int:
        """1-based number of the line the data rows start at (blank lines before it skipped)."""
        return self.first_line + 1 if self.has_header else self.first_line


def read_layout(path: str, header: bool | None = None, delimiter: str = ",") -> CSVLayout:
    """Read a CSV file's first non-blank line: its fields, and whether it is a header.

    With ``header=None`` the line decides: a line of numbers (missing cells allowed) is
    data, a line without numbers is a header, and a line mixing both is refused, since
    either reading could be wrong (a header with a numeric name, or a data row with a
    typo whose loss would go unnoticed).

    Raises
    ------
    CSVFormatError
        For an empty file, or a first line that mixes numbers and text under ``header=None``.
    """
    with _open_text(path) as handle:
        line_no, first = 0, ""
        while not first.strip():
            with read_errors(path, line_no):
                first = handle.readline()
            if not first:
                raise CSVFormatError(path, line_no + 1, "", "the file is empty: no header and no data rows")
            line_no += 1
    tokens = _tokens(first, delimiter)
    has_header, decision = _header_decision(path, line_no, first, tokens, header)
    names = tuple(t.strip() for t in tokens) if has_header else tuple(str(i) for i in range(len(tokens)))
    layout = CSVLayout(path, delimiter, has_header, names, len(tokens), line_no, decision)
    logger.info("%s: %s", path, decision)
    return layout


def _header_decision(path: str, line_no: int, line: str, tokens: list[str], header: bool | None) -> tuple[bool, str]:
    if header is not None:
        return header, f"line {line_no} is {'the header' if header else 'data'}, as header={header} says"
    text = [j for j, t in enumerate(tokens) if not _is_missing(t) and not _is_number(t)]
    numbers = [j for j, t in enumerate(tokens) if not _is_missing(t) and _is_number(t)]
    if not text:
        return False, f"line {line_no} holds only numbers, so it is the first data row (no header)"
    if not numbers:
        return True, f"line {line_no} holds no numbers, so it is the header naming the columns"
    problem = (
        f"cannot tell whether this line is a header: column {text[0]} holds {tokens[text[0]]!r}, not a number, "
        f"but column(s) {', '.join(map(str, numbers))} hold numbers; pass header=True if it names the columns, "
        f"or header=False if it is a data row (then fix column {text[0]})"
    )
    raise CSVFormatError(path, line_no, line, problem)


class CSVReader:
    """A delimited text file of numbers, read in blocks of lines from start to end.

    Blank lines are skipped (as ``np.loadtxt`` does); fields may be quoted with ``"``.
    Without a header the columns are named ``"0"``, ``"1"``, ...
    """

    def __init__(self, layout: CSVLayout, block_lines: int, skip_bad: bool) -> None:
        self.layout, self.block_lines, self.skip_bad = layout, block_lines, skip_bad
        self.path, self.names, self.has_header = layout.path, layout.names, layout.has_header
        self.n_rows_hint = None
        self._handle = _open_text(layout.path)
        self._next_line = layout.data_line
        try:
            self._lines(layout.data_line - 1)  # blank lines and the header
        except BaseException:
            self._handle.close()
            raise

    def _lines(self, count: int) -> list[str]:
        """The next ``count`` lines (fewer at the end), with read errors named by line."""
        with read_errors(self.path, self._next_line):
            return list(itertools.islice(self._handle, count))

    def blocks(self, usecols: Sequence[int]) -> Iterator[RowBlock]:
        """Yield the selected columns of every data row, block by block.

        Raises
        ------
        CSVFormatError
            At the first malformed line (unless skipping), or when there are no data rows.
        """
        parser = CSVParser(self.layout, list(usecols), self.skip_bad)
        rows = 0
        while lines := self._lines(self.block_lines):
            block = parser.parse(lines, self._next_line)
            self._next_line += len(lines)
            rows += len(block.values)
            yield block
        if rows == 0:
            raise no_data_rows(self.layout, self._next_line)

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


def index_rows(layout: CSVLayout, every: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One scan of a CSV file: where every ``every``-th data row starts, and how many rows there are.

    A data row is a line from :attr:`CSVLayout.data_line` on that ``np.loadtxt`` does not
    skip (one of :data:`BLANK_LINES`). Offsets are in the decompressed bytes of a gzip file.

    Returns
    -------
    offsets, lines : numpy.ndarray of int64, shape (ceil(n_rows / every) + 1,)
        Byte offset and 1-based line number of rows ``0, every, 2 every, ...``; the last
        entry is the end of the file.
    n_rows : int

    Raises
    ------
    CSVFormatError
        When the file holds no data rows.
    """
    offsets, lines = [], []
    offset, line_no, row = 0, 0, 0
    with open_binary(layout.path) as handle:
        try:
            for raw in handle:
                line_no += 1
                if line_no >= layout.data_line and raw not in BLANK_LINES:
                    if row % every == 0:
                        offsets.append(offset)
                        lines.append(line_no)
                    row += 1
                offset += len(raw)
        except READ_ERRORS as exc:
            raise read_failure(layout.path, line_no, exc) from exc
    if row == 0:
        raise no_data_rows(layout, line_no + 1)
    offsets.append(offset)
    lines.append(line_no + 1)
    return np.asarray(offsets, dtype=np.int64), np.asarray(lines, dtype=np.int64), row


def no_data_rows(layout: CSVLayout, line: int) -> CSVFormatError:
    """The error for a CSV file that ends, at ``line``, before any data row."""
    where = "after the header" if layout.has_header else "in the file"
    return CSVFormatError(layout.path, line, "", f"no data rows {where}")


class CSVParser:
    """Parse blocks of CSV lines into numbers; on failure find the bad lines by bisection.

    Parameters
    ----------
    layout : CSVLayout
    usecols : list of int
        Columns to return, in this order.
    skip_bad : bool
        Skip malformed lines (reported in :attr:`RowBlock.bad`) instead of raising.
    """

    def __init__(self, layout: CSVLayout, usecols: list[int], skip_bad: bool = False) -> None:
        self.layout, self.usecols, self.skip_bad = layout, usecols, skip_bad
        self.n_fields, self.delimiter = layout.n_fields, layout.delimiter

    def parse(self, lines: list[str], first_line: int) -> RowBlock:
        """The selected columns of ``lines``, the first of which is line ``first_line`` of the file.

        Returns
        -------
        RowBlock
            ``values`` of shape (rows, len(usecols)): one row per non-blank line that parsed.

        Raises
        ------
        CSVFormatError
            At the first malformed line, unless ``skip_bad``.
        """
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

    def _loadtxt(self, lines: Sequence[str], usecols: list[int] | None) -> np.ndarray:
        """``np.loadtxt`` of the lines; a block it refuses is read again with missing cells as NaN."""
        options: dict[str, Any] = {
            "delimiter": self.delimiter, "comments": None, "quotechar": '"', "usecols": usecols, "ndmin": 2,
            "dtype": np.float64,
        }
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
            try:
                return np.loadtxt(lines, **options)
            except ValueError:
                # The per-cell converter is about 3x slower, so clean blocks never pay for it.
                return np.loadtxt(lines, converters=_cell, **options)

    def _parse_run(
        self, lines: list[str], lo: int, hi: int, first_line: int, parts: list[np.ndarray], bad: list[BadRow]
    ) -> None:
        """Parse ``lines[lo:hi]`` (all with the right field count), in order."""
        if lo >= hi:
            return
        try:
            values = self._loadtxt(lines[lo:hi], self.usecols)
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
        if len(tokens) != self.n_fields:  # a line of blanks, which np.loadtxt does not skip
            return BadRow(line_no, line, f"{len(tokens)} fields where the file has {self.n_fields}")
        for j in self.usecols:
            try:
                self._loadtxt([tokens[j]], None)
            except ValueError:
                name = f" ({self.layout.names[j]!r})" if self.layout.has_header else ""
                return BadRow(line_no, line, f"column {j}{name} holds {tokens[j]!r}, not a number{self._hint(line)}")
        return BadRow(line_no, line, "not a row of numbers")

    def _hint(self, line: str) -> str:
        """A suggestion when a one-column reading looks like the wrong delimiter."""
        if self.n_fields != 1:
            return ""
        other = next((d for d in LIKELY_DELIMITERS if d != self.delimiter and d in line), None)
        return "" if other is None else f" (the file reads as one column: is the delimiter {other!r}? pass delimiter={other!r})"

    def _reject(self, row: BadRow, bad: list[BadRow]) -> None:
        if not self.skip_bad:
            raise CSVFormatError(self.layout.path, row.line, row.text, row.problem)
        bad.append(row)


class ParquetReader:
    """A Parquet file read in blocks of rows through :class:`streamls.sources.ParquetSource`.

    Its numeric (integer, float, bool) columns are the table; nulls become NaN. Needs
    pyarrow: ``pip install streamls[parquet]``.
    """

    has_header = True

    def __init__(self, path: str, block_rows: int) -> None:
        self.path, self.block_rows = path, block_rows
        self._table = ParquetSource(path).open()
        self.names = self._table.column_names or ()
        self.n_rows_hint: int | None = self._table.n_rows

    def blocks(self, usecols: Sequence[int]) -> Iterator[RowBlock]:
        """Yield the ``usecols`` columns of up to ``block_rows`` rows (whole row groups) at a time, as float64."""
        source = ParquetSource(self.path, [self.names[j] for j in usecols]).open()
        step, n = round_block_rows(self.block_rows, source.chunk_rows), source.n_rows
        try:
            for start in range(0, n, step):
                yield RowBlock(source.read(start, min(start + step, n)).astype(np.float64, copy=False))
        finally:
            source.close()

    def close(self) -> None:
        """Close the file."""
        self._table.close()
