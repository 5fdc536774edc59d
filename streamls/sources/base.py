"""The data-access contract: a 2-D array of rows that can be read in row blocks.

A :class:`Source` knows nothing about training. It reports its shape, dtype and the
number of rows in one stored chunk, and returns row blocks as NumPy arrays. Sources
are picklable: pickling keeps the description (path, array name) and drops open file
handles, so another process can reopen the same rows (the Dask backend relies on it).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from ..errors import SourceFormatError


class Source(abc.ABC):
    """A 2-D (or 1-D, read as one column) array of rows, read in row blocks.

    Subclasses implement :meth:`_open` (return the array-like object, opening files
    lazily) and set ``name``. Reading row ``[start, stop)`` must touch only those rows.
    """

    #: Human-readable description used in every message, such as ``"data.h5:/X"``.
    name: str

    def __init__(self) -> None:
        self._array: Any = None

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

    def read(self, start: int, stop: int) -> np.ndarray:
        """Read rows ``[start, stop)``.

        Returns
        -------
        numpy.ndarray, shape (stop - start, n_cols)
            In the stored dtype; a 1-D source is returned as one column.
        """
        block = np.asarray(self.array[start:stop])
        return block.reshape(-1, 1) if block.ndim == 1 else block

    def close(self) -> None:
        """Release file handles; the source reopens on the next read."""
        self._array = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


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
