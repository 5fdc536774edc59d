"""streamls: two-layer ReLU networks trained by streaming alternating least squares.

Layers, each depending only on those above it:

- :mod:`streamls.sources`: data access (NumPy, ``.npy``, HDF5, Zarr) in row blocks;
- :mod:`streamls.stats`: per-block statistics and pass requests;
- :mod:`streamls.solvers`: ridge solves on Gram matrices;
- :mod:`streamls.backends`: where a pass runs (in-process, Dask);
- :mod:`streamls.training`: the alternating loop; :mod:`streamls.model` and
  :mod:`streamls.persistence`: the trained network and its files;
- interfaces: this module's :func:`fit`, the ``streamls`` command, :mod:`streamls.sklearn`.
"""

__version__ = "0.1.0"

from .api import fit
from .errors import StreamLSError
from .hyperparameters import TrainConfig
from .model import TwoLayerModel
from .persistence import load_model
from .training import IterationRecord, Trainer, TrainResult

__all__ = [
    "IterationRecord",
    "StreamLSError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TwoLayerModel",
    "__version__",
    "fit",
    "load_model",
]
