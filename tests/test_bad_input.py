"""Bad input fails early with a StreamLSError subclass that says what is wrong, and writes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import zarr
from conftest import files_under, teacher_data, write_hdf5, write_npy, write_zarr

import streamls
from streamls.errors import (
    ConfigError,
    NonFiniteDataError,
    ShapeMismatchError,
    SourceFormatError,
    SourceNotFoundError,
    StreamLSError,
)

DATA = teacher_data(n=600, d=3, seed=21)
FIT = {"hidden_units": 4, "max_iter": 2, "random_state": 0}


@pytest.fixture(scope="module")
def model() -> streamls.TwoLayerModel:
    return streamls.fit(DATA.X, DATA.y, **FIT).model


def with_nan_in_middle_block(tmp_path: Path, value: float, where: str) -> tuple[str, str]:
    """HDF5 X and y with 100-row chunks and one bad value at row 450 of X or y."""
    X, y = DATA.X.copy(), DATA.y.copy()
    if where == "X":
        X[450, 2] = value
    else:
        y[450] = value
    specs = write_hdf5(tmp_path, {"/X": X, "/y": y}, chunk_rows=100, name="bad")
    return specs["/X"], specs["/y"]


def text_file(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text("1,2,3\n4,5,6\n")
    return str(path)


# Each case: (tmp_path) -> (X, y, fit options); the expected error class; regexes the message must hold.
CASES: dict[str, tuple[Callable[[Path], tuple[Any, Any, dict]], type[StreamLSError], list[str]]] = {
    "row-count mismatch": (
        lambda t: (DATA.X, DATA.y[:-1], {}),
        ShapeMismatchError,
        ["row counts differ", "600 rows", "599"],
    ),
    "row-count mismatch in files": (
        lambda t: (write_npy(t, DATA.X, "x"), write_hdf5(t, {"/y": DATA.y[:500]}, 100, "y")["/y"], {}),
        ShapeMismatchError,
        [r"x\.npy", r"y\.h5:/y", "600", "500"],
    ),
    "string dtype": (
        lambda t: (DATA.X.astype(str), DATA.y, {}),
        SourceFormatError,
        ["dtype", "<U"],
    ),
    "string dtype in HDF5": (
        lambda t: (write_hdf5(t, {"/X": DATA.X.astype("S8")}, None, "s")["/X"], DATA.y, {}),
        SourceFormatError,
        [r"s\.h5:/X", "dtype"],
    ),
    "3-D array": (
        lambda t: (DATA.X.reshape(600, 3, 1), DATA.y, {}),
        SourceFormatError,
        ["3-D", r"\(600, 3, 1\)"],
    ),
    "3-D Zarr array": (
        lambda t: (write_zarr(str(t / "c.zarr"), {"X": DATA.X.reshape(600, 1, 3)}, 100)["X"], DATA.y, {}),
        SourceFormatError,
        [r"c\.zarr:X", "3-D"],
    ),
    "zero rows": (
        lambda t: (np.empty((0, 3)), np.empty(0), {}),
        SourceFormatError,
        ["0 rows"],
    ),
    "zero rows in a file": (
        lambda t: (write_npy(t, np.empty((0, 3)), "empty"), np.empty(0), {}),
        SourceFormatError,
        [r"empty\.npy", "0 rows"],
    ),
    "NaN in a middle block of X": (
        lambda t: (*with_nan_in_middle_block(t, np.nan, "X"), {"block_rows": 100}),
        NonFiniteDataError,
        [r"bad\.h5:/X", "rows 400-499", "row 450", "column 2", "nan", "nan_policy"],
    ),
    "Inf in y": (
        lambda t: (*with_nan_in_middle_block(t, np.inf, "y"), {"block_rows": 100}),
        NonFiniteDataError,
        [r"bad\.h5:/y", "rows 400-499", "row 450", "inf"],
    ),
    "Inf in a target column of a table": (
        lambda t: (
            np.column_stack([DATA.X, np.where(np.arange(600) == 599, -np.inf, DATA.y)]),
            None,
            {"block_rows": 64},
        ),
        NonFiniteDataError,
        ["target columns", "rows 576-599", "row 599", "-inf"],
    ),
    "missing HDF5 dataset path": (
        lambda t: (write_hdf5(t, {"/data/X": DATA.X}, None, "f")["/data/X"].replace("/data/X", "/data/Z"), DATA.y, {}),
        SourceNotFoundError,
        [r"f\.h5", "/data/Z", "/data/X"],
    ),
    "missing Zarr array": (
        lambda t: (write_zarr(str(t / "g.zarr"), {"X": DATA.X}, 100)["X"][:-1] + "Q", DATA.y, {}),
        SourceNotFoundError,
        [r"g\.zarr", "'Q'", "X"],
    ),
    "missing file": (
        lambda t: (str(t / "nowhere.h5") + ":/X", DATA.y, {}),
        SourceNotFoundError,
        [r"nowhere\.h5", "no such"],
    ),
    "text file passed as data": (
        lambda t: (text_file(t, "data.txt"), DATA.y, {}),
        SourceFormatError,
        [r"data\.txt", "not a format streamls reads", "HDF5", "Zarr", r"\.npy", "Parquet", "CSV"],
    ),
    "text file named .npy": (
        lambda t: (text_file(t, "data.npy"), DATA.y, {}),
        SourceFormatError,
        [r"data\.npy", "not a readable .npy"],
    ),
    "text file named .h5": (
        lambda t: (text_file(t, "data.h5") + ":/X", DATA.y, {}),
        SourceFormatError,
        [r"data\.h5", "not an HDF5 file"],
    ),
    "directory that is not a Zarr store": (
        lambda t: (str((t / "plain").mkdir() or t / "plain"), DATA.y, {}),
        SourceFormatError,
        ["plain", "not a Zarr store"],
    ),
    "hidden_units=0": (lambda t: (DATA.X, DATA.y, {"hidden_units": 0}), ConfigError, ["'hidden_units'", "Got 0"]),
    "negative l2": (lambda t: (DATA.X, DATA.y, {"l2": -1.0}), ConfigError, ["'l2'", r"\[0, inf\)", "Got -1.0"]),
    "alpha=1.5": (lambda t: (DATA.X, DATA.y, {"alpha": 1.5}), ConfigError, ["'alpha'", r"\[0, 1\)", "Got 1.5"]),
    "alpha=1": (lambda t: (DATA.X, DATA.y, {"alpha": 1.0}), ConfigError, ["'alpha'"]),
    "NaN l2": (lambda t: (DATA.X, DATA.y, {"l2": float("nan")}), ConfigError, ["'l2'"]),
    "bool hidden_units": (lambda t: (DATA.X, DATA.y, {"hidden_units": True}), ConfigError, ["'hidden_units'"]),
    "validation_fraction=1": (
        lambda t: (DATA.X, DATA.y, {"validation_fraction": 1.0}),
        ConfigError,
        ["'validation_fraction'"],
    ),
    "unknown nan_policy": (lambda t: (DATA.X, DATA.y, {"nan_policy": "ignore"}), ConfigError, ["'nan_policy'"]),
    "block_rows=0": (
        lambda t: (DATA.X, DATA.y, {"block_rows": 0}),
        ConfigError,
        ["The 'block_rows' parameter of Dataset must be an int >= 1 or None. Got 0 instead."],
    ),
    "unknown backend": (lambda t: (DATA.X, DATA.y, {"backend": "gpu"}), ConfigError, ["'backend'", "gpu"]),
    "target_cols out of range": (
        lambda t: (np.column_stack([DATA.X, DATA.y]), None, {"target_cols": 4}),
        ConfigError,
        ["'target_cols'"],
    ),
    "target_cols with y": (lambda t: (DATA.X, DATA.y, {"target_cols": 0}), ConfigError, ["target_cols"]),
    "one-column table": (lambda t: (DATA.X[:, :1], None, {}), SourceFormatError, ["at least 2 columns"]),
    "no training rows left": (
        lambda t: (np.full((5, 2), np.nan), np.zeros(5), {"nan_policy": "drop"}),
        SourceFormatError,
        ["no training rows", "dropping 5 rows"],
    ),
}


#: Cases whose X alone is bad, so that predicting from it must fail too.
BAD_INPUTS_FOR_PREDICTION = {
    "string dtype",
    "string dtype in HDF5",
    "3-D array",
    "3-D Zarr array",
    "NaN in a middle block of X",
    "missing HDF5 dataset path",
    "missing Zarr array",
    "missing file",
    "text file passed as data",
    "text file named .npy",
    "text file named .h5",
    "directory that is not a Zarr store",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_a_clear_streamls_error_and_writes_nothing(tmp_path: Path, model, case: str) -> None:
    make, error, patterns = CASES[case]
    X, y, options = make(tmp_path)
    before = files_under(tmp_path)
    with pytest.raises(error) as info:
        streamls.fit(X, y, **{**FIT, **options})
    assert isinstance(info.value, StreamLSError)
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    assert files_under(tmp_path) == before
    # The same bad inputs given to a streamed prediction leave no output behind either.
    if case in BAD_INPUTS_FOR_PREDICTION:
        with pytest.raises(StreamLSError):
            model.predict_to(X, str(tmp_path / "preds.h5"), block_rows=options.get("block_rows"))
        with pytest.raises(StreamLSError):
            model.predict_to(X, str(tmp_path / "preds.zarr"), block_rows=options.get("block_rows"))
        assert files_under(tmp_path) == before


def test_nan_policy_drop_skips_rows_instead(tmp_path: Path) -> None:
    X, y = with_nan_in_middle_block(tmp_path, np.nan, "X")
    result = streamls.fit(X, y, nan_policy="drop", block_rows=100, **FIT)
    assert result.dropped_rows == 1 and result.n_train == 599


def test_zarr_group_without_array_name(tmp_path: Path) -> None:
    store = str(tmp_path / "grp.zarr")
    zarr.open_group(store, mode="w").create_array("X", shape=(10, 2), dtype="f8")
    with pytest.raises(SourceFormatError, match="name the array"):
        streamls.fit(store, None)


def test_hdf5_file_with_several_datasets_needs_a_path(tmp_path: Path) -> None:
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as handle:
        handle["A"] = DATA.X
        handle["B"] = DATA.y
    with pytest.raises(SourceNotFoundError, match="name the dataset"):
        streamls.fit(str(path), DATA.y)


def test_errors_are_also_builtin_exceptions() -> None:
    with pytest.raises(ValueError):
        streamls.fit(DATA.X, DATA.y, hidden_units=0)
    with pytest.raises(FileNotFoundError):
        streamls.fit("/nonexistent/dir/x.npy", DATA.y)
