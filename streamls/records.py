"""Record files: named float64 arrays plus JSON metadata, versioned, for models and the CLI's checkpoints.

One mechanism, no pickle: an HDF5 file or a Zarr group holding

- attributes ``format`` (what the file is), ``format_version`` and ``checksum`` (SHA-256
  of every array's name, shape and bytes, in name order, and of the metadata);
- one float64 array per name;
- array ``metadata``: UTF-8 JSON bytes. Kept as an array rather than an attribute
  because HDF5 attributes are limited to 64 KiB.

Writes are atomic (:class:`~streamls.sources.sinks.OutputFile`). What a file of each
format holds is up to its writer: :mod:`streamls.model` (models) and
:mod:`streamls.cli.checkpoint` (training states). Both store the standardisation as
:func:`standardizer_arrays` lays it out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np
import zarr

from . import __version__
from .errors import ModelFileError
from .sources.sinks import OutputFile
from .stats import Standardizer


def checksum(arrays: dict[str, np.ndarray], metadata: bytes) -> str:
    """SHA-256 over the arrays (by name) and the metadata bytes, as a hex string."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(str(arrays[name].shape).encode())
        digest.update(arrays[name].tobytes())
    digest.update(metadata)
    return digest.hexdigest()


def jsonable(value: Any) -> Any:
    """``value`` with NumPy arrays and scalars turned into JSON types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_record(
    path: str | os.PathLike[str],
    file_format: str,
    version: int,
    arrays: Mapping[str, np.ndarray | None],
    metadata: dict[str, Any],
    overwrite: bool = True,
) -> None:
    """Write arrays (``None`` values are left out) and metadata atomically to ``path``."""
    values = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items() if v is not None}
    meta = json.dumps(jsonable(metadata), allow_nan=True).encode()
    with OutputFile(path, overwrite=overwrite) as out:
        for name, value in values.items():
            out.create_array(name, value.shape, np.float64, data=value)
        out.create_array("metadata", (len(meta),), np.uint8, data=np.frombuffer(meta, dtype=np.uint8))
        out.attrs["format"] = file_format
        out.attrs["format_version"] = version
        out.attrs["checksum"] = checksum(values, meta)


def _open_group(path: str, what: str) -> tuple[Any, Any]:
    """Open an HDF5 file or Zarr group read-only; returns (group, closer or None)."""
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such {what} file")
    if os.path.isdir(path):
        try:
            return zarr.open_group(path, mode="r"), None
        except Exception as exc:  # zarr raises many types for a damaged store
            raise ModelFileError(f"{path}: not a readable Zarr {what} group ({exc})") from exc
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 {what} file, perhaps truncated ({exc})") from exc
    return handle, handle


def read_record(
    path: str | os.PathLike[str], file_format: str, version: int | tuple[int, ...], what: str
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`write_record`, checking format, version and checksum.

    ``version`` is the version to accept, or a tuple of them. ``what`` names the kind of
    file in messages (``"model"``, ``"checkpoint"``).

    Returns
    -------
    arrays : dict of str to numpy.ndarray (float64)
    metadata : dict

    Raises
    ------
    ModelFileError
        When the file is missing, of another format or version, truncated, or does not
        match its checksum.
    """
    path = os.fspath(path).rstrip("/")
    group, closer = _open_group(path, what)
    try:
        attrs = dict(group.attrs)
        if attrs.get("format") != file_format:
            raise ModelFileError(f"{path}: not a streamls {what} file (format attribute {attrs.get('format')!r})")
        found = int(attrs.get("format_version", -1))
        versions = version if isinstance(version, tuple) else (version,)
        if found not in versions:
            readable = " or ".join(map(str, versions))
            raise ModelFileError(
                f"{path}: {file_format} format version {found}; this streamls {__version__} reads version {readable}"
            )
        try:
            names = [name for name in group if name != "metadata"]
            arrays = {name: np.asarray(group[name][...], dtype=np.float64) for name in names}
            meta = np.asarray(group["metadata"][...], dtype=np.uint8).tobytes()
        except Exception as exc:  # h5py and zarr raise OSError, KeyError or codec errors on damage
            raise ModelFileError(f"{path}: arrays unreadable, the file is truncated or damaged ({exc})") from exc
    finally:
        if closer is not None:
            closer.close()
    if checksum(arrays, meta) != attrs.get("checksum"):
        raise ModelFileError(f"{path}: checksum mismatch; the file was modified or damaged")
    return arrays, json.loads(meta)


def standardizer_arrays(standardizer: Standardizer) -> dict[str, np.ndarray | None]:
    """The standardisation and training range as named arrays, for :func:`write_record` (an unknown range is left out)."""
    st = standardizer
    return {
        "x_mean": st.x_mean, "x_scale": st.x_scale, "y_mean": st.y_mean, "y_scale": st.y_scale,
        "x_min": st.x_min, "x_max": st.x_max,
    }


def standardizer_from(arrays: dict[str, np.ndarray]) -> Standardizer:
    """Inverse of :func:`standardizer_arrays`; files without a range give ``x_min = x_max = None``."""
    return Standardizer(
        arrays["x_mean"], arrays["x_scale"], arrays["y_mean"], arrays["y_scale"], arrays.get("x_min"), arrays.get("x_max"),
    )
