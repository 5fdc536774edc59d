"""Model files (HDF5 and Zarr): exact round trips, damage detection, streamed predictions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from conftest import files_under, teacher_data

import streamls
from streamls.errors import ModelFileError, NonFiniteDataError, OutputExistsError, ShapeMismatchError, SourceFormatError
from streamls.sources import open_source

DATA = teacher_data(n=1200, d=4, k=1, seed=11)
MULTI = teacher_data(n=800, d=3, k=2, seed=12)
SUFFIXES = (".h5", ".zarr")


@pytest.fixture(scope="module")
def model() -> streamls.TwoLayerModel:
    return streamls.fit(
        DATA.X, DATA.y, hidden_units=6, alpha=0.1, max_iter=4, random_state=0, validation_fraction=0.1
    ).model


@pytest.fixture(scope="module")
def multi_model() -> streamls.TwoLayerModel:
    return streamls.fit(MULTI.X, MULTI.y, hidden_units=5, max_iter=3, random_state=0).model


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_save_load_predict_is_exact(tmp_path: Path, model, multi_model, suffix: str) -> None:
    for which, data in ((model, DATA), (multi_model, MULTI)):
        path = tmp_path / f"m{which.n_targets}{suffix}"
        which.save(path)
        loaded = streamls.load_model(path)
        np.testing.assert_array_equal(loaded.predict(data.X), which.predict(data.X))
        np.testing.assert_array_equal(loaded.W, which.W)
        np.testing.assert_array_equal(loaded.B, which.B)
        assert loaded.alpha == which.alpha and loaded.target_is_1d == which.target_is_1d
        assert loaded.hyperparameters == which.hyperparameters
        assert loaded.summary == which.summary
        # The history survives (NaN losses of iteration 0 included).
        assert json.dumps(loaded.history) == json.dumps(which.history)
    assert streamls.load_model(tmp_path / f"m1{suffix}").predict(DATA.X).shape == (1200,)
    assert streamls.load_model(tmp_path / f"m2{suffix}").predict(MULTI.X).shape == (800, 2)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_save_refuses_to_overwrite_when_asked(tmp_path: Path, model, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    model.save(path)
    before = files_under(tmp_path)
    with pytest.raises(OutputExistsError, match="exists"):
        model.save(path, overwrite=False)
    assert files_under(tmp_path) == before
    model.save(path)  # the default replaces it
    assert streamls.load_model(path).W.shape == model.W.shape


def test_truncated_hdf5_model_fails_cleanly(tmp_path: Path, model) -> None:
    path = tmp_path / "m.h5"
    model.save(path)
    data = path.read_bytes()
    for keep in (len(data) // 2, 1000, 0):
        path.write_bytes(data[:keep])
        with pytest.raises(ModelFileError, match="m.h5"):
            streamls.load_model(path)


def test_damaged_zarr_model_fails_cleanly(tmp_path: Path, model) -> None:
    path = tmp_path / "m.zarr"
    model.save(path)
    chunk = next(p for p in (path / "W").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[:10])  # a truncated chunk
    with pytest.raises(ModelFileError):
        streamls.load_model(path)
    model.save(path)
    chunk.unlink()  # a missing chunk reads as fill values: the checksum catches it
    with pytest.raises(ModelFileError, match="checksum"):
        streamls.load_model(path)
    model.save(path)
    (path / "zarr.json").write_text("{ truncated")
    with pytest.raises(ModelFileError):
        streamls.load_model(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_tampered_weight_fails_the_checksum(tmp_path: Path, model, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    model.save(path)
    if suffix == ".h5":
        with h5py.File(path, "r+") as handle:
            handle["W"][0, 0] += 1e-9
    else:
        group = zarr.open_group(str(path), mode="r+")
        group["W"][0, 0] = group["W"][0, 0] + 1e-9
    with pytest.raises(ModelFileError, match="checksum"):
        streamls.load_model(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_tampered_metadata_fails_the_checksum(tmp_path: Path, model, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    model.save(path)
    meta = model_metadata(path, suffix).replace(b'"alpha": 0.1', b'"alpha": 0.2')
    assert b'"alpha": 0.2' in meta
    if suffix == ".h5":
        with h5py.File(path, "r+") as handle:
            handle["metadata"][...] = np.frombuffer(meta, dtype=np.uint8)
    else:
        zarr.open_group(str(path), mode="r+")["metadata"][...] = np.frombuffer(meta, dtype=np.uint8)
    with pytest.raises(ModelFileError, match="checksum"):
        streamls.load_model(path)


def model_metadata(path: Path, suffix: str) -> bytes:
    if suffix == ".h5":
        with h5py.File(path, "r") as handle:
            return handle["metadata"][...].tobytes()
    return np.asarray(zarr.open_group(str(path), mode="r")["metadata"][...]).tobytes()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_other_format_version_fails(tmp_path: Path, model, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    model.save(path)
    if suffix == ".h5":
        with h5py.File(path, "r+") as handle:
            handle.attrs["format_version"] = 99
    else:
        zarr.open_group(str(path), mode="r+").attrs["format_version"] = 99
    with pytest.raises(ModelFileError, match="version 99"):
        streamls.load_model(path)


def test_not_a_model_file_fails(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model file"):
        streamls.load_model(tmp_path / "missing.h5")
    data = tmp_path / "data.h5"
    with h5py.File(data, "w") as handle:
        handle["X"] = np.zeros((3, 2))
    with pytest.raises(ModelFileError, match="not a streamls model"):
        streamls.load_model(data)
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(ModelFileError):
        streamls.load_model(text)


@pytest.mark.parametrize("out", ["preds.h5:/yhat", "preds.zarr:yhat", "preds.h5", "preds.zarr"])
@pytest.mark.parametrize("kind", ["hdf5", "zarr", "npy"])
def test_predict_to_streams_the_same_predictions(tmp_path: Path, files, model, kind: str, out: str) -> None:
    specs = files(kind, {"X": DATA.X}, chunk_rows=100)
    written = model.predict_to(specs["X"], str(tmp_path / out), block_rows=250)
    expected_name = out.split(":")[1] if ":" in out else "predictions"
    assert written.endswith(expected_name)
    found = open_source(written)
    assert found.shape == (1200,)
    np.testing.assert_allclose(found.read(0, 1200)[:, 0], model.predict(DATA.X), rtol=1e-13, atol=1e-13)
    if kind != "npy":
        assert found.chunk_rows == 100  # the output keeps the input's row chunking
    assert files_under(tmp_path) >= {out.split(":")[0]}
    assert not [p for p in files_under(tmp_path) if ".tmp-" in p]


def test_predict_to_multi_output(tmp_path: Path, multi_model) -> None:
    written = multi_model.predict_to(MULTI.X, str(tmp_path / "p.zarr:y"))
    np.testing.assert_allclose(open_source(written).read(0, 800), multi_model.predict(MULTI.X), rtol=1e-13, atol=1e-13)


def test_predict_to_failure_leaves_nothing(tmp_path: Path, files, model) -> None:
    X = DATA.X.copy()
    X[777, 1] = np.nan  # in a middle block
    specs = files("hdf5", {"X": X}, chunk_rows=100)
    before = files_under(tmp_path)
    for out in ("bad.h5:/yhat", "bad.zarr:yhat"):
        with pytest.raises(NonFiniteDataError, match="rows 700-799"):
            model.predict_to(specs["X"], str(tmp_path / out), block_rows=100)
    with pytest.raises(ShapeMismatchError, match="4 input columns"):
        model.predict_to(DATA.X[:, :3], str(tmp_path / "bad.h5"))
    with pytest.raises(SourceFormatError, match="must end in"):
        model.predict_to(DATA.X, str(tmp_path / "bad.txt"))
    assert files_under(tmp_path) == before


def test_predict_to_refuses_an_existing_output(tmp_path: Path, model) -> None:
    target = tmp_path / "p.h5"
    model.predict_to(DATA.X, str(target))
    stamp = target.read_bytes()
    with pytest.raises(OutputExistsError, match="exists"):
        model.predict_to(DATA.X[:10], str(target))
    assert target.read_bytes() == stamp
    model.predict_to(DATA.X[:10], str(target), overwrite=True)
    assert open_source(str(target)).n_rows == 10


def test_predict_rejects_wrong_shapes(model) -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(n, 4\)"):
        model.predict(DATA.X[:, :3])
    with pytest.raises(streamls.StreamLSError):
        model.predict(np.zeros((2, 2, 4)))


def test_copied_zarr_model_still_loads(tmp_path: Path, model) -> None:
    model.save(tmp_path / "a.zarr")
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    np.testing.assert_array_equal(streamls.load_model(tmp_path / "b.zarr").predict(DATA.X), model.predict(DATA.X))
