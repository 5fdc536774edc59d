"""Model files: an HDF5 file or a Zarr group, no pickle.

Layout (format version 1):

- attributes ``format = "streamls.TwoLayerModel"``, ``format_version = 1``, ``checksum``
  (SHA-256 of every array's bytes and of the metadata, in a fixed order);
- arrays ``W``, ``B``, ``x_mean``, ``x_scale``, ``y_mean``, ``y_scale`` (float64);
- array ``metadata``: UTF-8 JSON bytes with ``alpha``, ``target_is_1d``,
  ``hyperparameters``, ``history``, ``info`` and the writing streamls version. Kept as an
  array rather than an attribute because HDF5 attributes are limited to 64 KiB.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import h5py
import numpy as np
import zarr

from . import __version__
from .errors import ModelFileError
from .model import TwoLayerModel
from .sources.sinks import OutputFile
from .stats import Standardizer

FORMAT = "streamls.TwoLayerModel"
FORMAT_VERSION = 1
ARRAYS = ("W", "B", "x_mean", "x_scale", "y_mean", "y_scale")


def _arrays(model: TwoLayerModel) -> dict[str, np.ndarray]:
    st = model.standardizer
    values = (model.W, model.B, st.x_mean, st.x_scale, st.y_mean, st.y_scale)
    return {name: np.ascontiguousarray(v, dtype=np.float64) for name, v in zip(ARRAYS, values)}


def _checksum(arrays: dict[str, np.ndarray], metadata: bytes) -> str:
    digest = hashlib.sha256()
    for name in ARRAYS:
        digest.update(name.encode())
        digest.update(str(arrays[name].shape).encode())
        digest.update(arrays[name].tobytes())
    digest.update(metadata)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_model(model: TwoLayerModel, path: str | os.PathLike[str], overwrite: bool = True) -> None:
    """Write ``model`` to ``path`` (``.h5``/``.hdf5``: HDF5; ``.zarr``: Zarr group), atomically."""
    arrays = _arrays(model)
    metadata = json.dumps(
        _jsonable(
            {
                "alpha": model.alpha,
                "target_is_1d": model.target_is_1d,
                "hyperparameters": model.hyperparameters,
                "history": model.history,
                "info": model.info,
                "streamls_version": __version__,
            }
        ),
        allow_nan=True,
    ).encode()
    with OutputFile(path, overwrite=overwrite) as out:
        for name, value in arrays.items():
            out.create_array(name, value.shape, np.float64, data=value)
        out.create_array("metadata", (len(metadata),), np.uint8, data=np.frombuffer(metadata, dtype=np.uint8))
        out.attrs["format"] = FORMAT
        out.attrs["format_version"] = FORMAT_VERSION
        out.attrs["checksum"] = _checksum(arrays, metadata)


def _open_group(path: str) -> tuple[Any, Any]:
    """Open a model file read-only; returns (group, closer)."""
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such model file")
    if os.path.isdir(path):
        try:
            return zarr.open_group(path, mode="r"), None
        except Exception as exc:  # zarr raises many types for a damaged store
            raise ModelFileError(f"{path}: not a readable Zarr model group ({exc})") from exc
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 model file, perhaps truncated ({exc})") from exc
    return handle, handle


def load_model(path: str | os.PathLike[str]) -> TwoLayerModel:
    """Read a model written by :func:`save_model`.

    Raises
    ------
    ModelFileError
        When the file is missing, not a model, of another format version, truncated or
        does not match its checksum.
    """
    path = os.fspath(path).rstrip("/")
    group, closer = _open_group(path)
    try:
        attrs = dict(group.attrs)
        if attrs.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a streamls model file (format attribute {attrs.get('format')!r})")
        version = int(attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise ModelFileError(
                f"{path}: model format version {version}; this streamls {__version__} reads version {FORMAT_VERSION}"
            )
        try:
            arrays = {name: np.asarray(group[name][...], dtype=np.float64) for name in ARRAYS}
            metadata = np.asarray(group["metadata"][...], dtype=np.uint8).tobytes()
        except Exception as exc:  # h5py and zarr raise OSError, KeyError or codec errors on damage
            raise ModelFileError(f"{path}: model arrays unreadable, the file is truncated or damaged ({exc})") from exc
    finally:
        if closer is not None:
            closer.close()
    if _checksum(arrays, metadata) != attrs.get("checksum"):
        raise ModelFileError(f"{path}: checksum mismatch; the model file was modified or damaged")
    meta = json.loads(metadata)
    standardizer = Standardizer(arrays["x_mean"], arrays["x_scale"], arrays["y_mean"], arrays["y_scale"])
    return TwoLayerModel(
        W=arrays["W"],
        B=arrays["B"],
        alpha=float(meta["alpha"]),
        standardizer=standardizer,
        target_is_1d=bool(meta["target_is_1d"]),
        hyperparameters=meta["hyperparameters"],
        history=meta["history"],
        info=meta["info"],
    )
