"""data_tools: get data into streamls' formats without ever loading it whole.

- :func:`convert`: CSV (plain or gzip) or Parquet to chunked HDF5 / Zarr;
- :func:`synth`: synthetic teacher-network or linear regression data, in parallel;
- :func:`split`: train / test / validation split by a hash of the global row index;
- :func:`inspect_arrays`: shape, storage and streaming per-column statistics.

Each is also a subcommand of ``python -m data_tools``.
"""

from streamls.synthetic import SynthSpec, Teacher, generate_rows

from .convert import ConvertReport, convert
from .errors import CSVFormatError, DataToolsError
from .inspection import ArrayReport, inspect_arrays
from .splitting import SplitReport, split
from .synth import load_teacher, synth

__all__ = [
    "ArrayReport",
    "CSVFormatError",
    "ConvertReport",
    "DataToolsError",
    "SplitReport",
    "SynthSpec",
    "Teacher",
    "convert",
    "generate_rows",
    "inspect_arrays",
    "load_teacher",
    "split",
    "synth",
]
