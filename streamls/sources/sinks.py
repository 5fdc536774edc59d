"""Writing new HDF5 files and Zarr stores atomically.

Everything streamls writes (predictions, models, converted data) goes through
:class:`OutputFile`: it writes under a temporary name beside the target and renames only
when the ``with`` block ends without an exception, so a failed or killed writer never
leaves something that looks finished.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any

import h5py
import numpy as np
import zarr

from ..errors import OutputExistsError, SourceFormatError
from .spec import HDF5_SUFFIXES, split_spec


def output_kind(path: str) -> str:
    """``"hdf5"`` or ``"zarr"`` from an output path's suffix."""
    lower = path.lower().rstrip("/")
    if lower.endswith(HDF5_SUFFIXES):
        return "hdf5"
    if lower.endswith(".zarr"):
        return "zarr"
    raise SourceFormatError(f"{path}: output must end in .h5/.hdf5 (HDF5) or .zarr (Zarr)")


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


class OutputFile:
    """A new HDF5 file or Zarr group, written under a temporary name.

    Parameters
    ----------
    path : str or os.PathLike
        Final path; its suffix (``.h5``/``.hdf5`` or ``.zarr``) picks the format.
    overwrite : bool
        Replace an existing ``path`` on success; otherwise refuse before writing.

    Examples
    --------
    >>> with OutputFile("preds.h5") as out:                      # doctest: +SKIP
    ...     arr = out.create_array("yhat", (n, 1), np.float32, chunk_rows=4096)
    ...     arr[0:4096] = block
    """

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        self.path = os.fspath(path).rstrip("/")
        self.kind = output_kind(self.path)
        self.overwrite = overwrite
        directory, base = os.path.split(os.path.abspath(self.path))
        self.tmp_path = os.path.join(directory, f".{base}.tmp-{uuid.uuid4().hex[:8]}")
        self.handle: Any = None

    def __enter__(self) -> OutputFile:
        if os.path.lexists(self.path) and not self.overwrite:
            raise OutputExistsError(f"{self.path}: exists; choose another path or pass overwrite=True")
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise SourceFormatError(f"{self.path}: the directory {parent} does not exist")
        if self.kind == "hdf5":
            self.handle = h5py.File(self.tmp_path, "w")
        else:
            self.handle = zarr.open_group(self.tmp_path, mode="w")
        return self

    @property
    def attrs(self) -> Any:
        """Attributes of the file's root (HDF5 file or Zarr group); available only inside the ``with`` block."""
        return self.handle.attrs

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
        """Create an array; returns an object that takes ``arr[a:b] = rows``.

        ``compression`` is ``"gzip"`` or ``"lzf"`` for HDF5, ``"zstd"`` or ``"blosc-lz4"``
        for Zarr, or ``None``. ``resizable=True`` lets rows be appended later with
        ``arr.resize((n, *shape[1:]))`` (for writers that do not know the row count up
        front); it needs ``chunk_rows``, as the initial shape may hold no rows.
        """
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

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.kind == "hdf5" and self.handle is not None:
            self.handle.close()
        self.handle = None
        if exc_type is not None:
            _remove(self.tmp_path)
            return
        _fsync_tree(self.tmp_path)
        if os.path.lexists(self.path):
            _remove(self.path)
        os.replace(self.tmp_path, self.path)
        _fsync_directory(os.path.dirname(os.path.abspath(self.path)))


def _zarr_compressors(compression: str | None, path: str) -> Any:
    if compression is None or compression == "none":
        return None
    if compression == "zstd":
        return zarr.codecs.ZstdCodec()
    if compression == "blosc-lz4":
        return zarr.codecs.BloscCodec(cname="lz4")
    raise SourceFormatError(f"{path}: Zarr compression must be none, zstd or blosc-lz4, not {compression!r}")


def output_target(spec: str, default_name: str) -> tuple[str, str]:
    """Split an output spec into ``(path, array name)``: ``"out.h5:/yhat"``, ``"out.zarr:yhat"``."""
    path, inner = split_spec(os.fspath(spec))
    return path, (inner or default_name)
