"""One name per concept: ``random_state``, ``target_cols`` and ``block_rows`` everywhere, earlier names as aliases.

``block_rows`` is the rows per block read and ``chunk_rows`` only a source's stored chunk;
``fit(chunk_rows=)`` still works with a DeprecationWarning, and the command line keeps
``--seed``, ``--target-col`` and ``--chunk-rows`` (and those job keys) as aliases. Every
``parameter_error(owner, name, ...)`` names a parameter its owner has. Command lines run
as subprocesses, as users run them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import teacher_data, write_csv, write_hdf5

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import streamls
from streamls.errors import ConfigError
from streamls.sources import Dataset

REPO = Path(__file__).resolve().parents[1]
DATA = teacher_data(n=600, d=3, seed=8)
FIT = {"hidden_units": 3, "max_iter": 2, "tol": 0.0, "random_state": 0, "schedule": "full"}


def run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` with pipes, as a batch job runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


# --- block_rows and chunk_rows in Python --------------------------------------------------------


def test_fit_takes_block_rows_and_its_deprecated_name() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the current name does not warn
        current = streamls.fit(DATA.X, DATA.y, block_rows=128, **FIT)
    with pytest.warns(DeprecationWarning, match=r"fit\(chunk_rows=\.\.\.\) is deprecated; pass block_rows=") as record:
        earlier = streamls.fit(DATA.X, DATA.y, chunk_rows=128, **FIT)
    assert record[0].filename == __file__  # the warning points at the caller's line
    np.testing.assert_array_equal(earlier.model.W, current.model.W)
    with pytest.raises(ConfigError, match="fit: pass block_rows only; chunk_rows is its deprecated name"):
        streamls.fit(DATA.X, DATA.y, block_rows=128, chunk_rows=128, **FIT)


def test_fit_documents_both_names() -> None:
    parameters = inspect.signature(streamls.fit).parameters
    assert parameters["block_rows"].default is None and parameters["chunk_rows"].default is None
    doc = streamls.fit.__doc__ or ""
    assert "block_rows : int, optional\n        Rows per block read" in doc
    assert "chunk_rows : int, optional\n        Deprecated name of ``block_rows``" in doc


def test_dataset_names_its_own_parameter() -> None:
    with pytest.raises(ConfigError) as info:
        Dataset(DATA.X, DATA.y, block_rows=0)
    assert str(info.value) == "The 'block_rows' parameter of Dataset must be an int >= 1 or None. Got 0 instead."


def parameter_error_calls() -> list[tuple[str, str, str, int]]:
    """``(module, owner, name, line)`` of every ``parameter_error`` call whose owner and name are literals."""
    calls = []
    for path in [*(REPO / "streamls").rglob("*.py"), *(REPO / "data_tools").rglob("*.py")]:
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "parameter_error":
                owner, name = node.args[0], node.args[1]
                if isinstance(owner, ast.Constant) and isinstance(name, ast.Constant):
                    calls.append((module, owner.value, name.value, node.lineno))
    return calls


def test_every_parameter_error_names_a_parameter_of_its_owner() -> None:
    calls = parameter_error_calls()
    assert len(calls) > 15  # the scan found the calls
    for module, owner, name, line in calls:
        # The owner is a function or class of the module raising the error, or of the package's top level.
        holders = [importlib.import_module(module), streamls, importlib.import_module("data_tools")]
        target = next((getattr(h, owner) for h in holders if callable(getattr(h, owner, None))), None)
        assert target is not None, f"{module}:{line}: no function or class {owner!r}"
        assert name in inspect.signature(target).parameters, f"{module}:{line}: {owner} has no parameter {name!r}"


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def model_and_table(tmp_path: Path) -> tuple[str, str]:
    """A model file and a table (inputs, then the target) in HDF5, stored in chunks of 100 rows."""
    model = str(tmp_path / "model.h5")
    streamls.fit(DATA.X, DATA.y, **FIT).model.save(model)
    table = write_hdf5(tmp_path, {"/T": np.column_stack([DATA.y, DATA.X])}, chunk_rows=100, name="table")["/T"]
    return model, table


def test_evaluate_takes_target_cols_and_its_earlier_name(tmp_path: Path, model_and_table: tuple[str, str]) -> None:
    model, table = model_and_table
    results = []
    for option in ("--target-cols", "--target-col"):
        proc = run("streamls", "evaluate", model, table, option, "0", "--block-rows", "200", "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads(proc.stdout))
    assert results[0] == results[1] and results[0]["n"] == 600


def test_help_names_the_canonical_flags_first(tmp_path: Path) -> None:
    for command, pairs in {
        "train": [("--random-state", "--seed"), ("--target-cols", "--target-col"), ("--block-rows", "--chunk-rows")],
        "evaluate": [("--target-cols", "--target-col"), ("--block-rows", "--chunk-rows")],
        "predict": [("--block-rows", "--chunk-rows")],
        "demo": [("--random-state", "--seed")],
    }.items():
        proc = run("streamls", command, "--help", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        for canonical, alias in pairs:
            assert f"{canonical} " in proc.stdout and f", {alias} " in proc.stdout, (command, canonical)


def train_args(table: str) -> list[str]:
    return [table, "--target-cols", "0", "--hidden-units", "3", "--max-iter", "2", "--tol", "0", "--threads", "1", "-q"]


def test_train_records_the_canonical_names_whichever_were_given(tmp_path: Path, model_and_table: tuple[str, str]) -> None:
    _, table = model_and_table
    (tmp_path / "old.toml").write_text("seed = 4\ntarget_col = 0\nchunk_rows = 200\n")
    runs = {
        "flags": ["--random-state", "4", "--block-rows", "200"],
        "aliases": ["--seed", "4", "--chunk-rows", "200"],
        "old job file": ["--config", "old.toml"],
    }
    configs = []
    for name, extra in runs.items():
        run_dir = tmp_path / name.replace(" ", "_")
        proc = run("streamls", "train", *train_args(table), *extra, "--out-dir", str(run_dir), cwd=tmp_path)
        assert proc.returncode == 0, (name, proc.stderr)
        configs.append(tomllib.loads((run_dir / "config.toml").read_text()))
    for config in configs:
        assert (config["random_state"], config["target_cols"], config["block_rows"]) == (4, [0], 200)
        assert not {"seed", "target_col", "chunk_rows"} & set(config)
    assert configs[0] == {**configs[1], "out_dir": configs[0]["out_dir"]}


def test_a_run_directory_with_the_earlier_names_resumes(tmp_path: Path, model_and_table: tuple[str, str]) -> None:
    _, table = model_and_table
    run_dir = tmp_path / "run"
    proc = run("streamls", "train", *train_args(table), "--random-state", "4", "--out-dir", str(run_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = run_dir / "config.toml"
    old_names = {"random_state = ": "seed = ", "target_cols = ": "target_col = ", "block_rows = ": "chunk_rows = "}
    text = config.read_text()
    for new, old in old_names.items():
        text = text.replace(new, old)
    config.write_text(text)  # as a run directory of an earlier version records it
    done = run("streamls", "train", "--resume", str(run_dir), "--seed", "4", cwd=tmp_path)
    assert done.returncode == 0 and "has finished already" in done.stderr, done.stderr
    changed = run("streamls", "train", "--resume", str(run_dir), "--seed", "5", cwd=tmp_path)
    assert changed.returncode == 2
    assert "these settings differ: random_state (stored 4, given 5)" in changed.stderr


def test_a_job_file_giving_both_names_is_refused(tmp_path: Path, model_and_table: tuple[str, str]) -> None:
    _, table = model_and_table
    (tmp_path / "job.toml").write_text("random_state = 1\nseed = 1\n")
    proc = run("streamls", "train", *train_args(table), "--config", "job.toml", "--out-dir", "run", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "job.toml: keys 'random_state' and 'seed' (its earlier name) are the same setting; keep one" in proc.stderr
    assert not (tmp_path / "run").exists()
    (tmp_path / "typo.toml").write_text("sed = 1\n")
    proc = run("streamls", "train", *train_args(table), "--config", "typo.toml", "--out-dir", "run", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown key 'sed'; did you mean 'seed'?" in proc.stderr


def test_data_tools_convert_takes_target_cols_and_its_earlier_name(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", np.column_stack([DATA.X, DATA.y]), ["a", "b", "c", "t"])
    outputs = []
    for option in ("--target-cols", "--target-col"):
        out = tmp_path / f"{option.strip('-')}.h5"
        proc = run("data_tools", "convert", src, str(out), option, "t", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outputs.append(json.loads(proc.stdout))
    assert outputs[0]["target_names"] == outputs[1]["target_names"] == ["t"]
