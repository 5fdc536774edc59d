"""Data where users keep it: Parquet and CSV train, predict and fail as the same rows in memory do.

References are independent: a model trained on the same rows held in a NumPy array (same
hyperparameters, ``schedule="full"``, fixed seed, the same block size), ``model.predict``
on the array, and the rows themselves. Files are real Parquet (pyarrow), CSV (plain and
gzip), HDF5 and Zarr written under ``tmp_path`` or at ``memory://``; the Dask backend runs
on a real LocalCluster of two worker processes on loopback; the command line runs as a
subprocess.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from conftest import files_under, teacher_data, write_csv, write_zarr
from distributed import Client, LocalCluster

import data_tools
import streamls
from streamls.backends.dask import DaskBackend
from streamls.cli.config import tomllib
from streamls.errors import (
    ConfigError,
    NonFiniteDataError,
    OutOfRangeWarning,
    OutputExistsError,
    ShapeMismatchError,
    SourceFormatError,
    SourceNotFoundError,
    StreamLSError,
)
from streamls.model import MODEL_FORMAT
from streamls.records import standardizer_arrays, write_record
from streamls.sklearn import StreamLSRegressor
from streamls.sources import CSVSource, ParquetSource, open_source

REPO = Path(__file__).resolve().parents[1]
DATA = teacher_data(n=1200, d=4, seed=5)
FEATURES = ["a", "b", "c", "d"]
TABLE = np.column_stack([DATA.X, DATA.y])
#: schedule="full" and a fixed seed: the same rows in the same blocks give the same model.
FIT: dict[str, Any] = {"hidden_units": 5, "max_iter": 3, "tol": 0.0, "schedule": "full", "random_state": 2, "block_rows": 256}
ROW_GROUP = 256


def columns(table: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    return {name: table[:, j] for j, name in enumerate(names)}


def write_parquet(path: Path | str, data: dict[str, Any], row_group: int = ROW_GROUP) -> str:
    """A Parquet file (local or at an fsspec URL) of the given columns; returns its spec."""
    table = pa.table(data)
    if "://" in str(path):
        with fsspec.open(str(path), "wb") as handle:
            pq.write_table(table, handle, row_group_size=row_group)
    else:
        pq.write_table(table, path, row_group_size=row_group)
    return str(path)


def memory_url(name: str) -> str:
    return f"memory://{uuid.uuid4().hex[:8]}/{name}"


def assert_same_model(model: streamls.TwoLayerModel, reference: streamls.TwoLayerModel) -> None:
    np.testing.assert_allclose(model.W, reference.W, rtol=1e-8, atol=0)
    np.testing.assert_allclose(model.B, reference.B, rtol=1e-8, atol=0)
    np.testing.assert_allclose(model.predict(DATA.X), reference.predict(DATA.X), rtol=1e-8)


@pytest.fixture(scope="module")
def reference() -> streamls.TwoLayerModel:
    return streamls.fit(DATA.X, DATA.y, **FIT).model


@pytest.fixture(scope="module")
def named_model(tmp_path_factory: pytest.TempPathFactory) -> streamls.TwoLayerModel:
    """A model trained on a Parquet table with named columns (inputs a-d, target y)."""
    path = tmp_path_factory.mktemp("named") / "train.parquet"
    return streamls.fit(write_parquet(path, columns(TABLE, [*FEATURES, "y"])), target_cols="y", **FIT).model


# --- Parquet ---------------------------------------------------------------------------------


def parquet_directory(tmp: Path) -> str:
    """Three files of whole row groups (but the last), plus a marker file that is not data."""
    directory = tmp / "table"
    directory.mkdir()
    for i, (lo, hi) in enumerate([(0, 512), (512, 1024), (1024, 1200)]):
        write_parquet(directory / f"part-{i}.parquet", columns(TABLE[lo:hi], [*FEATURES, "y"]))
    (directory / "_SUCCESS").write_text("")
    return str(directory)


PARQUET_SPECS = {
    "file": lambda t: write_parquet(t / "d.parquet", {"id": [f"r{i}" for i in range(len(TABLE))], **columns(TABLE, [*FEATURES, "y"])}),
    "directory": parquet_directory,
    "memory://": lambda t: write_parquet(memory_url("d.parquet"), columns(TABLE, [*FEATURES, "y"])),
}


@pytest.mark.parametrize("kind", list(PARQUET_SPECS))
def test_parquet_trains_like_the_rows_in_memory(tmp_path: Path, reference, kind: str) -> None:
    spec = PARQUET_SPECS[kind](tmp_path)
    source = open_source(spec)
    # The string column "id" of the file is left out: a spec without columns reads the numeric ones.
    assert isinstance(source, ParquetSource) and source.column_names == (*FEATURES, "y")
    assert source.chunk_rows == ROW_GROUP
    by_index = streamls.fit(spec, **FIT)
    by_name = streamls.fit(spec, target_cols="y", **FIT)
    assert_same_model(by_index.model, reference)
    assert_same_model(by_name.model, reference)
    assert by_name.n_train == len(TABLE)


def test_parquet_columns_chosen_by_name_in_any_order(tmp_path: Path, reference) -> None:
    spec = write_parquet(tmp_path / "wide.parquet", {"y": DATA.y, "noise": np.zeros(len(TABLE)), **columns(DATA.X, FEATURES)})
    assert_same_model(streamls.fit(f"{spec}:a,b,c,d,y", **FIT).model, reference)
    assert_same_model(streamls.fit(f"{spec}:y,a,b,c,d", target_cols=0, **FIT).model, reference)
    separate = streamls.fit(f"{spec}:a,b,c,d", f"{spec}:y", **FIT).model
    # A one-column table as y is a 2-D target: the same network, predicting shape (n, 1).
    np.testing.assert_allclose(separate.W, reference.W, rtol=1e-8)
    assert separate.predict(DATA.X).shape == (len(TABLE), 1)


def test_estimator_fits_a_parquet_spec_as_the_arrays(tmp_path: Path) -> None:
    spec = write_parquet(tmp_path / "d.parquet", columns(TABLE, [*FEATURES, "y"]))
    settings = {key: FIT[key] for key in ("hidden_units", "max_iter", "tol", "schedule", "random_state", "block_rows")}
    on_arrays = StreamLSRegressor(**settings).fit(DATA.X, DATA.y)
    on_parquet = StreamLSRegressor(**settings).fit(spec)
    assert_same_model(on_parquet.model_, on_arrays.model_)
    np.testing.assert_allclose(on_parquet.predict(DATA.X), on_arrays.predict(DATA.X), rtol=1e-8)


def test_several_targets_by_name_and_index(tmp_path: Path) -> None:
    Y = np.column_stack([DATA.y, DATA.X[:, 0] * DATA.y])
    spec = write_parquet(tmp_path / "two.parquet", {**columns(DATA.X, FEATURES), "y": Y[:, 0], "y2": Y[:, 1]})
    expected = streamls.fit(DATA.X, Y[:, [1, 0]], **FIT).model
    for target_cols in (["y2", "y"], ["y2", 4], [-1, "y"]):
        model = streamls.fit(spec, target_cols=target_cols, **FIT).model
        assert_same_model(model, expected)


# --- CSV -------------------------------------------------------------------------------------

CSV_FILES = {
    "header": lambda t: write_csv(t / "d.csv", TABLE, [*FEATURES, "y"]),
    "no header": lambda t: write_csv(t / "d.csv", TABLE, None),
    "gzip": lambda t: write_csv(t / "d.csv.gz", TABLE, [*FEATURES, "y"]),
}


@pytest.mark.parametrize("kind", list(CSV_FILES))
def test_csv_trains_like_the_rows_in_memory(tmp_path: Path, reference, kind: str) -> None:
    spec = CSV_FILES[kind](tmp_path)
    source = open_source(spec)
    assert isinstance(source, CSVSource) and source.shape == TABLE.shape
    assert ("no numbers" in source.header_decision) == (kind != "no header")
    source.close()
    assert_same_model(streamls.fit(spec, **FIT).model, reference)
    assert_same_model(streamls.fit(spec, target_cols=4, **FIT).model, reference)
    if kind != "no header":
        assert_same_model(streamls.fit(spec, target_cols="y", **FIT).model, reference)
        assert_same_model(streamls.fit(f"{spec}:a,b,c,d,y", **FIT).model, reference)


def test_csv_missing_cells_read_as_nan_for_the_nan_policy(tmp_path: Path) -> None:
    lines = [",".join(FEATURES + ["y"])] + [",".join(f"{v:.17g}" for v in row) for row in TABLE]
    lines[1 + 300] = lines[1 + 300].split(",", 1)[0] + ",,3,4,5"  # row 300: column 1 empty
    lines[1 + 700] = "NA," + lines[1 + 700].split(",", 1)[1]  # row 700: column 0 is NA
    spec = str(tmp_path / "gaps.csv")
    Path(spec).write_text("\n".join(lines) + "\n")
    with pytest.raises(NonFiniteDataError, match=r"rows 256-511: row 300, column 1 \('b'\) holds nan"):
        streamls.fit(spec, **FIT)
    X = DATA.X.copy()
    X[300], X[700, 0] = [X[300, 0], np.nan, 3, 4], np.nan
    y = DATA.y.copy()
    y[300] = 5
    expected = streamls.fit(X, y, nan_policy="drop", **FIT)
    result = streamls.fit(spec, nan_policy="drop", **FIT)
    assert result.dropped_rows == expected.dropped_rows == 2
    assert_same_model(result.model, expected.model)


def test_csv_first_line_mixing_numbers_and_text_is_not_taken_as_a_header(tmp_path: Path) -> None:
    spec = tmp_path / "mixed.csv"
    spec.write_text("1,abc,3\n4,5,6\n7,8,9\n")
    with pytest.raises(data_tools.CSVFormatError, match="line 1: cannot tell whether this line is a header") as info:
        streamls.fit(str(spec), hidden_units=2, max_iter=1)
    message = str(info.value)
    assert "column 1 holds 'abc'" in message and "column(s) 0, 2 hold numbers" in message
    assert "header=True" in message and "header=False" in message
    # Said to be data, the row is kept and its bad cell reported, by line and column (from 0).
    with pytest.raises(data_tools.CSVFormatError, match=r"line 1: column 1 holds 'abc', not a number: '1,abc,3'"):
        CSVSource(spec, header=False).open()
    said_header = CSVSource(spec, header=True).open()
    assert said_header.column_names == ("1", "abc", "3") and said_header.n_rows == 2
    assert "as header=True says" in said_header.header_decision


def test_csv_header_decision_says_why(tmp_path: Path) -> None:
    numbers = CSVSource(write_csv(tmp_path / "n.csv", TABLE[:5], None)).open()
    assert numbers.header_decision == "line 1 holds only numbers, so it is the first data row (no header)"
    assert numbers.column_names is None and numbers.n_rows == 5


def test_bad_cell_names_line_and_column_counted_from_zero(tmp_path: Path) -> None:
    lines = [",".join(FEATURES + ["y"])] + [",".join(f"{v:.17g}" for v in row) for row in TABLE]
    lines[1 + 1000] = "1,2,3,x4,5"
    spec = tmp_path / "bad.csv"
    spec.write_text("\n".join(lines) + "\n")
    with pytest.raises(data_tools.CSVFormatError, match=r"bad\.csv: line 1002: column 3 \('d'\) holds 'x4', not a number") as info:
        streamls.fit(str(spec), target_cols=3, **FIT)  # column 3 is 'd', as target_cols counts
    assert info.value.line == 1002


def test_semicolon_csv_with_the_default_delimiter_suggests_the_delimiter(tmp_path: Path, reference) -> None:
    spec = write_csv(tmp_path / "semi.csv", TABLE, [*FEATURES, "y"], delimiter=";")
    with pytest.raises(data_tools.CSVFormatError, match=r"line 2: .*one column: is the delimiter ';'\? pass delimiter=';'"):
        streamls.fit(spec, **FIT)
    assert_same_model(streamls.fit(CSVSource(spec, delimiter=";"), **FIT).model, reference)


def test_data_tools_convert_names_columns_from_zero_too(tmp_path: Path) -> None:
    spec = tmp_path / "bad.csv"
    spec.write_text("a,b,c\n1,2,3\n4,x,6\n")
    with pytest.raises(data_tools.CSVFormatError, match=r"line 3: column 1 \('b'\) holds 'x'"):
        data_tools.convert(spec, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


# --- Dask ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Client:
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster, Client(cluster) as client:
        yield client


def test_dask_trains_on_a_parquet_directory_as_on_the_rows(tmp_path: Path, client: Client) -> None:
    spec = parquet_directory(tmp_path)
    on_rows = streamls.fit(TABLE, backend=DaskBackend(client=client), **FIT).model
    on_parquet = streamls.fit(spec, target_cols="y", backend=DaskBackend(client=client), **FIT).model
    assert_same_model(on_parquet, on_rows)


def test_dask_refuses_a_csv_and_names_the_conversion(tmp_path: Path, client: Client) -> None:
    spec = write_csv(tmp_path / "d.csv", TABLE, [*FEATURES, "y"])
    before = files_under(tmp_path)
    with pytest.raises(SourceFormatError) as info:
        streamls.fit(spec, backend=DaskBackend(client=client), **FIT)
    message = str(info.value)
    assert "d.csv" in message and "the Dask backend" in message and "no random row access" in message
    assert f"python -m data_tools convert {spec} {tmp_path / 'd.h5'}" in message
    assert files_under(tmp_path) == before


# --- names recorded in the model, used by predict and evaluate ---------------------------------


def test_model_records_column_names_and_the_file_keeps_them(tmp_path: Path, named_model) -> None:
    assert named_model.feature_names == tuple(FEATURES) and named_model.target_names == ("y",)
    named_model.save(tmp_path / "m.h5")
    loaded = streamls.load_model(tmp_path / "m.h5")
    assert loaded.feature_names == tuple(FEATURES) and loaded.target_names == ("y",)
    np.testing.assert_array_equal(loaded.standardizer.x_min, DATA.X.min(axis=0))
    np.testing.assert_array_equal(loaded.standardizer.x_max, DATA.X.max(axis=0))
    with pytest.warns(OutOfRangeWarning, match=r"column 1 \('b'\): 0 below .*column 3 \('d'\): 1 below"):
        loaded.predict(beyond_the_range())
    assert streamls.fit(DATA.X, DATA.y, **FIT).model.feature_names is None  # arrays have no names


def test_columns_of_a_data_tools_file_go_by_name(tmp_path: Path, reference) -> None:
    csv = write_csv(tmp_path / "in.csv", TABLE, [*FEATURES, "y"])
    whole = data_tools.convert(csv, tmp_path / "all.h5", dtype="float64", chunk_rows=ROW_GROUP)
    assert open_source(whole.x_spec).column_names == (*FEATURES, "y")
    assert_same_model(streamls.fit(whole.x_spec, target_cols="y", **FIT).model, reference)


def test_model_records_the_names_of_a_data_tools_file(tmp_path: Path, reference) -> None:
    csv = write_csv(tmp_path / "in.csv", TABLE, [*FEATURES, "y"])
    report = data_tools.convert(csv, tmp_path / "conv.zarr", target_cols=["y"], dtype="float64", chunk_rows=ROW_GROUP)
    model = streamls.fit(report.x_spec, report.y_spec, **FIT).model
    assert_same_model(model, reference)
    assert model.feature_names == tuple(FEATURES) and model.target_names == ("y",)


def test_predict_takes_a_table_holding_the_targets_by_name(tmp_path: Path, named_model) -> None:
    expected = named_model.predict(DATA.X)
    shuffled = write_parquet(tmp_path / "test.parquet", {"y": DATA.y, **columns(DATA.X[:, ::-1], FEATURES[::-1])})
    named_model.predict_to(shuffled, str(tmp_path / "p.csv"))
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1), expected)
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "y"
    csv = write_csv(tmp_path / "test.csv", TABLE, [*FEATURES, "y"])
    named_model.predict_to(csv, str(tmp_path / "p.parquet"))
    np.testing.assert_array_equal(pq.read_table(tmp_path / "p.parquet").column("y").to_numpy(), expected)


def test_scoring_dataset_picks_inputs_and_targets_by_name(tmp_path: Path, named_model) -> None:
    spec = write_parquet(tmp_path / "test.parquet", {"y": DATA.y, "d": DATA.X[:, 3], **columns(DATA.X[:, :3], FEATURES[:3])})
    dataset = named_model.scoring_dataset(spec)
    block = dataset.read_block(0, len(TABLE))
    np.testing.assert_array_equal(block.x, DATA.X)
    np.testing.assert_array_equal(block.y[:, 0], DATA.y)


def test_a_table_whose_names_differ_is_refused_and_nothing_written(tmp_path: Path, named_model) -> None:
    spec = write_parquet(tmp_path / "other.parquet", {**columns(DATA.X[:, :3], FEATURES[:3]), "e": DATA.X[:, 3]})
    before = files_under(tmp_path)
    for out in ("p.csv", "p.parquet", "p.h5"):
        with pytest.raises(ShapeMismatchError, match=r"missing \['d'\]; unexpected \['e'\]"):
            named_model.predict_to(spec, str(tmp_path / out))
    with pytest.raises(ShapeMismatchError, match=r"other\.parquet.*inputs \['a', 'b', 'c', 'd'\]"):
        named_model.scoring_dataset(spec)
    assert files_under(tmp_path) == before


# --- predictions to CSV, Parquet and fsspec URLs ----------------------------------------------


def read_csv(path: str) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def read_parquet(path: str) -> np.ndarray:
    with fsspec.open(path, "rb") as handle:
        table = pq.read_table(handle)
    return np.column_stack([c.to_numpy() for c in table.columns])


def read_zarr(path: str) -> np.ndarray:
    url, name = path.rsplit(":", 1)
    return np.asarray(zarr.open_group(url, mode="r")[name][...]).reshape(len(TABLE), -1)


OUTPUTS = {
    "preds.csv": read_csv,
    "preds.csv.gz": read_csv,
    "preds.parquet": read_parquet,
    "memory://preds.parquet": read_parquet,
    "memory://preds.zarr": read_zarr,
}


@pytest.mark.parametrize("out", list(OUTPUTS))
def test_predictions_to_csv_parquet_and_urls_equal_predict(tmp_path: Path, reference, out: str) -> None:
    target = out.replace("memory://", f"memory://{uuid.uuid4().hex[:8]}/") if "://" in out else str(tmp_path / out)
    written = reference.predict_to(DATA.X, target, block_rows=300)
    assert written == (f"{target}:predictions" if target.endswith(".zarr") else target)
    np.testing.assert_array_equal(OUTPUTS[out](written)[:, 0], reference.predict(DATA.X))
    with pytest.raises(OutputExistsError):
        reference.predict_to(DATA.X, target)
    reference.predict_to(DATA.X[::-1], target, overwrite=True)
    np.testing.assert_array_equal(OUTPUTS[out](written)[:, 0], reference.predict(DATA.X[::-1]))
    if "://" in target:
        fs, inner = fsspec.core.url_to_fs(target)
        parent = os.path.dirname(inner)
        assert [os.path.basename(p) for p in fs.ls(parent, detail=False)] == [os.path.basename(inner)]  # no temporary left
    else:
        assert sorted(files_under(tmp_path)) == [out]


def test_several_outputs_get_one_column_each(tmp_path: Path) -> None:
    Y = np.column_stack([DATA.y, -DATA.y])
    model = streamls.fit(DATA.X, Y, **FIT).model
    model.predict_to(DATA.X, str(tmp_path / "p.csv"))
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "prediction_0,prediction_1"
    np.testing.assert_array_equal(read_csv(str(tmp_path / "p.csv")), model.predict(DATA.X))


def test_a_failed_prediction_leaves_no_file(tmp_path: Path, reference) -> None:
    X = DATA.X.copy()
    X[900, 2] = np.nan  # in the fourth block of 256 rows
    before = files_under(tmp_path)
    for out in ("p.csv", "p.csv.gz", "p.parquet"):
        with pytest.raises(NonFiniteDataError, match="rows 768-1023"):
            reference.predict_to(X, str(tmp_path / out), block_rows=256)
    url = memory_url("p.parquet")
    with pytest.raises(NonFiniteDataError):
        reference.predict_to(X, url, block_rows=256)
    fs, inner = fsspec.core.url_to_fs(url)
    assert not fs.exists(os.path.dirname(inner)) or fs.ls(os.path.dirname(inner)) == []
    assert files_under(tmp_path) == before


def test_unknown_output_formats_are_named(tmp_path: Path, reference) -> None:
    with pytest.raises(SourceFormatError, match=r"\.h5/\.hdf5 \(HDF5\), \.zarr \(Zarr\), \.csv or \.csv\.gz \(CSV\), or \.parquet"):
        reference.predict_to(DATA.X, str(tmp_path / "preds.txt"))
    with pytest.raises(SourceFormatError, match="HDF5 output must be a local path"):
        reference.predict_to(DATA.X, "memory://preds.h5")
    assert files_under(tmp_path) == set()


# --- out-of-range warning ---------------------------------------------------------------------


def beyond_the_range() -> np.ndarray:
    """10 rows of which 3 leave the training range: two above the maximum of column 1, one below the minimum of column 3."""
    X = DATA.X[:10].copy()
    X[[1, 4], 1] = DATA.X[:, 1].max() + 1.0
    X[7, 3] = DATA.X[:, 3].min() - 1.0
    return X


def test_predicting_beyond_the_training_range_warns_once(tmp_path: Path, reference) -> None:
    X = beyond_the_range()
    with pytest.warns(OutOfRangeWarning) as record:
        reference.predict(X)
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("predict: 3 of 10 rows hold inputs outside the range of the training rows")
    assert f"column 1: 0 below the minimum {DATA.X[:, 1].min():.6g}, 2 above the maximum {DATA.X[:, 1].max():.6g}" in message
    assert "column 3: 1 below" in message and "column 0" not in message
    spec = write_parquet(tmp_path / "far.parquet", columns(np.vstack([DATA.X, X]), FEATURES))
    with pytest.warns(OutOfRangeWarning, match=r"far\.parquet: 3 of 1210 rows") as record:
        reference.predict_to(spec, str(tmp_path / "p.csv"), block_rows=256)
    assert len(record) == 1
    reference.predict(DATA.X)  # the training rows themselves: no warning (pytest turns one into an error)


def test_version_1_model_files_still_load_without_range_or_names(tmp_path: Path, reference) -> None:
    arrays = {"W": reference.W, "B": reference.B, **standardizer_arrays(reference.standardizer)}
    arrays.pop("x_min"), arrays.pop("x_max")
    meta = {"alpha": reference.alpha, "target_is_1d": True, "hyperparameters": {}, "history": [], "info": {}}
    write_record(tmp_path / "old.h5", MODEL_FORMAT, 1, arrays, meta)
    old = streamls.load_model(tmp_path / "old.h5")
    assert old.feature_names is None and old.standardizer.x_min is None
    far = DATA.X * 10
    with pytest.warns(OutOfRangeWarning):
        expected = reference.predict(far)
    np.testing.assert_array_equal(old.predict(far), expected)  # the same network, without a range to warn about


# --- bad input: package errors that name the file and what was wrong ---------------------------


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path) -> None:
    spec = write_parquet(tmp_path / "d.parquet", columns(TABLE, [*FEATURES, "y"]))
    code = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
        "import streamls\n"
        f"streamls.fit({spec!r}, hidden_units=2, max_iter=1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert "streamls.errors.SourceFormatError" in proc.stderr
    assert "Parquet needs pyarrow, which is not installed: pip install 'streamls[parquet]'" in proc.stderr


def put(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def zarr_group(tmp: Path) -> str:
    return write_zarr(str(tmp / "grp.zarr"), {"X": DATA.X, "y": DATA.y}, 100)["X"].rsplit(":", 1)[0]


BAD_SPECS = {
    "empty .npy": (lambda t: put(t / "empty.npy", b""), SourceFormatError,
                   ["empty.npy", "not a readable .npy file", "empty"]),
    "text named .npy": (lambda t: put(t / "junk.npy", b"1,2\n3,4\n"), SourceFormatError,
                        ["junk.npy", r"\\x93NUMPY", "Parquet"]),
    "Zarr group without array": (zarr_group, SourceFormatError, ["grp.zarr", "name the array as", r"\['X', 'y'\]"]),
    "unknown file": (lambda t: put(t / "data.bin", b"\x00" * 64), SourceFormatError,
                     ["data.bin", "not a format streamls reads", "HDF5", "Zarr", r"NumPy \(\.npy\)", "Parquet", "CSV"]),
    "plain directory": (lambda t: (t / "plain").mkdir() or str(t / "plain"), SourceFormatError,
                        ["plain", "not a Zarr store", "no .parquet files", "CSV"]),
    "directory of other files at a URL": (
        lambda t: fsspec.filesystem("memory").pipe(f"/{t.name}/x/notes.txt", b"hi") or f"memory://{t.name}/x",
        SourceFormatError, ["not a Zarr store", "Parquet"]),
    "missing Parquet file": (lambda t: str(t / "none.parquet"), SourceNotFoundError, ["none.parquet", "no such"]),
    "Parquet column missing": (
        lambda t: write_parquet(t / "d.parquet", columns(TABLE, [*FEATURES, "y"])) + ":a,zz", SourceFormatError,
        ["d.parquet", "no column named 'zz'", r"\['a', 'b', 'c', 'd', 'y'\]"]),
    "Parquet column of text": (
        lambda t: write_parquet(t / "d.parquet", {"a": DATA.X[:, 0], "id": ["x"] * len(TABLE)}) + ":a,id", SourceFormatError,
        ["d.parquet", "column 'id' has type string, not a number"]),
    "Parquet of text only": (
        lambda t: write_parquet(t / "t.parquet", {"id": ["x"] * 3}), SourceFormatError, ["t.parquet", "no numeric columns"]),
    "Parquet files that disagree": (
        lambda t: (write_parquet(t / "p-0.parquet", columns(TABLE, [*FEATURES, "y"])),
                   write_parquet(t / "p-1.parquet", columns(TABLE, ["a", "b", "c", "e", "y"])), str(t))[-1],
        SourceFormatError, ["p-1.parquet", "no column named 'd'"]),
    "damaged Parquet file": (lambda t: put(t / "bad.parquet", b"PAR1 not really"),
                             SourceFormatError, ["bad.parquet", "not a readable Parquet file"]),
    "CSV without data rows": (lambda t: put(t / "h.csv", b"a,b\n"), data_tools.CSVFormatError,
                              ["h.csv", "line 2", "no data rows after the header"]),
    "CSV column missing": (lambda t: write_csv(t / "d.csv", TABLE, [*FEATURES, "y"]) + ":a,zz", SourceFormatError,
                           ["d.csv", "no column named 'zz'"]),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_specs_raise_a_package_error_naming_file_and_problem(tmp_path: Path, case: str) -> None:
    make, error, patterns = BAD_SPECS[case]
    spec = make(tmp_path)
    before = files_under(tmp_path)
    with pytest.raises(error) as info:
        streamls.fit(spec, hidden_units=2, max_iter=1)
    assert isinstance(info.value, StreamLSError)
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    for internal in ("allow_pickle", "StorePath", "No group found"):
        assert internal not in message
    assert files_under(tmp_path) == before


def test_target_names_need_a_source_with_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no column names"):
        streamls.fit(TABLE, target_cols="y", **FIT)
    spec = write_parquet(tmp_path / "d.parquet", columns(TABLE, [*FEATURES, "price"]))
    with pytest.raises(ConfigError, match=r"no column named 'prise'.*did you mean 'price'\?"):
        streamls.fit(spec, target_cols="prise", **FIT)


# --- command line and packaging -----------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "streamls", *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_command_line_trains_on_csv_and_predicts_and_evaluates_parquet_by_name(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", TABLE, [*FEATURES, "y"])
    test = write_parquet(tmp_path / "test.parquet", {"y": DATA.y, **columns(DATA.X[:, ::-1], FEATURES[::-1])})
    cli("train", train, "--target-cols", "y", "--out-dir", "run", "--hidden-units", "5", "--max-iter", "3", "--tol", "0",
        "--schedule", "full", "--random-state", "2", "--block-rows", "256", "--threads", "1", "--quiet", cwd=tmp_path)
    model = streamls.load_model(tmp_path / "run" / "model.h5")
    assert model.feature_names == tuple(FEATURES) and model.target_names == ("y",)
    cli("predict", "run/model.h5", test, "--out", "preds.csv", cwd=tmp_path)
    np.testing.assert_array_equal(read_csv(str(tmp_path / "preds.csv"))[:, 0], model.predict(DATA.X))
    proc = cli("evaluate", "run/model.h5", test, "--json", cwd=tmp_path)
    mse = np.mean((model.predict(DATA.X) - DATA.y) ** 2)
    np.testing.assert_allclose(json.loads(proc.stdout)["mse"], [mse], rtol=1e-10)


def test_data_tools_console_script_and_pyarrow_extras_are_declared() -> None:
    with open(REPO / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    module, function = project["scripts"]["data-tools"].split(":")
    assert getattr(importlib.import_module(module), function) is data_tools.cli.main
    extras = project["optional-dependencies"]
    assert any(r.startswith("pyarrow") for r in extras["test"]) and any(r.startswith("pyarrow") for r in extras["parquet"])
