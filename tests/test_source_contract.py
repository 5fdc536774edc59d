"""Every kind of source keeps the same contract, checked by one test class against the rows in memory.

The contract (streamls.sources.base.Source): ``n_rows``, ``shape``, ``n_cols``, ``dtype``,
``chunk_rows`` (the stored chunk blocks round to), ``column_names`` where the format has
them, ``read(start, stop)`` equal to the same rows of a NumPy array in any order of
reads, a :class:`RowRangeError` for rows outside ``[0, n_rows)``, and a picklable
description that reopens the same rows after ``close``.

Each case writes a real file (``.npy``, HDF5, Zarr locally and at ``memory://``, Parquet
file, directory and ``memory://``, CSV plain and gzip, an HDF5 file from ``data_tools
convert``) or wraps an in-memory array (NumPy, dask). The rows (9001 of them) span
several CSV index entries (every 4096 rows) and many stored chunks.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_csv, write_hdf5, write_npy, write_zarr

import data_tools
from streamls.errors import RowRangeError
from streamls.sources import Dataset, Source, open_source

N_ROWS, CHUNK = 9001, 256
NAMES = ("a", "b", "c", "y")
RNG = np.random.default_rng(11)
#: Values with exact 17-digit decimal forms, so that CSV text reads back bit for bit.
TABLE = RNG.standard_normal((N_ROWS, len(NAMES))) * [1.0, 1e3, 1e-3, 10.0]


@dataclass(frozen=True)
class Case:
    """A source and what the contract says it must report.

    Attributes
    ----------
    source : Source
    expected : numpy.ndarray, shape (N_ROWS, c)
        The rows in memory, in the dtype the source reports.
    chunk_rows : int
    names : tuple of str or None
    """

    source: Source
    expected: np.ndarray
    chunk_rows: int
    names: tuple[str, ...] | None


def parquet_table(rows: np.ndarray) -> pa.Table:
    return pa.table({name: rows[:, j] for j, name in enumerate(NAMES)})


def table_csv(path: Path, header: bool) -> str:
    """TABLE as a CSV file (gzip for ``.gz``), with or without its column names."""
    return write_csv(path, TABLE, NAMES if header else None)


def memory_url(suffix: str) -> str:
    return f"memory://contract-{uuid.uuid4().hex[:8]}{suffix}"


def parquet_file(tmp: Path) -> str:
    path = tmp / "d.parquet"
    pq.write_table(parquet_table(TABLE), path, row_group_size=CHUNK)
    return str(path)


def parquet_directory(tmp: Path) -> str:
    # Two files of whole row groups but the last: the row groups stay regular across files.
    directory = tmp / "table"
    directory.mkdir()
    pq.write_table(parquet_table(TABLE[:4096]), directory / "part-0.parquet", row_group_size=CHUNK)
    pq.write_table(parquet_table(TABLE[4096:]), directory / "part-1.parquet", row_group_size=CHUNK)
    return str(directory)


def parquet_memory() -> str:
    url = memory_url(".parquet")
    with fsspec.open(url, "wb") as handle:
        pq.write_table(parquet_table(TABLE), handle, row_group_size=CHUNK)
    return url


def converted_hdf5(tmp: Path) -> str:
    report = data_tools.convert(table_csv(tmp / "in.csv", True), tmp / "conv.h5", dtype="float64", chunk_rows=CHUNK)
    return report.x_spec


CASES: dict[str, Callable[[Path], Case]] = {
    "numpy array": lambda t: Case(open_source(TABLE), TABLE, 1, None),
    ".npy": lambda t: Case(open_source(write_npy(t, TABLE)), TABLE, 1, None),
    "HDF5": lambda t: Case(open_source(write_hdf5(t, {"/X": TABLE}, CHUNK)["/X"]), TABLE, CHUNK, None),
    "HDF5 from data_tools convert": lambda t: Case(open_source(converted_hdf5(t)), TABLE, CHUNK, NAMES),
    "Zarr": lambda t: Case(open_source(write_zarr(str(t / "s.zarr"), {"X": TABLE}, CHUNK)["X"]), TABLE, CHUNK, None),
    "Zarr at memory://": lambda t: Case(open_source(write_zarr(memory_url(".zarr"), {"X": TABLE}, CHUNK)["X"]), TABLE, CHUNK, None),
    "dask array": lambda t: Case(open_source(da.from_array(TABLE, chunks=(CHUNK, 4))), TABLE, CHUNK, None),
    "float32 Zarr": lambda t: Case(
        open_source(write_zarr(str(t / "f.zarr"), {"X": TABLE.astype(np.float32)}, CHUNK)["X"]), TABLE.astype(np.float32), CHUNK, None
    ),
    "Parquet file": lambda t: Case(open_source(parquet_file(t)), TABLE, CHUNK, NAMES),
    "Parquet directory": lambda t: Case(open_source(parquet_directory(t)), TABLE, CHUNK, NAMES),
    "Parquet at memory://": lambda t: Case(open_source(parquet_memory()), TABLE, CHUNK, NAMES),
    "Parquet columns by name": lambda t: Case(
        open_source(f"{parquet_memory()}:y,a"), TABLE[:, [3, 0]], CHUNK, ("y", "a")
    ),
    "CSV with header": lambda t: Case(open_source(table_csv(t / "h.csv", True)), TABLE, 1, NAMES),
    "CSV without header": lambda t: Case(open_source(table_csv(t / "n.csv", False)), TABLE, 1, None),
    "gzipped CSV": lambda t: Case(open_source(table_csv(t / "g.csv.gz", True)), TABLE, 1, NAMES),
    "CSV columns": lambda t: Case(open_source(f"{table_csv(t / 'c.csv', True)}:c,0"), TABLE[:, [2, 0]], 1, ("c", "a")),
}

#: Row ranges read in this order: across chunk and CSV-index boundaries, backwards, empty, the last row.
RANGES = [(0, 10), (100, 165), (4090, 4100), (8191, N_ROWS), (5, 6), (4096, 8192), (0, 0), (N_ROWS, N_ROWS), (N_ROWS - 1, N_ROWS), (0, N_ROWS)]


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    made = CASES[request.param](tmp_path)
    yield made
    made.source.close()


class TestSourceContract:
    """The contract every source keeps, whatever its format."""

    def test_shape_dtype_and_chunking(self, case: Case) -> None:
        source = case.source
        assert source.n_rows == N_ROWS
        assert source.shape == case.expected.shape and source.n_cols == case.expected.shape[1]
        assert source.dtype == case.expected.dtype
        assert source.chunk_rows == case.chunk_rows

    def test_column_names(self, case: Case) -> None:
        assert case.source.column_names == case.names

    def test_reads_equal_numpy_in_any_order(self, case: Case) -> None:
        for start, stop in RANGES:
            block = case.source.read(start, stop)
            assert block.shape == (stop - start, case.expected.shape[1]) and block.dtype == case.expected.dtype
            np.testing.assert_array_equal(block, case.expected[start:stop])

    @pytest.mark.parametrize(("start", "stop"), [(0, N_ROWS + 1), (-1, 5), (10, 5), (N_ROWS + 1, N_ROWS + 2)])
    def test_rows_outside_the_source_are_an_error(self, case: Case, start: int, stop: int) -> None:
        with pytest.raises(RowRangeError, match=rf"rows \[{start}, {stop}\).* {N_ROWS} rows"):
            case.source.read(start, stop)

    def test_pickled_copy_and_closed_source_read_the_same_rows(self, case: Case) -> None:
        clone = pickle.loads(pickle.dumps(case.source))
        assert clone.name == case.source.name and clone.column_names == case.names
        np.testing.assert_array_equal(clone.read(4000, 4200), case.expected[4000:4200])
        case.source.close()
        np.testing.assert_array_equal(case.source.read(7, 70), case.expected[7:70])
        clone.close()

    def test_dataset_blocks_cover_every_row_once(self, case: Case) -> None:
        dataset = Dataset(case.source, target_cols=-1, block_rows=1000)
        assert dataset.block_rows % case.chunk_rows == 0
        blocks = list(dataset.blocks())
        np.testing.assert_array_equal(np.concatenate([b.x for b in blocks]), case.expected[:, :-1])
        np.testing.assert_array_equal(np.concatenate([b.y for b in blocks]), case.expected[:, -1:])
        assert dataset.target_names == (None if case.names is None else case.names[-1:])
