"""What is in an HDF5 file, Zarr group or ``.npy`` file: shapes, storage, per-column statistics.

:meth:`ArrayReport.text` is the table ``python -m data_tools inspect`` prints;
:meth:`ArrayReport.to_dict` the JSON it prints with ``--json``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import h5py
import numpy as np
import zarr

from streamls.sizes import format_size
from streamls.sources import open_source
from streamls.sources.base import Source
from streamls.sources.csv import CSVSource
from streamls.sources.dataset import round_block_rows
from streamls.sources.hdf5 import list_datasets
from streamls.sources.parquet import ParquetSource
from streamls.sources.spec import HDF5_SUFFIXES, split_spec
from streamls.sources.spec import _sniff as sniff_format
from streamls.stats import ColumnMoments

from .writing import progress_bar

DEFAULT_BLOCK_ROWS = 65536


@dataclass(frozen=True)
class ColumnSummary:
    """Per-column statistics over the rows whose values are all finite.

    Attributes
    ----------
    min, max, mean, std : list of float, length c
        ``std`` is the population standard deviation.
    finite_rows, nonfinite_rows : int
    """

    min: list[float]
    max: list[float]
    mean: list[float]
    std: list[float]
    finite_rows: int
    nonfinite_rows: int


@dataclass(frozen=True)
class ArrayReport:
    """One array: where it is, how it is stored, and (optionally) its column statistics."""

    spec: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...] | None
    compression: str
    stored_bytes: int
    columns: ColumnSummary | None = field(default=None)
    column_names: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``columns`` as a dict or None), for JSON output."""
        return asdict(self)

    def text(self) -> str:
        """A readable block: the spec, a storage line and, with statistics, one line per column."""
        raw = math.prod(self.shape) * np.dtype(self.dtype).itemsize
        chunks = "not chunked" if self.chunks is None else "chunks " + " x ".join(map(str, self.chunks))
        stored = "size on disk unknown" if self.stored_bytes < 0 else f"{format_size(self.stored_bytes)} stored"
        shape = " x ".join(map(str, self.shape))
        lines = [
            self.spec,
            f"  {shape} {self.dtype}; {chunks}; compression {self.compression}; {stored} ({format_size(raw)} of values)",
        ]
        if self.columns is not None:
            c = self.columns
            lines.append(f"  {'column':>8} {'min':>13} {'max':>13} {'mean':>13} {'std':>13}")
            for j, values in enumerate(zip(c.min, c.max, c.mean, c.std)):
                label = f"{j}" if self.column_names is None else f"{j} {self.column_names[j]}"
                lines.append(f"  {label:>8} " + " ".join(f"{v:>13.6g}" for v in values))
            lines.append(f"  {c.finite_rows} rows counted, {c.nonfinite_rows} with NaN or Inf left out")
        return "\n".join(lines)


def array_specs(path: str) -> list[str]:
    """Data specs of every array a path names: itself if it names one, else all arrays of the file."""
    base, inner = split_spec(path)
    if inner or not os.path.exists(base) or sniff_format(base) in ("npy", "csv", "parquet"):
        return [path]
    if base.lower().endswith(HDF5_SUFFIXES) or (os.path.isfile(base) and h5py.is_hdf5(base)):
        with h5py.File(base, "r") as handle:
            return [f"{base}:{name}" for name in list_datasets(handle)]
    node = zarr.open(base, mode="r")
    if isinstance(node, zarr.Array):
        return [base]
    return sorted(f"{base}:{name}" for name, member in node.members(max_depth=None) if isinstance(member, zarr.Array))


def storage(source: Source) -> tuple[tuple[int, ...] | None, str, int]:
    """Chunk shape, compression and bytes on disk (``-1`` when unknown) of an opened source.

    A table (CSV, Parquet) is stored in blocks of ``chunk_rows`` rows (a Parquet row group,
    a CSV index step) of every column; its size is that of its file or files.
    """
    if isinstance(source, (CSVSource, ParquetSource)):
        path = source.name.split(":")[0] if not os.path.exists(source.name) else source.name
        files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs] if os.path.isdir(path) else [path]
        stored = sum(os.path.getsize(f) for f in files) if all(os.path.exists(f) for f in files) else -1
        codec = "gzip" if path.lower().endswith(".gz") else ("parquet" if isinstance(source, ParquetSource) else "none")
        return (source.chunk_rows, source.n_cols), codec, stored
    array = source.array
    if isinstance(array, h5py.Dataset):
        codec = array.compression or "none"
        if array.compression_opts is not None:
            codec = f"{codec}({array.compression_opts})"
        return array.chunks, codec, int(array.id.get_storage_size())
    if isinstance(array, zarr.Array):
        names = [getattr(c, "cname", None) or type(c).__name__.removesuffix("Codec").lower() for c in array.compressors]
        names = [str(getattr(n, "value", n)) for n in names]
        return tuple(array.chunks), "+".join(names) or "none", int(array.nbytes_stored())
    return None, "none", int(np.asarray(array).nbytes)


def column_summary(source: Source, block_rows: int = DEFAULT_BLOCK_ROWS, progress: bool | None = None) -> ColumnSummary:
    """Streaming min, max, mean and std of every column (float64 accumulators)."""
    step = round_block_rows(block_rows, source.chunk_rows)
    c = source.n_cols
    low, high = np.full(c, np.inf), np.full(c, -np.inf)
    moments = ColumnMoments.of(np.empty((0, c)))
    nonfinite = 0
    with progress_bar(progress, source.n_rows, f"inspect {source.name}") as bar:
        for start in range(0, source.n_rows, step):
            rows = source.read(start, min(start + step, source.n_rows)).astype(np.float64, copy=False)
            finite = np.isfinite(rows).all(axis=1)
            nonfinite += int(len(rows) - finite.sum())
            rows = rows if finite.all() else rows[finite]
            if len(rows):
                low, high = np.minimum(low, rows.min(axis=0)), np.maximum(high, rows.max(axis=0))
                moments = moments + ColumnMoments.of(rows)
            bar.update(len(finite))
    def values(column_values: np.ndarray) -> list[float]:
        return [float(v) for v in column_values] if moments.n else [math.nan] * c

    return ColumnSummary(
        values(low), values(high), values(moments.mean), values(moments.std), moments.n, nonfinite
    )


def inspect_arrays(
    path: str | os.PathLike[str], stats: bool = True, block_rows: int = DEFAULT_BLOCK_ROWS, progress: bool | None = None
) -> list[ArrayReport]:
    """Describe every array ``path`` names (a data spec, or a whole file or group).

    Parameters
    ----------
    path : str
        ``"data.h5"`` (every dataset), ``"data.h5:/X"``, ``"data.zarr"``, ``"data.zarr:X"``,
        ``"data.npy"``.
    stats : bool
        Also read every row once for per-column statistics.
    block_rows : int
        Rows read at a time (rounded up to whole stored chunks).
    """
    reports = []
    for spec in array_specs(os.fspath(path)):
        source = open_source(spec)
        try:
            chunks, compression, stored = storage(source)
            summary = column_summary(source, block_rows, progress) if stats else None
            reports.append(
                ArrayReport(source.name, source.shape, str(source.dtype), chunks, compression, stored, summary,
                            source.column_names)
            )
        finally:
            source.close()
    return reports
