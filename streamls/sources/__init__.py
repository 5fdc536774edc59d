"""Data access: sources of rows, data specs, and the paired input/target dataset."""

from .base import SelectedColumns, Source
from .csv import CSVSource
from .dask_array import DaskArraySource
from .dataset import Block, Dataset, prefetched
from .hdf5 import HDF5Source
from .memory import ArraySource, NpySource
from .parquet import ParquetSource
from .spec import open_source, split_spec
from .zarr import ZarrSource

__all__ = [
    "ArraySource",
    "Block",
    "CSVSource",
    "DaskArraySource",
    "Dataset",
    "HDF5Source",
    "NpySource",
    "ParquetSource",
    "SelectedColumns",
    "Source",
    "ZarrSource",
    "open_source",
    "prefetched",
    "split_spec",
]
