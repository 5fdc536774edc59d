"""Model files: :func:`save_model` and :func:`load_model`.

The layout of a model file and its format versions are described in :mod:`streamls.model`;
the mechanism under it (versioned HDF5 or Zarr groups of arrays plus JSON metadata, with a
checksum, written atomically) is :mod:`streamls.records`. No pickle.
"""

from __future__ import annotations

import os

from .model import TwoLayerModel


def save_model(model: TwoLayerModel, path: str | os.PathLike[str], overwrite: bool = True) -> None:
    """Write ``model`` to ``path`` (``.h5``/``.hdf5``: HDF5; ``.zarr``: Zarr group), atomically; see :meth:`TwoLayerModel.save`."""
    model.save(path, overwrite=overwrite)


def load_model(path: str | os.PathLike[str]) -> TwoLayerModel:
    """Read a model written by :func:`save_model`; see :meth:`TwoLayerModel.load`.

    Raises
    ------
    ModelFileError
        When the file is missing, not a model, of another format version, truncated or
        does not match its checksum.
    """
    return TwoLayerModel.load(path)
