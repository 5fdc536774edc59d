"""Messages of the command lines name their flags, and say what they did instead of doing it silently.

Each case runs ``streamls`` or ``python -m data_tools`` as a subprocess on real files under
tmp_path and checks the exit code, the message and that no file was left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import files_under, teacher_data, write_hdf5

import streamls
from streamls.cli.messages import cli_text
from streamls.errors import OutOfRangeWarning

REPO = Path(__file__).resolve().parents[1]
DATA = teacher_data(n=600, d=3, seed=5)


def run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` with pipes, as a batch job runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single error line of a failed command (no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "error:" in line]
    return line


@pytest.fixture
def model_and_data(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A model file and HDF5 data of stored chunks of 100 rows."""
    specs = write_hdf5(tmp_path, {"/X": DATA.X, "/y": DATA.y}, chunk_rows=100, name="data")
    model = str(tmp_path / "model.h5")
    streamls.fit(DATA.X, DATA.y, hidden_units=4, max_iter=2, random_state=0).model.save(model)
    return model, specs


def test_predict_onto_an_existing_file_names_the_flag(tmp_path: Path, model_and_data: tuple[str, dict[str, str]]) -> None:
    model, specs = model_and_data
    (tmp_path / "preds.h5").write_bytes(b"earlier predictions")
    before = files_under(tmp_path)
    proc = run("streamls", "predict", model, specs["/X"], "--out", "preds.h5:/yhat", cwd=tmp_path)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "preds.h5: exists; choose another path or pass --overwrite" in line and "overwrite=True" not in line
    assert files_under(tmp_path) == before and (tmp_path / "preds.h5").read_bytes() == b"earlier predictions"


@pytest.mark.parametrize("command", ["convert", "split"])
def test_data_tools_onto_an_existing_file_names_the_flag(tmp_path: Path, command: str) -> None:
    (tmp_path / "in.csv").write_text("1,2,3\n4,5,6\n")
    specs = write_hdf5(tmp_path, {"/X": DATA.X}, chunk_rows=100, name="in")
    args = ["in.csv", "out.h5"] if command == "convert" else [specs["/X"].split(":")[0], "parts"]
    existing = tmp_path / ("out.h5" if command == "convert" else "parts/train.h5")
    existing.parent.mkdir(exist_ok=True)
    existing.write_bytes(b"earlier output")
    before = files_under(tmp_path)
    proc = run("data_tools", command, *args, cwd=tmp_path)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert line.startswith(f"data_tools {command}: error: ") and line.endswith("exists; choose another path or pass --overwrite")
    assert files_under(tmp_path) == before and existing.read_bytes() == b"earlier output"


def test_evaluate_nan_names_the_nan_policy_flag(tmp_path: Path, model_and_data: tuple[str, dict[str, str]]) -> None:
    model, _ = model_and_data
    X = DATA.X.copy()
    X[250, 1] = np.nan
    specs = write_hdf5(tmp_path, {"/X": X, "/y": DATA.y}, chunk_rows=100, name="nan")
    before = files_under(tmp_path)
    proc = run("streamls", "evaluate", model, specs["/X"], "--y", specs["/y"], cwd=tmp_path)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "row 250, column 1 holds nan (--nan-policy error; clean the data or pass --nan-policy drop" in line
    assert "nan_policy=" not in line
    assert files_under(tmp_path) == before


def test_flag_phrases_are_only_used_where_the_command_has_the_flag() -> None:
    text = "row 5, column 0 holds nan (nan_policy='error'; clean the data or pass nan_policy='drop' to skip such rows)"
    expected = "row 5, column 0 holds nan (--nan-policy error; clean the data or pass --nan-policy drop to skip such rows)"
    assert cli_text(text, ["--nan-policy"]) == expected
    assert cli_text(text, ["--overwrite"]) == text  # predict has no --nan-policy: never advise a flag it lacks


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("option", ["--block-rows", "--chunk-rows"])  # the flag, and its earlier name
def test_block_rows_rounded_to_the_stored_chunk_is_said(
    tmp_path: Path, model_and_data: tuple[str, dict[str, str]], command: str, option: str
) -> None:
    model, specs = model_and_data

    def with_block_rows(rows: int, out: str) -> subprocess.CompletedProcess[str]:
        extra = ["--y", specs["/y"]] if command == "evaluate" else ["--out", out]
        return run("streamls", command, model, specs["/X"], *extra, option, str(rows), cwd=tmp_path)

    proc = with_block_rows(40, "preds.h5:/yhat")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"warning: --block-rows 40: reading blocks of 100 rows instead, because blocks are whole stored chunks of "
        f"{specs['/X']} (100 rows each), so that no chunk is read twice; for smaller blocks, re-chunk the data: "
        f"python -m data_tools convert {specs['/X']} rechunked.h5 --chunk-rows 40"
    ) in proc.stderr
    quiet = with_block_rows(200, "more.h5:/yhat")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr  # whole chunks: nothing to say


def test_a_library_warning_is_one_line(tmp_path: Path, model_and_data: tuple[str, dict[str, str]]) -> None:
    """A Python warning reaches the terminal as one line, its class and message, without file and source line."""
    model, _ = model_and_data
    specs = write_hdf5(tmp_path, {"/X": 10 * DATA.X}, chunk_rows=100, name="far")
    proc = run("streamls", "predict", model, specs["/X"], "--out", "preds.h5:/yhat", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "OutOfRangeWarning" in line]
    assert line.startswith("warning: OutOfRangeWarning: ") and "outside the range of the training rows" in line
    assert len(proc.stderr.splitlines()) == 2 and "warnings.warn" not in proc.stderr  # the warning and the done line


def test_evaluate_warns_once_about_inputs_beyond_the_training_range(
    tmp_path: Path, model_and_data: tuple[str, dict[str, str]]
) -> None:
    """One warning counting the rows of every block, not one per block."""
    model, _ = model_and_data
    specs = write_hdf5(tmp_path, {"/X": 10 * DATA.X, "/y": DATA.y}, chunk_rows=100, name="far")
    proc = run("streamls", "evaluate", model, specs["/X"], "--y", specs["/y"], "--block-rows", "100", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "OutOfRangeWarning" in line]
    assert line.startswith(f"warning: OutOfRangeWarning: {specs['/X']}: ")
    assert "of 600 rows hold inputs outside the range of the training rows" in line


def test_predict_help_lists_every_output_format(tmp_path: Path) -> None:
    proc = run("streamls", "predict", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for output in ("preds.h5:/yhat", "preds.zarr:yhat", "preds.csv,", "preds.csv.gz", "preds.parquet", "fsspec URLs"):
        assert output in text, output


#: CSV files the reader needs told about, and its advice in flag form.
AMBIGUOUS_HEADER = ("a,1,2\n3,4,5\n", "--header if it names the columns, or --no-header if it is a data row")
SEMICOLONS = ("x;y;z\n1;2;3\n4;5;6\n", "--delimiter ';'")


@pytest.mark.parametrize(("content", "advice"), [AMBIGUOUS_HEADER, SEMICOLONS])
def test_csv_advice_names_the_convert_flags(tmp_path: Path, content: str, advice: str) -> None:
    (tmp_path / "in.csv").write_text(content)
    proc = run("data_tools", "convert", "in.csv", "out.h5", cwd=tmp_path)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert line.startswith("data_tools convert: error: in.csv: line ") and f"pass {advice}" in line
    assert "header=" not in line and "delimiter=" not in line
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize(("content", "advice"), [AMBIGUOUS_HEADER, SEMICOLONS])
def test_csv_advice_of_streamls_names_the_conversion(
    tmp_path: Path, model_and_data: tuple[str, dict[str, str]], content: str, advice: str
) -> None:
    """``streamls`` reads a CSV with the default settings: the advice is the conversion that has the flags."""
    model, _ = model_and_data
    csv = tmp_path / "in.csv"
    csv.write_text(content)
    conversion = f"convert it with python -m data_tools convert {csv} {tmp_path / 'in.h5'} {advice}"
    for command in (["train", str(csv), "--out-dir", "run"], ["evaluate", model, str(csv)]):
        proc = run("streamls", *command, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        line = one_error_line(proc)
        assert conversion in line and "header=" not in line and "delimiter=" not in line, line
    assert not (tmp_path / "run").exists()


def test_the_advised_conversion_reads_the_file(tmp_path: Path) -> None:
    """The advice can be followed: the conversion with the delimiter it names succeeds (a tab is quoted $'\\t')."""
    (tmp_path / "in.tsv.csv").write_text("x\ty\n1\t2\n3\t4\n")
    proc = run("data_tools", "convert", "in.tsv.csv", "out.h5", cwd=tmp_path)
    assert proc.returncode == 2
    assert "pass --delimiter $'\\t'" in one_error_line(proc)
    done = run("data_tools", "convert", "in.tsv.csv", "out.h5", "--delimiter", "\t", "--target-cols", "y", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n_rows"] == 2


def test_csv_advice_keeps_messages_of_other_files() -> None:
    text = "data.h5:/X: pass delimiter=';'"  # not a CSV reader's message (no "PATH: line N: ")
    assert cli_text(text, []) == text


def test_keep_checkpoints_below_one_is_refused_naming_it(tmp_path: Path, model_and_data: tuple[str, dict[str, str]]) -> None:
    _, specs = model_and_data
    proc = run("streamls", "train", specs["/X"], "--y", specs["/y"], "--keep-checkpoints", "0", "--out-dir", "run", cwd=tmp_path)
    assert proc.returncode == 2
    assert "argument --keep-checkpoints: expected an int in the range [1, inf), got '0'" in one_error_line(proc)
    (tmp_path / "job.toml").write_text("keep_checkpoints = 0\n")
    proc = run("streamls", "train", specs["/X"], "--y", specs["/y"], "--config", "job.toml", "--out-dir", "run", cwd=tmp_path)
    assert proc.returncode == 2
    assert "job.toml: key 'keep_checkpoints' must be an int >= 1, got 0" in one_error_line(proc)
    assert not (tmp_path / "run").exists()


def test_data_tools_counts_are_refused_naming_the_flag(tmp_path: Path) -> None:
    proc = run("data_tools", "synth", "out.h5", "--rows", "0", "-d", "3", cwd=tmp_path)
    assert proc.returncode == 2
    assert "argument --rows: expected an int in the range [1, inf), got '0'" in proc.stderr and "Traceback" not in proc.stderr
    assert files_under(tmp_path) == set()


def test_package_warnings_fail_the_test_suite() -> None:
    """pyproject.toml turns the package's own warnings into errors, so no test passes while one is raised."""
    with pytest.raises(OutOfRangeWarning):
        warnings.warn("inputs beyond the training range", OutOfRangeWarning, stacklevel=1)
