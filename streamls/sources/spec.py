"""Turn what a user passes (an array, a Source, a data spec string) into a Source.

Data specs:

- ``"data.npy"``: a ``.npy`` file;
- ``"data.h5:/group/X"``: dataset ``/group/X`` of an HDF5 file (``"data.h5"`` alone picks
  the file's only dataset);
- ``"data.zarr:X"``: array ``X`` of a Zarr group; a bare ``"data.zarr"`` is an array store;
- ``"data.parquet"``: a Parquet file, or a directory of them read as one table, every
  numeric column; ``"data.parquet:a,b,c"`` reads columns ``a``, ``b``, ``c`` in that order;
- ``"data.csv"``, ``"data.csv.gz"``: a CSV file, every column (header guessed, delimiter
  ``,``; for other settings pass a :class:`~streamls.sources.csv.CSVSource`);
  ``"data.csv:a,b"`` reads those columns, by header name or index;
- fsspec URLs work for Zarr and Parquet: ``"memory://store.zarr:X"``,
  ``"s3://bucket/data.zarr:X"``, ``"s3://bucket/table/"``.

The format comes from the suffix, or failing that from the content (a directory holding
``zarr.json`` or Parquet files, the HDF5, ``.npy`` or Parquet signature). Column lists in
a spec are split at commas, and a spec at its last colon, so such names cannot hold either.

A ``dask.array.Array`` is wrapped as it is (never computed whole).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import h5py
import numpy as np

from ..errors import SourceFormatError, SourceNotFoundError
from .base import ACCEPTED_FORMATS, Source, filesystem
from .csv import CSVSource
from .dask_array import DaskArraySource
from .hdf5 import HDF5Source
from .memory import NPY_MAGIC, ArraySource, NpySource
from .parquet import PARQUET_MAGIC, PARQUET_SUFFIXES, ParquetSource
from .zarr import ZarrSource

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
CSV_SUFFIXES = (".csv", ".csv.gz")
ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")


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
    """Tell the format of a path or URL from its suffix, or failing that from its content."""
    lower = path.lower().rstrip("/")
    for kind, suffixes in (
        ("npy", (".npy",)), ("hdf5", HDF5_SUFFIXES), ("zarr", (".zarr",)), ("parquet", PARQUET_SUFFIXES), ("csv", CSV_SUFFIXES),
    ):
        if lower.endswith(suffixes):
            return kind
    fs, inner, url = filesystem(path, None)
    if fs.isdir(inner):
        if any(fs.exists(f"{inner.rstrip('/')}/{marker}") for marker in ZARR_MARKERS):
            return "zarr"
        if any(p.lower().endswith(PARQUET_SUFFIXES) for p in fs.find(inner)):
            return "parquet"
        raise SourceFormatError(
            f"{path}: a directory that is not a Zarr store (no zarr.json) and holds no .parquet files; "
            f"streamls reads {ACCEPTED_FORMATS}"
        )
    if not fs.exists(inner):
        raise SourceNotFoundError(f"{path}: no such file or directory")
    if not url and h5py.is_hdf5(path):
        return "hdf5"
    with fs.open(inner, "rb") as handle:
        magic = handle.read(len(NPY_MAGIC))
    if magic.startswith(PARQUET_MAGIC):
        return "parquet"
    if magic == NPY_MAGIC and not url:
        return "npy"
    where = " at a URL (URLs are read for Zarr and Parquet)" if url else ""
    raise SourceFormatError(f"{path}: not a format streamls reads{where}; it reads {ACCEPTED_FORMATS}")


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
        return _from_path(text, path, inner).open()
    if _is_dask_array(spec):
        return DaskArraySource(spec, name=name or "dask array").open()
    return ArraySource(np.asarray(spec), name=name or "array").open()


def _from_path(text: str, path: str, inner: str | None) -> Source:
    """The source of a data spec ``text``, split into ``path`` and the part after its colon."""
    kind = _sniff(path)
    columns = None if inner is None else inner.split(",")
    if kind == "npy":
        if inner:
            raise SourceFormatError(f"{text}: a .npy file holds one array; drop ':{inner}'")
        return NpySource(path)
    if kind == "hdf5":
        return HDF5Source(path, inner)
    if kind == "zarr":
        return ZarrSource(path, inner)
    if kind == "parquet":
        return ParquetSource(path, columns)
    return CSVSource(path, columns)
