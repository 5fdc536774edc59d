"""Sources read the same rows from every format; datasets cover rows in storage-aligned blocks."""

from __future__ import annotations

import pickle
from itertools import pairwise
from pathlib import Path

import fsspec
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from conftest import FILE_KINDS, write_hdf5, write_npy, write_zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamls.sources import (
    ArraySource,
    Dataset,
    HDF5Source,
    NpySource,
    ParquetSource,
    SelectedColumns,
    ZarrSource,
    open_source,
    prefetched,
    split_spec,
)
from streamls.split import validation_mask

RNG = np.random.default_rng(0)
X = RNG.standard_normal((503, 4))
Y = RNG.standard_normal(503)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_every_format_reads_the_same_rows(files, kind: str) -> None:
    specs = files(kind, {"X": X.astype(np.float32), "y": Y}, chunk_rows=64)
    x_source, y_source = open_source(specs["X"]), open_source(specs["y"])
    assert x_source.shape == (503, 4) and x_source.n_cols == 4 and x_source.dtype == np.float32
    assert y_source.shape == (503,) and y_source.n_cols == 1
    expected_chunk = 64 if kind in ("hdf5", "zarr", "zarr-memory") else 1
    assert x_source.chunk_rows == expected_chunk
    np.testing.assert_array_equal(x_source.read(0, 503), X.astype(np.float32))
    np.testing.assert_array_equal(x_source.read(100, 165), X[100:165].astype(np.float32))
    np.testing.assert_array_equal(y_source.read(500, 503), Y[500:503, None])
    # A source is a picklable description: a copy reopens the file and reads the same rows.
    clone = pickle.loads(pickle.dumps(x_source))
    assert clone.name == x_source.name
    np.testing.assert_array_equal(clone.read(7, 70), x_source.read(7, 70))
    x_source.close()
    np.testing.assert_array_equal(x_source.read(0, 3), X[:3].astype(np.float32))


def test_source_types_and_names(tmp_path: Path) -> None:
    npy = open_source(write_npy(tmp_path, X, "x"))
    assert isinstance(npy, NpySource) and isinstance(npy.array, np.memmap)
    h5 = open_source(write_hdf5(tmp_path, {"/g/X": X}, 50, "d")["/g/X"])
    assert isinstance(h5, HDF5Source) and h5.name.endswith("d.h5:/g/X")
    group = open_source(write_zarr(str(tmp_path / "z.zarr"), {"X": X}, 50)["X"])
    assert isinstance(group, ZarrSource) and group.name.endswith("z.zarr:X")
    array = open_source(ArraySource(X, name="mine"))
    assert array.name == "mine"
    assert open_source(X, name="inputs").name == "inputs"


def test_hdf5_file_with_one_dataset_needs_no_path(tmp_path: Path) -> None:
    spec = write_hdf5(tmp_path, {"/only": X}, None, "one")["/only"]
    path = spec.rsplit(":", 1)[0]
    source = open_source(path)
    assert source.name == f"{path}:/only"
    np.testing.assert_array_equal(source.read(0, 10), X[:10])


def test_bare_zarr_array_store(tmp_path: Path) -> None:
    path = str(tmp_path / "bare.zarr")
    array = zarr.create_array(path, shape=X.shape, chunks=(100, 4), dtype="f8")
    array[...] = X
    source = open_source(path)
    assert source.chunk_rows == 100
    np.testing.assert_array_equal(source.read(0, 503), X)


def test_nested_zarr_group_path(tmp_path: Path) -> None:
    store = str(tmp_path / "nested.zarr")
    group = zarr.open_group(store, mode="w").create_group("inner")
    group.create_array("X", shape=X.shape, chunks=(32, 4), dtype="f8")[...] = X
    np.testing.assert_array_equal(open_source(f"{store}:inner/X").read(32, 64), X[32:64])


def test_file_name_with_a_colon(tmp_path: Path) -> None:
    path = tmp_path / "a:b.npy"
    np.save(path, X)
    np.testing.assert_array_equal(open_source(str(path)).read(0, 5), X[:5])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("data.h5:/X", ("data.h5", "/X")),
        ("data.zarr:grp/X", ("data.zarr", "grp/X")),
        ("memory://s.zarr:X", ("memory://s.zarr", "X")),
        ("s3://bucket/d.zarr", ("s3://bucket/d.zarr", None)),
        ("data.npy", ("data.npy", None)),
        ("/abs/dir/data.h5", ("/abs/dir/data.h5", None)),
        ("data.parquet:a,b", ("data.parquet", "a,b")),
        ("memory://t/d.parquet:y", ("memory://t/d.parquet", "y")),
        ("s3://bucket/table/", ("s3://bucket/table/", None)),
    ],
)
def test_split_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert split_spec(spec) == expected


def test_table_with_target_columns() -> None:
    table = np.column_stack([X, Y])
    default = Dataset(table)
    assert default.n_features == 4 and default.n_targets == 1 and default.target_is_1d
    block = default.read_block(10, 20)
    np.testing.assert_array_equal(block.x, X[10:20])
    np.testing.assert_array_equal(block.y, Y[10:20, None])
    picked = Dataset(table, target_cols=[0, -1])
    assert picked.n_features == 3 and picked.n_targets == 2 and not picked.target_is_1d
    block = picked.read_block(0, 5)
    np.testing.assert_array_equal(block.x, table[:5, 1:4])
    np.testing.assert_array_equal(block.y, table[:5, [0, 4]])


def test_one_dimensional_and_two_dimensional_targets() -> None:
    assert Dataset(X, Y).target_is_1d
    assert not Dataset(X, Y[:, None]).target_is_1d
    assert Dataset(X, np.column_stack([Y, Y])).n_targets == 2


@pytest.mark.parametrize(("requested", "chunk", "expected"), [(150, 64, 192), (64, 64, 64), (1, 64, 64), (7, 1, 7)])
def test_block_rows_round_up_to_whole_chunks(files, requested: int, chunk: int, expected: int) -> None:
    data = X if chunk == 1 else files("hdf5", {"X": X}, chunk_rows=chunk)["X"]
    assert Dataset(data, Y, block_rows=requested).block_rows == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(0, 3),
    block=st.integers(1, 600),
    bounds=st.tuples(st.integers(0, 503), st.integers(0, 503)).filter(lambda b: b[0] < b[1]),
    prefetch=st.booleans(),
)
def test_blocks_cover_each_row_once_and_align_to_chunks(which: int, block: int, bounds, prefetch: bool) -> None:
    start, stop = bounds
    dataset = Dataset(ZARR_SOURCES[which], Y, block_rows=block)
    step = dataset.block_rows
    assert step % dataset.x_source.chunk_rows == 0 and step >= block
    blocks = list(dataset.blocks(start, stop, prefetch=prefetch))
    assert blocks[0].start == start and blocks[-1].stop == stop
    for left, right in pairwise(blocks):
        assert left.stop == right.start
        assert right.start % step == 0  # interior boundaries fall on whole stored chunks
    np.testing.assert_array_equal(np.concatenate([b.x for b in blocks]), X[start:stop])
    np.testing.assert_array_equal(np.concatenate([b.y for b in blocks])[:, 0], Y[start:stop])


#: Stored chunks of 1, 10, 64 and 100 rows.
ZARR_SOURCES = [open_source(write_zarr(f"memory://aligned-{c}.zarr", {"X": X}, c)["X"]) for c in (1, 10, 64, 100)]


def test_prefetched_keeps_order_and_propagates_errors() -> None:
    tasks = [lambda i=i: i * i for i in range(20)]
    assert list(prefetched(tasks)) == [i * i for i in range(20)]
    assert list(prefetched(tasks, enabled=False)) == [i * i for i in range(20)]
    assert list(prefetched([])) == []

    def boom() -> int:
        raise RuntimeError("read failed")

    with pytest.raises(RuntimeError, match="read failed"):
        list(prefetched([lambda: 1, boom, lambda: 3]))


@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.integers(1, 9999), max_size=6, unique=True), seed=st.integers(0, 1000))
def test_validation_split_does_not_depend_on_chunking(cuts: list[int], seed: int) -> None:
    whole = validation_mask(0, 10000, 0.25, seed)
    bounds = [0, *sorted(cuts), 10000]
    pieces = np.concatenate([validation_mask(a, b, 0.25, seed) for a, b in pairwise(bounds)])
    np.testing.assert_array_equal(pieces, whole)
    assert 0.22 < whole.mean() < 0.28
    assert not validation_mask(0, 100, 0.0, seed).any()


def test_integer_and_bool_data_are_accepted(tmp_path: Path) -> None:
    ints = (X * 100).astype(np.int16)
    with h5py.File(tmp_path / "ints.h5", "w") as handle:
        handle["X"] = ints
        handle["flag"] = Y > 0
    dataset = Dataset(f"{tmp_path}/ints.h5:/X", f"{tmp_path}/ints.h5:/flag")
    block = dataset.read_block(0, 503)
    np.testing.assert_array_equal(block.x, ints)
    np.testing.assert_array_equal(block.y[:, 0], Y > 0)
    assert block.keep is None


def test_format_told_by_content_without_a_suffix(tmp_path: Path) -> None:
    table = pa.table({"a": X[:, 0], "b": X[:, 1]})
    pq.write_table(table, tmp_path / "table.dat")
    assert isinstance(open_source(str(tmp_path / "table.dat")), ParquetSource)
    zarr.create_array(str(tmp_path / "store"), shape=X.shape, chunks=(100, 4), dtype="f8")[...] = X
    assert isinstance(open_source(str(tmp_path / "store")), ZarrSource)
    with fsspec.open("memory://content/parts/p0.parquet", "wb") as handle:
        pq.write_table(table, handle)
    url = open_source("memory://content/parts")
    assert isinstance(url, ParquetSource) and url.column_names == ("a", "b")
    np.testing.assert_array_equal(url.read(0, 503), X[:, :2])
    write_zarr("memory://content/group", {"X": X}, 50)
    assert isinstance(open_source("memory://content/group:X"), ZarrSource)


def test_selected_columns_read_and_name_a_subset(tmp_path: Path) -> None:
    pq.write_table(pa.table({n: X[:, j] for j, n in enumerate("abcd")}), tmp_path / "t.parquet", row_group_size=64)
    picked = SelectedColumns(open_source(str(tmp_path / "t.parquet")), [3, 0])
    assert picked.shape == (503, 2) and picked.chunk_rows == 64 and picked.column_names == ("d", "a")
    assert picked.name.endswith("t.parquet columns ['d', 'a']")
    np.testing.assert_array_equal(picked.read(60, 130), X[60:130][:, [3, 0]])
    unnamed = SelectedColumns(ArraySource(X), [1])
    assert unnamed.column_names is None and unnamed.name == "array columns [1]"
