"""HDF5 datasets through h5py."""

from __future__ import annotations

import os
from typing import Any

import h5py

from ..errors import SourceFormatError, SourceNotFoundError
from .base import DATA_TOOLS_ATTRIBUTE, Source, converted_names


def list_datasets(handle: h5py.Group) -> list[str]:
    """Absolute paths of every dataset below an HDF5 group."""
    found: list[str] = []
    handle.visititems(lambda name, obj: found.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
    return found


class HDF5Source(Source):
    """One dataset of an HDF5 file, addressed as file path plus dataset path.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.
    dataset : str or None
        Path of the dataset inside the file, such as ``"/group/X"``. ``None`` picks the
        only dataset of a file that has exactly one.
    """

    def __init__(self, path: str | os.PathLike[str], dataset: str | None = None) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.dataset = dataset
        self.name = f"{self.path}:{dataset}" if dataset else self.path
        self._file: h5py.File | None = None

    def _open(self) -> Any:
        if not os.path.isfile(self.path):
            raise SourceNotFoundError(f"{self.path}: no such HDF5 file")
        if not h5py.is_hdf5(self.path):
            raise SourceFormatError(f"{self.path}: not an HDF5 file")
        handle = h5py.File(self.path, "r")
        available = list_datasets(handle)
        if self.dataset is None:
            if len(available) != 1:
                handle.close()
                raise SourceNotFoundError(
                    f"{self.path}: name the dataset as '{self.path}:/NAME'; the file holds {available or 'no datasets'}"
                )
            self.dataset = available[0]
            self.name = f"{self.path}:{self.dataset}"
        node = handle.get(self.dataset)
        if not isinstance(node, h5py.Dataset):
            handle.close()
            raise SourceNotFoundError(
                f"{self.path}: no dataset {self.dataset!r} in the file; it holds {available or 'no datasets'}"
            )
        n_cols = 1 if len(node.shape) < 2 else int(node.shape[1])
        self._names = converted_names(handle.attrs.get(DATA_TOOLS_ATTRIBUTE), self.dataset, n_cols)
        self._file = handle
        return node

    @property
    def chunk_rows(self) -> int:
        """Rows in one HDF5 chunk; 1 for a contiguous (unchunked) dataset."""
        chunks = self.array.chunks
        return int(chunks[0]) if chunks else 1

    def close(self) -> None:
        """Close the HDF5 file; the source reopens it on the next read."""
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_file"] = None
        return state
