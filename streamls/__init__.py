"""streamls: two-layer ReLU networks trained by streaming alternating least squares.

Layers, each depending only on those above it:

- :mod:`streamls.sources`: data access (NumPy, ``.npy``, HDF5, Zarr, Parquet, CSV) in row blocks;
- :mod:`streamls.stats`: per-block statistics and pass requests;
- :mod:`streamls.solvers`: ridge solves on Gram matrices, and the ridge chosen from a grid;
- :mod:`streamls.backends`: where a pass runs (in-process, Dask);
- :mod:`streamls.schedule` and :mod:`streamls.strategies`: which rows each pass reads, and
  how a pass's statistics become the next model;
- :mod:`streamls.training`: the alternating loop; :mod:`streamls.records`,
  :mod:`streamls.model`, :mod:`streamls.summary` and :mod:`streamls.persistence`: the
  trained network, what its fit reports, and their files;
- interfaces: this module's :func:`fit`, the ``streamls`` command, :mod:`streamls.sklearn`.
"""

__version__ = "0.1.0"

from .api import fit
from .errors import StreamLSError
from .hyperparameters import TrainConfig
from .model import TwoLayerModel
from .persistence import load_model
from .summary import FitSummary
from .training import IterationRecord, Trainer, TrainResult

__all__ = [
    "FitSummary",
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
