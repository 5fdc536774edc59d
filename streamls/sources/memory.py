"""Sources for arrays already in memory and for memory-mapped ``.npy`` files."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import SourceFormatError, SourceNotFoundError
from .base import ACCEPTED_FORMATS, Source

#: The first bytes of every ``.npy`` file.
NPY_MAGIC = b"\x93NUMPY"


class ArraySource(Source):
    """An in-memory NumPy array (or anything ``np.asarray`` accepts).

    Parameters
    ----------
    array : array_like, shape (n_rows,) or (n_rows, n_cols)
    name : str
        Used in error messages.
    """

    def __init__(self, array: Any, name: str = "array") -> None:
        super().__init__()
        self.name = name
        self._data = np.asarray(array)

    def _open(self) -> np.ndarray:
        return self._data

    def __getstate__(self) -> dict[str, Any]:
        # The data is the description here: keep it.
        return self.__dict__.copy()


class NpySource(Source):
    """A ``.npy`` file, memory-mapped read-only so that reading a block touches only its rows.

    Parameters
    ----------
    path : str or os.PathLike
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.name = self.path

    def _open(self) -> np.ndarray:
        if not os.path.isfile(self.path):
            raise SourceNotFoundError(f"{self.path}: no such .npy file")
        with open(self.path, "rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
        # Checked here, not left to np.load: on a file without the signature it would try
        # to unpickle it and suggest allow_pickle, which no one should take for data files.
        if not magic:
            raise SourceFormatError(f"{self.path}: not a readable .npy file: the file is empty (0 bytes)")
        if magic != NPY_MAGIC:
            raise SourceFormatError(
                f"{self.path}: not a readable .npy file: it does not start with the .npy signature \\x93NUMPY; "
                f"streamls reads {ACCEPTED_FORMATS}"
            )
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:  # a damaged header, truncated data, or Python objects
            raise SourceFormatError(f"{self.path}: not a readable .npy file ({exc})") from exc
