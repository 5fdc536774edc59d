"""Writing new HDF5 files, Zarr stores, CSV and Parquet files atomically, locally or at fsspec URLs.

Everything streamls writes (predictions, models, converted data) goes through
:class:`OutputFile`: it writes under a temporary name beside the target and renames only
when the ``with`` block ends without an exception, so a failed or killed writer never
leaves something that looks finished. At an fsspec URL (Zarr, CSV and Parquet) the
rename is the filesystem's ``mv``: atomic where the filesystem renames (local, memory),
a copy then delete on object stores, where the final name still appears only once the
data is complete. HDF5 needs a local path.
"""

from __future__ import annotations

import gzip
import os
import shutil
import uuid
from collections.abc import Sequence
from typing import IO, Any, Protocol

import h5py
import numpy as np
import zarr

from ..errors import OutputExistsError, SourceFormatError
from .base import filesystem
from .parquet import pyarrow_modules
from .spec import HDF5_SUFFIXES, split_spec

#: Output kinds by suffix, in the order they are listed in messages.
OUTPUT_SUFFIXES = {
    "hdf5": HDF5_SUFFIXES,
    "zarr": (".zarr",),
    "csv": (".csv", ".csv.gz"),
    "parquet": (".parquet",),
}
#: Kinds holding named arrays (``create_array``); the others hold one table of rows (``row_writer``).
ARRAY_KINDS = ("hdf5", "zarr")
#: Enough significant digits that a float64 written to CSV reads back exactly.
CSV_FLOAT_FORMAT = "%.17g"


def output_kind(path: str) -> str:
    """``"hdf5"``, ``"zarr"``, ``"csv"`` or ``"parquet"`` from an output path's suffix."""
    lower = path.lower().rstrip("/")
    for kind, suffixes in OUTPUT_SUFFIXES.items():
        if lower.endswith(suffixes):
            return kind
    raise SourceFormatError(
        f"{path}: output must end in .h5/.hdf5 (HDF5), .zarr (Zarr), .csv or .csv.gz (CSV), or .parquet (Parquet)"
    )


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def _fsync_tree(path: str) -> None:
    """Flush a file, or every file below a directory, to disk before the rename."""
    paths = [path] if os.path.isfile(path) else [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for name in paths:
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_directory(path: str) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RowWriter(Protocol):
    """Rows of one output table or array, written block by block in row order."""

    def write(self, start: int, rows: np.ndarray) -> None:
        """Write ``rows``, shape (m, k) (or (m,) for a 1-D array), as rows ``[start, start + m)``."""

    def close(self) -> None:
        """Finish the file (called by :class:`OutputFile`)."""


class OutputFile:
    """A new HDF5 file, Zarr group, CSV or Parquet file, written under a temporary name.

    Parameters
    ----------
    path : str or os.PathLike
        Final path or fsspec URL; its suffix (``.h5``/``.hdf5``, ``.zarr``, ``.csv``/``.csv.gz``,
        ``.parquet``) picks the format.
    overwrite : bool
        Replace an existing ``path`` on success; otherwise refuse before writing.

    Examples
    --------
    >>> with OutputFile("preds.h5") as out:                      # doctest: +SKIP
    ...     arr = out.create_array("yhat", (n, 1), np.float32, chunk_rows=4096)
    ...     arr[0:4096] = block
    >>> with OutputFile("preds.csv") as out:                     # doctest: +SKIP
    ...     rows = out.row_writer("yhat", n, 1, ["y"], chunk_rows=4096)
    ...     rows.write(0, block)
    """

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        self.path = os.fspath(path).rstrip("/")
        self.kind = output_kind(self.path)
        self.overwrite = overwrite
        self.fs, final, self.url = filesystem(self.path, None)
        if self.url and self.kind == "hdf5":
            raise SourceFormatError(f"{self.path}: HDF5 output must be a local path; write .zarr or .parquet to a URL")
        directory, base = os.path.split(final if self.url else os.path.abspath(self.path))
        self._final = final if self.url else self.path
        self.tmp_path = f"{directory.rstrip('/')}/.{base}.tmp-{uuid.uuid4().hex[:8]}"
        self.handle: Any = None
        self._writers: list[RowWriter] = []
        self._files: list[IO[bytes]] = []

    def __enter__(self) -> OutputFile:
        exists = self.fs.exists(self._final) if self.url else os.path.lexists(self.path)
        if exists and not self.overwrite:
            raise OutputExistsError(f"{self.path}: exists; choose another path or pass overwrite=True")
        parent = os.path.dirname(os.path.abspath(self.path))
        if not self.url and not os.path.isdir(parent):
            raise SourceFormatError(f"{self.path}: the directory {parent} does not exist")
        if self.kind == "hdf5":
            self.handle = h5py.File(self.tmp_path, "w")
        elif self.kind == "zarr":
            self.handle = zarr.open_group(self.fs.unstrip_protocol(self.tmp_path) if self.url else self.tmp_path, mode="w")
        return self

    @property
    def attrs(self) -> Any:
        """Attributes of the file's root (HDF5 file or Zarr group); available only inside the ``with`` block."""
        self._require(ARRAY_KINDS, "attributes")
        return self.handle.attrs

    def _require(self, kinds: Sequence[str], what: str) -> None:
        if self.kind not in kinds:
            raise SourceFormatError(f"{self.path}: a {self.kind} file holds no {what}; use {' or '.join(kinds)}")

    def create_array(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: Any,
        chunk_rows: int | None = None,
        compression: str | None = None,
        data: np.ndarray | None = None,
        resizable: bool = False,
    ) -> Any:
        """Create an array (HDF5 and Zarr only); returns an object that takes ``arr[a:b] = rows``.

        ``compression`` is ``"gzip"`` or ``"lzf"`` for HDF5, ``"zstd"`` or ``"blosc-lz4"``
        for Zarr, or ``None``. ``resizable=True`` lets rows be appended later with
        ``arr.resize((n, *shape[1:]))`` (for writers that do not know the row count up
        front); it needs ``chunk_rows``, as the initial shape may hold no rows.
        """
        self._require(ARRAY_KINDS, "named arrays")
        if data is not None:
            shape, dtype = data.shape, data.dtype
        chunks = None
        if resizable:
            if not chunk_rows:
                raise SourceFormatError(f"{self.path}: a resizable array {name!r} needs chunk_rows")
            chunks = (chunk_rows, *shape[1:])
        elif len(shape) and shape[0] > 0:
            chunks = (min(chunk_rows or shape[0], shape[0]), *shape[1:])
        if self.kind == "hdf5":
            if compression not in (None, "none", "gzip", "lzf"):
                raise SourceFormatError(f"{self.path}: HDF5 compression must be none, gzip or lzf, not {compression!r}")
            array = self.handle.create_dataset(
                name,
                shape=shape,
                dtype=dtype,
                chunks=chunks,
                maxshape=(None, *shape[1:]) if resizable else None,
                compression=None if compression == "none" else compression,
            )
        else:
            array = self.handle.create_array(
                name.strip("/"),
                shape=shape,
                dtype=dtype,
                chunks=chunks or "auto",
                compressors=_zarr_compressors(compression, self.path),
            )
        if data is not None and data.size:
            array[...] = data
        return array

    def row_writer(
        self, name: str, n_rows: int, n_cols: int | None, column_names: Sequence[str], chunk_rows: int
    ) -> RowWriter:
        """The one table of rows this file holds: array ``name`` (HDF5, Zarr) or the file's columns (CSV, Parquet).

        Parameters
        ----------
        name : str
            Array name; CSV and Parquet files hold one table and ignore it.
        n_rows : int
        n_cols : int or None
            Columns; ``None`` makes a 1-D array (CSV and Parquet: one column).
        column_names : sequence of str
            Names of the columns (CSV header, Parquet schema).
        chunk_rows : int
            Rows per stored chunk (HDF5, Zarr) or row group (Parquet).
        """
        if self.kind in ARRAY_KINDS:
            shape = (n_rows,) if n_cols is None else (n_rows, n_cols)
            writer: RowWriter = _ArrayRows(self.create_array(name, shape, np.float64, chunk_rows=chunk_rows))
        elif self.kind == "csv":
            writer = _CSVRows(self.path, self._open_binary(), column_names)
        else:
            pa, pq = pyarrow_modules(self.path)  # before the file is opened: nothing to clean up without pyarrow
            writer = _ParquetRows(self.path, pa, pq, self._open_binary(), column_names, chunk_rows)
        self._writers.append(writer)
        return writer

    def _open_binary(self) -> IO[bytes]:
        """The temporary file, opened for writing bytes (gzip-compressed for ``.gz``)."""
        # Closed by _close, after the writers (a GzipFile does not close the file it writes into).
        raw: IO[bytes] = self.fs.open(self.tmp_path, "wb") if self.url else open(self.tmp_path, "wb")  # noqa: SIM115
        self._files.append(raw)
        return gzip.GzipFile(fileobj=raw, mode="wb") if self.path.lower().endswith(".gz") else raw  # type: ignore[return-value]

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._close()
        except BaseException:
            self._discard()
            raise
        if exc_type is not None:
            self._discard()
            return
        if self.url:
            if self.fs.exists(self._final):
                self.fs.rm(self._final, recursive=True)
            self.fs.mv(self.tmp_path, self._final, recursive=True)
            return
        _fsync_tree(self.tmp_path)
        if os.path.lexists(self.path):
            _remove(self.path)
        os.replace(self.tmp_path, self.path)
        _fsync_directory(os.path.dirname(os.path.abspath(self.path)))

    def _close(self) -> None:
        """Finish every row writer and close the files, even when one of them fails."""
        writers, files, self._writers, self._files = self._writers, self._files, [], []
        try:
            for writer in writers:
                writer.close()
        finally:
            for handle in files:
                handle.close()
            if self.kind == "hdf5" and self.handle is not None:
                self.handle.close()
            self.handle = None

    def _discard(self) -> None:
        """Remove the temporary output of a failed write."""
        if not self.url:
            _remove(self.tmp_path)
        elif self.fs.exists(self.tmp_path):
            self.fs.rm(self.tmp_path, recursive=True)


class _ArrayRows:
    """Rows into an HDF5 dataset or Zarr array of known shape."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def write(self, start: int, rows: np.ndarray) -> None:
        self.array[start : start + len(rows)] = rows

    def close(self) -> None:
        """Nothing to finish: the file closes with the :class:`OutputFile`."""


class _SequentialRows:
    """Rows that can only be appended: each write must start where the previous one ended."""

    def __init__(self, path: str) -> None:
        self.path, self.written = path, 0

    def _advance(self, start: int, rows: np.ndarray) -> np.ndarray:
        """``rows`` as (m, k) float64, after checking that they follow the rows written so far."""
        if start != self.written:
            raise SourceFormatError(f"{self.path}: rows must be written in order: got row {start} after {self.written} rows")
        self.written += len(rows)
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


class _CSVRows(_SequentialRows):
    """A CSV file: a header line of column names, then one line per row (17 significant digits)."""

    def __init__(self, path: str, handle: IO[bytes], column_names: Sequence[str]) -> None:
        super().__init__(path)
        self.handle = handle
        handle.write((",".join(column_names) + "\n").encode())

    def write(self, start: int, rows: np.ndarray) -> None:
        np.savetxt(self.handle, self._advance(start, rows), fmt=CSV_FLOAT_FORMAT, delimiter=",")

    def close(self) -> None:
        """Flush and close the file."""
        self.handle.close()


class _ParquetRows(_SequentialRows):
    """A Parquet file of float64 columns, one row group per ``chunk_rows`` rows."""

    def __init__(self, path: str, pa: Any, pq: Any, handle: IO[bytes], column_names: Sequence[str], chunk_rows: int) -> None:
        super().__init__(path)
        self._pa = pa
        self.names, self.chunk_rows, self.handle = list(column_names), chunk_rows, handle
        schema = self._pa.schema([(n, self._pa.float64()) for n in self.names])
        self.writer = pq.ParquetWriter(handle, schema)

    def write(self, start: int, rows: np.ndarray) -> None:
        values = self._advance(start, rows)
        columns = [self._pa.array(values[:, j]) for j in range(values.shape[1])]
        self.writer.write_table(self._pa.Table.from_arrays(columns, names=self.names), row_group_size=self.chunk_rows)

    def close(self) -> None:
        """Write the footer and close the file."""
        self.writer.close()
        self.handle.close()


def _zarr_compressors(compression: str | None, path: str) -> Any:
    if compression is None or compression == "none":
        return None
    if compression == "zstd":
        return zarr.codecs.ZstdCodec()
    if compression == "blosc-lz4":
        return zarr.codecs.BloscCodec(cname="lz4")
    raise SourceFormatError(f"{path}: Zarr compression must be none, zstd or blosc-lz4, not {compression!r}")


def output_target(spec: str, default_name: str) -> tuple[str, str]:
    """Split an output spec into ``(path, array name)``: ``"out.h5:/yhat"``, ``"out.zarr:yhat"``, ``"out.csv"``."""
    path, inner = split_spec(os.fspath(spec))
    return path, (inner or default_name)
