"""Turn what a user passes (an array, a Source, a data spec string) into a Source.

Data specs:

- ``"data.npy"``: a ``.npy`` file;
- ``"data.h5:/group/X"``: dataset ``/group/X`` of an HDF5 file (``"data.h5"`` alone picks
  the file's only dataset);
- ``"data.zarr:X"``: array ``X`` of a Zarr group; a bare ``"data.zarr"`` is an array store;
- fsspec URLs work for Zarr: ``"memory://store.zarr:X"``, ``"s3://bucket/data.zarr:X"``.

A ``dask.array.Array`` is wrapped as it is (never computed whole).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import h5py
import numpy as np

from ..errors import SourceFormatError, SourceNotFoundError
from .base import Source
from .dask_array import DaskArraySource
from .hdf5 import HDF5Source
from .memory import ArraySource, NpySource
from .zarr import ZarrSource

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
NPY_MAGIC = b"\x93NUMPY"


def split_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"PATH:INNER"`` into ``(PATH, INNER)``, leaving a URL's ``scheme://`` alone.

    Examples
    --------
    >>> split_spec("data.h5:/X")
    ('data.h5', '/X')
    >>> split_spec("memory://s.zarr:X")
    ('memory://s.zarr', 'X')
    >>> split_spec("data.npy")
    ('data.npy', None)
    """
    scheme, sep, rest = spec.rpartition("://")
    head = scheme + sep
    path, colon, inner = rest.rpartition(":")
    if not colon or not path:
        return spec, None
    return head + path, inner


def _sniff(path: str) -> str:
    """Tell the format of a local path from its suffix, or failing that from its content."""
    lower = path.lower().rstrip("/")
    if lower.endswith(".npy"):
        return "npy"
    if lower.endswith(HDF5_SUFFIXES):
        return "hdf5"
    if lower.endswith(".zarr") or "://" in path:
        return "zarr"
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "zarr.json")) or os.path.exists(os.path.join(path, ".zarray")):
            return "zarr"
        raise SourceFormatError(f"{path}: a directory that is not a Zarr store (no zarr.json)")
    if not os.path.exists(path):
        raise SourceNotFoundError(f"{path}: no such file or directory")
    if h5py.is_hdf5(path):
        return "hdf5"
    with open(path, "rb") as handle:
        if handle.read(len(NPY_MAGIC)) == NPY_MAGIC:
            return "npy"
    raise SourceFormatError(f"{path}: not an HDF5 file, a Zarr store or a .npy file")


def _is_dask_array(obj: Any) -> bool:
    """Whether ``obj`` is a dask array, without importing dask (if it is not loaded, it is not one)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(obj, module.Array)


def open_source(spec: Any, name: str | None = None) -> Source:
    """Return a :class:`Source` for an array, a Source or a data spec.

    Parameters
    ----------
    spec : numpy.ndarray, dask.array.Array, Source, str or os.PathLike
        What to read. Strings follow the data-spec syntax of this module.
    name : str, optional
        Name used in messages for in-memory arrays.

    Raises
    ------
    SourceNotFoundError, SourceFormatError
        When the file, or the array inside it, is missing or unreadable.
    """
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        path, inner = split_spec(text)
        if not os.path.exists(path) and "://" not in path and os.path.exists(text):
            path, inner = text, None  # a colon that belongs to the file name
        kind = _sniff(path)
        if kind == "npy":
            if inner:
                raise SourceFormatError(f"{text}: a .npy file holds one array; drop ':{inner}'")
            source: Source = NpySource(path)
        elif kind == "hdf5":
            source = HDF5Source(path, inner)
        else:
            source = ZarrSource(path, inner)
        return source.open()
    if _is_dask_array(spec):
        return DaskArraySource(spec, name=name or "dask array").open()
    return ArraySource(np.asarray(spec), name=name or "array").open()
