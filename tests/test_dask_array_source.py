"""DaskArraySource and the partition plan of the Dask backend (no cluster needed)."""

from __future__ import annotations

import itertools
import pickle

import dask.array as da
import numpy as np
import pytest
import zarr

from streamls.backends.dask import Partial, partition_ranges
from streamls.errors import SourceFormatError, StreamLSError
from streamls.sources import DaskArraySource, Dataset, open_source
from streamls.sources.dask_array import regular_chunk


@pytest.fixture
def table() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(103, 4))


def test_open_source_wraps_a_dask_array_lazily(table: np.ndarray) -> None:
    array = da.from_array(table, chunks=(10, 4))
    source = open_source(array, name="X")
    assert isinstance(source, DaskArraySource)
    assert source.array is array  # wrapped, not computed
    assert (source.shape, source.n_rows, source.n_cols, source.chunk_rows) == ((103, 4), 103, 4, 10)
    np.testing.assert_array_equal(source.read(17, 45), table[17:45])


def test_one_dimensional_target_reads_as_a_column(table: np.ndarray) -> None:
    source = open_source(da.from_array(table[:, 0], chunks=25))
    np.testing.assert_array_equal(source.read(3, 9), table[3:9, :1])


def test_source_pickles_as_its_graph_and_reads_on_the_other_side(tmp_path, table: np.ndarray) -> None:
    zarr.create_array(str(tmp_path / "x.zarr"), data=table, chunks=(20, 4))
    source = open_source(da.from_zarr(str(tmp_path / "x.zarr")))
    source.read(0, 1)
    clone = pickle.loads(pickle.dumps(source))
    assert len(pickle.dumps(source)) < table.nbytes  # the description, not the data
    np.testing.assert_array_equal(clone.read(40, 77), table[40:77])


def test_blocks_align_to_dask_chunks(table: np.ndarray) -> None:
    dataset = Dataset(da.from_array(table, chunks=(10, 4)), block_rows=15)
    assert dataset.block_rows == 20
    assert all(a % 10 == 0 for a, _ in dataset.block_ranges())


@pytest.mark.parametrize(
    ("sizes", "expected"), [((10, 10, 3), 10), ((10,), 10), ((10, 5, 10), 1), ((5, 5, 9), 1)]
)
def test_regular_chunk(sizes: tuple[int, ...], expected: int) -> None:
    assert regular_chunk(sizes) == expected


def test_unknown_chunk_sizes_are_rejected_with_the_fix(table: np.ndarray) -> None:
    array = da.from_array(table, chunks=(10, 4))
    unknown = array[array[:, 0] > 0]
    with pytest.raises(SourceFormatError, match="compute_chunk_sizes"):
        open_source(unknown, name="X")


def test_dask_array_trains_like_numpy(table: np.ndarray) -> None:
    import streamls

    kwargs = {"hidden_units": 3, "max_iter": 3, "tol": 0, "random_state": 1, "block_rows": 20}
    lazy = streamls.fit(da.from_array(table, chunks=(20, 4)), **kwargs)
    eager = streamls.fit(table, **kwargs)
    np.testing.assert_allclose(lazy.model.W, eager.model.W, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_partitions", [1, 3, 8, 1000])
def test_partitions_cover_the_rows_in_whole_blocks(table: np.ndarray, n_partitions: int) -> None:
    dataset = Dataset(table, block_rows=10)
    ranges = partition_ranges(dataset, n_partitions)
    assert len(ranges) == min(n_partitions, 11)
    assert ranges[0][0] == 0 and ranges[-1][1] == 103
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(ranges))
    assert all(a % 10 == 0 for a, _ in ranges)


def test_partition_rows_round_up_to_whole_blocks(table: np.ndarray) -> None:
    dataset = Dataset(table, block_rows=10)
    assert partition_ranges(dataset, 99, partition_rows=25) == [(0, 30), (30, 60), (60, 90), (90, 103)]


def test_partials_add_only_when_adjacent() -> None:
    assert Partial(0, 5, 1) + Partial(5, 9, 2) == Partial(0, 9, 3)
    with pytest.raises(StreamLSError, match=r"\[0, 5\) and \[6, 9\)"):
        Partial(0, 5, 1) + Partial(6, 9, 2)
