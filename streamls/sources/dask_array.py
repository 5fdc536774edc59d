"""Dask arrays as sources: reading rows ``[a, b)`` computes that slice of the array.

Dask is not imported here: a :class:`DaskArraySource` only calls methods of the array
it is given, so importing :mod:`streamls.sources` stays fast for users without Dask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import SourceFormatError
from .base import Source


class DaskArraySource(Source):
    """A lazy ``dask.array.Array``, such as ``dask.array.from_zarr(...)``.

    Pickling keeps the array's task graph (the description of how to load it), not
    computed data, so a Dask worker that unpickles the source reads its own rows.
    Slices are computed with Dask's synchronous scheduler in the calling thread: inside
    a Dask task that reads the rows on that worker instead of submitting new tasks
    to the cluster the task is running on.

    Parameters
    ----------
    array : dask.array.Array, shape (n_rows,) or (n_rows, n_cols)
        With known chunk sizes. Regular row chunks (all equal but the last) let blocks
        and Dask partitions align to them; with irregular ones blocks ignore them.
    name : str
        Used in error messages.
    """

    def __init__(self, array: Any, name: str = "dask array") -> None:
        super().__init__()
        self.name = name
        self._dask = array

    def _open(self) -> Any:
        if any(math.isnan(s) for s in self._dask.shape):
            raise SourceFormatError(
                f"{self.name}: dask array of unknown shape {self._dask.shape}; call .compute_chunk_sizes() first"
            )
        return self._dask

    @property
    def chunk_rows(self) -> int:
        """Rows per row chunk when the chunking is regular (see :func:`regular_chunk`), else 1."""
        return regular_chunk(self.array.chunks[0])

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` computed with Dask's synchronous scheduler, in this thread."""
        return np.asarray(self.array[start:stop].compute(scheduler="sync"))


def regular_chunk(sizes: tuple[int, ...]) -> int:
    """The chunk size of a regular chunking (all equal but a smaller last one), else 1.

    Examples
    --------
    >>> regular_chunk((100, 100, 30))
    100
    >>> regular_chunk((100, 50, 100))
    1
    """
    head = set(sizes[:-1])
    if len(head) > 1 or (head and sizes[-1] > max(head)):
        return 1
    return int(sizes[0])
