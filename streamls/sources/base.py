"""The data-access contract: a 2-D array of rows that can be read in row blocks.

A :class:`Source` knows nothing about training. It reports its shape, dtype, the
number of rows in one stored chunk and, where the format has them, column names, and
returns row blocks as NumPy arrays. Sources are picklable: pickling keeps the
description (path, array name, columns) and drops open file handles, so another process
can reopen the same rows (the Dask backend relies on it).

Every format plugs in the same way: :meth:`Source._open` returns an object with
``shape``, ``dtype`` and row slicing (an h5py dataset, a Zarr array, a memory map, or a
small row-table object for Parquet and CSV), and :meth:`Source.read` slices it.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from fsspec.core import url_to_fs

from ..errors import RowRangeError, SourceFormatError

#: What every "not a format streamls reads" message lists.
ACCEPTED_FORMATS = (
    "HDF5 (.h5, .hdf5), Zarr (.zarr), NumPy (.npy), Parquet (.parquet, a file or a directory of them) "
    "or CSV (.csv, .csv.gz)"
)
#: File attribute in which ``python -m data_tools convert`` records the column names of
#: the ``X`` (``"features"``) and ``y`` (``"targets"``) arrays it writes.
DATA_TOOLS_ATTRIBUTE = "data_tools"
CONVERTED_ARRAYS = {"X": "features", "y": "targets"}


class Source(abc.ABC):
    """A 2-D (or 1-D, read as one column) array of rows, read in row blocks.

    Subclasses implement :meth:`_open` (return the array-like object, opening files
    lazily; formats with column names also set ``_names`` there) and set ``name``.
    Reading row ``[start, stop)`` must touch only those rows.
    """

    #: Human-readable description used in every message, such as ``"data.h5:/X"``.
    name: str

    def __init__(self) -> None:
        self._array: Any = None
        self._names: Sequence[str] | None = None

    @abc.abstractmethod
    def _open(self) -> Any:
        """Open the underlying array and return an object with shape, dtype and slicing."""

    @property
    def array(self) -> Any:
        """The opened array-like object (opened on first use, also after unpickling)."""
        if self._array is None:
            self._array = self._open()
            _check_array(self._array, self.name)
        return self._array

    def open(self) -> Source:
        """Open now, so that a bad path or array fails before any work starts; returns self."""
        _ = self.array
        return self

    @property
    def shape(self) -> tuple[int, ...]:
        """Stored shape: ``(n_rows,)`` or ``(n_rows, n_cols)``."""
        return tuple(int(s) for s in self.array.shape)

    @property
    def n_rows(self) -> int:
        """Rows of the stored array."""
        return self.shape[0]

    @property
    def n_cols(self) -> int:
        """Number of columns; a 1-D array counts as one column."""
        shape = self.shape
        return 1 if len(shape) == 1 else shape[1]

    @property
    def dtype(self) -> np.dtype:
        """Stored dtype; :meth:`read` returns blocks in it."""
        return np.dtype(self.array.dtype)

    @property
    def chunk_rows(self) -> int:
        """Rows in one stored chunk; blocks are aligned to multiples of it (1: no chunking)."""
        return 1

    @property
    def column_names(self) -> tuple[str, ...] | None:
        """Names of the ``n_cols`` columns, or ``None`` where the format has none (arrays, a CSV without header)."""
        _ = self.array  # opening sets the names
        names = self._names
        return None if names is None or len(names) != self.n_cols else tuple(names)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Read rows ``[start, stop)``.

        Returns
        -------
        numpy.ndarray, shape (stop - start, n_cols)
            In the stored dtype; a 1-D source is returned as one column.

        Raises
        ------
        RowRangeError
            Unless ``0 <= start <= stop <= n_rows``.
        """
        if not 0 <= start <= stop <= self.n_rows:
            raise RowRangeError(f"{self.name}: rows [{start}, {stop}) asked of a source of {self.n_rows} rows")
        block = np.asarray(self._read(start, stop))
        return block.reshape(-1, 1) if block.ndim == 1 else block

    def _read(self, start: int, stop: int) -> Any:
        """Rows ``[start, stop)``, within range, as the array-like object returns them."""
        return self.array[start:stop]

    def check_partitionable(self, backend: str) -> None:
        """Raise :class:`SourceFormatError` if ``backend`` cannot split the rows among processes.

        Every source whose rows ``[a, b)`` any process can read on its own passes; one
        that can only be read from the start (a CSV file) says so and how to convert it.
        """

    def close(self) -> None:
        """Release file handles; the source reopens on the next read."""
        self._array = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class SelectedColumns(Source):
    """Some columns of another source, in a chosen order (such as a model's inputs out of a wider table).

    Parameters
    ----------
    source : Source
    columns : sequence of int
        Column indices of ``source``, in the order to return them.
    """

    def __init__(self, source: Source, columns: Sequence[int]) -> None:
        super().__init__()
        self.source, self.columns = source, [int(c) for c in columns]
        names = source.column_names
        shown = [names[c] for c in self.columns] if names else self.columns
        self.name = f"{source.name} columns {shown}"

    def _open(self) -> Any:
        names = self.source.column_names
        self._names = None if names is None else [names[c] for c in self.columns]
        return self.source.array

    @property
    def shape(self) -> tuple[int, ...]:
        """``(n_rows, len(columns))``."""
        return (self.source.n_rows, len(self.columns))

    @property
    def chunk_rows(self) -> int:
        """The underlying source's chunk rows."""
        return self.source.chunk_rows

    def _read(self, start: int, stop: int) -> np.ndarray:
        return self.source.read(start, stop)[:, self.columns]

    def check_partitionable(self, backend: str) -> None:
        """As the underlying source."""
        self.source.check_partitionable(backend)

    def close(self) -> None:
        """Close the underlying source."""
        self.source.close()
        super().close()


def filesystem(path: str, storage_options: dict[str, Any] | None) -> tuple[Any, str, bool]:
    """The fsspec filesystem of a local path or URL, the path within it, and whether it is a URL."""
    fs, inner = url_to_fs(path, **(storage_options or {}))
    return fs, inner, "://" in path


def converted_names(attribute: Any, array_name: str | None, n_cols: int) -> list[str] | None:
    """Column names that ``data_tools convert`` recorded for array ``X`` or ``y`` of its output.

    Parameters
    ----------
    attribute : str or None
        The JSON value of the file's :data:`DATA_TOOLS_ATTRIBUTE` attribute, if any.
    array_name : str or None
        The array's path inside the file (``"/X"`` or ``"X"``).
    n_cols : int
        The array's columns, which the names must match in number.
    """
    key = CONVERTED_ARRAYS.get((array_name or "").strip("/"))
    if key is None or not isinstance(attribute, str):
        return None
    try:
        names = json.loads(attribute).get(key)
    except (ValueError, AttributeError):
        return None  # another tool's attribute of the same name: no names rather than a failure
    if not isinstance(names, list) or len(names) != n_cols or not all(isinstance(n, str) for n in names):
        return None
    return names


def _check_array(array: Any, name: str) -> None:
    """Reject arrays that cannot be rows of real numbers."""
    ndim = len(array.shape)
    if ndim not in (1, 2):
        raise SourceFormatError(
            f"{name}: expected a 2-D array of rows (or a 1-D target), found {ndim}-D shape {tuple(array.shape)}"
        )
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biuf":
        raise SourceFormatError(
            f"{name}: expected a real numeric dtype (bool, integer or float), found dtype {dtype}"
        )
