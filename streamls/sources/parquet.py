"""Parquet files, or directories of them, local or at any fsspec URL, read by row groups with pyarrow.

pyarrow is optional (``pip install streamls[parquet]``) and imported only when a Parquet
source is opened, so the rest of streamls works without it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import SourceFormatError, SourceNotFoundError
from .base import Source, filesystem
from .dask_array import regular_chunk

logger = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_MAGIC = b"PAR1"


def pyarrow_modules(what: str) -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or a :class:`SourceFormatError` saying how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise SourceFormatError(f"{what}: Parquet needs pyarrow, which is not installed: pip install 'streamls[parquet]'") from exc
    return pa, pq


def parquet_files(fs: Any, root: str, name: str) -> list[str]:
    """The Parquet files at ``root``: itself, or every ``*.parquet``/``*.pq`` below the directory, in path order.

    Files whose name starts with ``.`` or ``_`` (Spark's and Hadoop's markers) are left out.
    """
    if not fs.exists(root):
        raise SourceNotFoundError(f"{name}: no such Parquet file or directory")
    if not fs.isdir(root):
        return [root]
    found = sorted(
        path for path in fs.find(root)
        if path.lower().endswith(PARQUET_SUFFIXES) and not os.path.basename(path).startswith((".", "_"))
    )
    if not found:
        raise SourceFormatError(f"{name}: a directory holding no .parquet files")
    return found


def _numeric(pa: Any, kind: Any) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind))


class ParquetSource(Source):
    """Columns of a Parquet file, or of every Parquet file of a directory in path order, as one table.

    Rows are read a row group at a time: the row group is the stored chunk, and blocks
    round to it when all row groups but the last have the same size. Nulls read as NaN
    (then handled by ``nan_policy``), so the table is float64, or float32 when every
    selected column is float32.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.parquet`` file or a directory of them, local or an fsspec URL (``memory://``,
        ``s3://``, ...).
    columns : sequence of str, optional
        Columns to read, in this order. Default: every numeric (integer, float, bool)
        column of the first file, in file order; other columns are left out.
    storage_options : dict, optional
        Passed to fsspec for URLs.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Sequence[str] | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.columns = None if columns is None else [str(c) for c in columns]
        self.storage_options = storage_options
        self.name = self.path if self.columns is None else f"{self.path}:{','.join(self.columns)}"

    def _open(self) -> RowGroupTable:
        pa, pq = pyarrow_modules(self.path)
        fs, root, url = filesystem(self.path, self.storage_options)
        shown = fs.unstrip_protocol if url else (lambda p: p)
        files = []
        for path in parquet_files(fs, root, self.path):
            try:
                files.append((shown(path), pq.ParquetFile(path, filesystem=fs if url else None)))
            except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for a damaged file
                raise SourceFormatError(f"{shown(path)}: not a readable Parquet file: {exc}") from exc
        names = self._selected(pa, *files[0])
        for path, handle in files:
            _check_columns(pa, path, handle.schema_arrow, names)
        kinds = {str(files[0][1].schema_arrow.field(n).type) for n in names}
        dtype = np.dtype(np.float32) if kinds == {"float"} else np.dtype(np.float64)
        self._names = names
        return RowGroupTable(pa, [handle for _, handle in files], names, dtype)

    def _selected(self, pa: Any, path: str, handle: Any) -> list[str]:
        """The columns to read: those asked for, or every numeric one of the first file."""
        schema = handle.schema_arrow
        if self.columns is not None:
            return self.columns
        names = [field.name for field in schema if _numeric(pa, field.type)]
        skipped = [f"{field.name} ({field.type})" for field in schema if not _numeric(pa, field.type)]
        if not names:
            raise SourceFormatError(f"{path}: no numeric columns; the columns are {skipped}")
        if skipped:
            logger.info("%s: reading the numeric columns %s; leaving out %s", self.path, names, skipped)
        return names

    @property
    def chunk_rows(self) -> int:
        """Rows per row group when they are regular (all equal but the last), else 1."""
        return regular_chunk(self.array.group_rows)

    def close(self) -> None:
        """Close the Parquet files; the source reopens them on the next read."""
        if self._array is not None:
            self._array.close()
        super().close()


def _check_columns(pa: Any, path: str, schema: Any, names: list[str]) -> None:
    """Every column in ``names`` exists in the file's schema and is numeric."""
    available = schema.names
    for name in names:
        if name not in available:
            raise SourceFormatError(f"{path}: no column named {name!r}; the columns are {available}")
        kind = schema.field(name).type
        if not _numeric(pa, kind):
            raise SourceFormatError(f"{path}: column {name!r} has type {kind}, not a number")


class RowGroupTable:
    """The row groups of some Parquet files as one array-like table: ``shape``, ``dtype``, ``table[a:b]``.

    The last row group read is kept decoded, since a block that ends inside a row group is
    followed by one that starts there.
    """

    def __init__(self, pa: Any, files: list[Any], names: list[str], dtype: np.dtype) -> None:
        self._pa, self._files, self.names, self.dtype = pa, files, names, dtype
        self.groups = [(f, g) for f, handle in enumerate(files) for g in range(handle.metadata.num_row_groups)]
        self.group_rows = tuple(files[f].metadata.row_group(g).num_rows for f, g in self.groups)
        self._starts = np.concatenate([[0], np.cumsum(self.group_rows, dtype=np.int64)])
        self.shape = (int(self._starts[-1]), len(names))
        self._cached: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        out = np.empty((max(stop - start, 0), len(self.names)), dtype=self.dtype)
        if stop <= start:
            return out
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        last = int(np.searchsorted(self._starts, stop, side="left"))
        for i in range(first, last):
            lo, hi = int(self._starts[i]), int(self._starts[i + 1])
            a, b = max(lo, start), min(hi, stop)
            out[a - start : b - start] = self._group(i)[a - lo : b - lo]
        return out

    def _group(self, i: int) -> np.ndarray:
        """Row group ``i`` decoded, shape (its rows, n_cols)."""
        with self._lock:
            if self._cached is not None and self._cached[0] == i:
                return self._cached[1]
            f, g = self.groups[i]
            table = self._files[f].read_row_group(g, columns=self.names)
            target = self._pa.from_numpy_dtype(self.dtype)
            values = np.empty((table.num_rows, len(self.names)), dtype=self.dtype)
            for j, name in enumerate(self.names):
                values[:, j] = table.column(name).cast(target).to_numpy()
            self._cached = (i, values)
            return values

    def close(self) -> None:
        """Close every file."""
        for handle in self._files:
            handle.close()
