"""The ``streamls`` command, run as a subprocess on real HDF5 and Zarr files under tmp_path.

References are independent: predictions from the Python API, metrics from NumPy on the
whole array, an uninterrupted run for the interrupted-and-resumed one. Every training
subprocess runs with ``--threads 1`` so that runs are bitwise reproducible.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import h5py
import matplotlib.image
import numpy as np
import pytest
import zarr
from conftest import teacher_data, write_hdf5, write_zarr
from threadpoolctl import threadpool_limits

import streamls
from streamls.cli import main
from streamls.cli.checkpoint import KEEP_CHECKPOINTS, checkpoint_files, checkpoint_path, prune_checkpoints
from streamls.cli.config import JobConfig, tomllib
from streamls.cli.planning import local_workers, memory_estimate
from streamls.cli.report import history_figure
from streamls.cli.resources import MemoryEstimate, MemoryLimitError, plan_block_rows
from streamls.cli.rundir import MODEL
from streamls.sources import Dataset
from streamls.split import validation_mask
from streamls.training import RACE_ITERATIONS

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL = ["--hidden-units", "6", "--max-iter", "4", "--tol", "0", "--random-state", "3", "--validation-fraction", "0.2", "--threads", "1"]
#: A run long enough (26 passes) to be killed part-way, small enough to take seconds.
LONG = ["--hidden-units", "16", "--max-iter", "25", "--tol", "0", "--random-state", "5", "--block-rows", "2000", "--threads", "1"]


def cli(*args: str, cwd: Path, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m streamls ARGS`` with pipes (not a terminal), as a batch job would."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "streamls", *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def popen(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "streamls", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: str, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    """Poll until ``path`` exists (the run must still be going)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, f"run ended (exit {proc.returncode}) before {path} appeared: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout}s"
        time.sleep(0.002)


def assert_same_model(a: str, b: str, rtol: float = 1e-12) -> None:
    ma, mb = streamls.load_model(a), streamls.load_model(b)
    np.testing.assert_allclose(ma.W, mb.W, rtol=rtol, atol=0)
    np.testing.assert_allclose(ma.B, mb.B, rtol=rtol, atol=0)
    assert ma.summary.best_iteration == mb.summary.best_iteration
    assert [r["train_loss"] for r in ma.history] == pytest.approx([r["train_loss"] for r in mb.history], rel=rtol)


def assert_valid_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


# ---------------------------------------------------------------------------------------------
# train, predict, evaluate, info on HDF5 and on Zarr
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["hdf5", "zarr"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One CLI training run per format. HDF5: separate X and y arrays, settings from a TOML
    file that a flag overrides. Zarr: one table, two targets picked by --target-cols."""
    tmp = tmp_path_factory.mktemp(request.param)
    data = teacher_data(n=1200, d=4, k=2, seed=7)
    if request.param == "hdf5":
        specs = write_hdf5(tmp, {"/X": data.X, "/Y": data.y}, chunk_rows=100)
        (tmp / "job.toml").write_text(f'data = "{specs["/X"]}"\ny = "{specs["/Y"]}"\nhidden_units = 99\nmax_iter = 4\n')
        train_args = ["--config", "job.toml", *SMALL]
        api = {"X": specs["/X"], "y": specs["/Y"]}
    else:
        table = np.hstack([data.X[:, :2], data.y[:, :1], data.X[:, 2:], data.y[:, 1:]])  # targets at columns 2 and 5
        specs = write_zarr(
            str(tmp / "data.zarr"), {"T": table, "T2": np.hstack([data.X, data.y]), "X": data.X}, chunk_rows=100
        )
        train_args = [specs["T"], "--target-cols", "2,5", *SMALL]
        api = {"X": specs["T"], "target_cols": [2, 5]}
    proc = cli("train", *train_args, "--out-dir", "run", cwd=tmp)
    return {"kind": request.param, "tmp": tmp, "run": tmp / "run", "data": data, "specs": specs, "api": api, "train": proc}


def test_train_writes_run_directory_with_effective_config(trained: dict) -> None:
    run: Path = trained["run"]
    expected = {"config.toml", "model.h5", "history.csv", "history.json", "report.png", "report.md", "train.log", "checkpoints"}
    assert expected <= {p.name for p in run.iterdir()}
    assert not (run / ".lock").exists()
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["hidden_units"] == 6  # the flag overrides the file's 99
    assert config["max_iter"] == 4 and config["random_state"] == 3 and config["block_rows"] >= 100
    assert [i for i, _ in checkpoint_files(str(run))] == [2, 3, 4]  # the last KEEP_CHECKPOINTS of 0..4
    history = json.loads((run / "history.json").read_text())
    assert [r["iteration"] for r in history] == [0, 1, 2, 3, 4]
    assert (run / "history.csv").read_text().count("\n") == 6
    assert_valid_png(run / "report.png")
    assert "report.png" in (run / "report.md").read_text()


def test_train_equals_python_api(trained: dict) -> None:
    """The CLI trains exactly what streamls.fit trains with the same settings."""
    config = tomllib.loads((trained["run"] / "config.toml").read_text())
    with threadpool_limits(1):
        result = streamls.fit(
            **trained["api"], hidden_units=6, max_iter=4, tol=0, random_state=3, validation_fraction=0.2,
            block_rows=config["block_rows"],
        )
    cli_model = streamls.load_model(trained["run"] / MODEL)
    np.testing.assert_allclose(cli_model.W, result.model.W, rtol=1e-12, atol=0)
    np.testing.assert_allclose(cli_model.B, result.model.B, rtol=1e-12, atol=0)


def test_predict_equals_python_api(trained: dict) -> None:
    tmp, model_path, X = trained["tmp"], str(trained["run"] / MODEL), trained["data"].X
    x_spec = trained["specs"]["/X"] if trained["kind"] == "hdf5" else trained["specs"]["X"]
    out = "preds.h5:/yhat" if trained["kind"] == "hdf5" else "preds.zarr:yhat"
    cli("predict", model_path, x_spec, "--out", out, "--threads", "1", cwd=tmp)
    expected = streamls.load_model(model_path).predict(X)
    if trained["kind"] == "hdf5":
        with h5py.File(tmp / "preds.h5", "r") as handle:
            written, chunks = handle["yhat"][...], handle["yhat"].chunks
    else:
        array = zarr.open_group(str(tmp / "preds.zarr"), mode="r")["yhat"]
        written, chunks = array[...], array.chunks
    assert written.shape == (1200, 2) and chunks[0] == 100  # same rows, same chunking as the input
    np.testing.assert_allclose(written, expected, rtol=1e-12, atol=1e-12)


def test_evaluate_equals_numpy(trained: dict) -> None:
    tmp, model_path, data = trained["tmp"], str(trained["run"] / MODEL), trained["data"]
    if trained["kind"] == "hdf5":
        args = [trained["specs"]["/X"], "--y", trained["specs"]["/Y"]]
    else:
        args = [trained["specs"]["T"], "--target-cols", "2,5"]
    proc = cli("evaluate", model_path, *args, "--json", "--block-rows", "300", cwd=tmp)
    got = json.loads(proc.stdout)
    pred = streamls.load_model(model_path).predict(data.X)
    mse = ((data.y - pred) ** 2).mean(axis=0)
    r2 = 1 - ((data.y - pred) ** 2).sum(axis=0) / ((data.y - data.y.mean(axis=0)) ** 2).sum(axis=0)
    assert got["n"] == 1200
    np.testing.assert_allclose(got["mse"], mse, rtol=1e-10)
    np.testing.assert_allclose(got["rmse"], np.sqrt(mse), rtol=1e-10)
    np.testing.assert_allclose(got["r2"], r2, rtol=1e-10)


def test_evaluate_table(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    model_path, data = str(trained["run"] / MODEL), trained["data"]
    if trained["kind"] == "hdf5":
        args = [trained["specs"]["/X"], "--y", trained["specs"]["/Y"]]
    else:  # a table whose last k columns are the targets needs no --target-cols
        args = [trained["specs"]["T2"]]
    assert main(["evaluate", model_path, *args]) == 0
    pred = streamls.load_model(model_path).predict(data.X)
    r2 = 1 - ((data.y - pred) ** 2).sum(axis=0) / ((data.y - data.y.mean(axis=0)) ** 2).sum(axis=0)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("MSE and RMSE in target units")
    assert lines[1].split() == ["output", "rows", "MSE", "RMSE", "R^2"]
    assert [float(line.split()[-1]) for line in lines[2:]] == pytest.approx(r2, abs=1e-6)


def test_info(trained: dict) -> None:
    model_path = str(trained["run"] / MODEL)
    summary = json.loads(cli("info", model_path, "--json", cwd=trained["tmp"]).stdout)
    assert summary["architecture"] == {"inputs": 4, "hidden_units": 6, "outputs": 2, "activation": "relu", "parameters": 6 * 5 + 7 * 2}
    assert summary["training_data"]["n_rows"] == 1200
    assert summary["hyperparameters"]["hidden_units"] == 6 and summary["hyperparameters"]["random_state"] == 3
    assert summary["history"]["iterations"] == 4


def test_info_text(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(trained["run"] / MODEL)]) == 0
    text = capsys.readouterr().out
    assert "hidden_units           6" in text and "best_iteration" in text and "activation             relu" in text


def test_non_tty_output_has_no_control_characters(trained: dict) -> None:
    err = trained["train"].stderr
    assert "\r" not in err and "\x1b" not in err
    assert sum(line.startswith("iter ") for line in err.splitlines()) == 5  # one line per iteration


@pytest.mark.parametrize(
    "losses",
    [np.linspace(0.0100, 0.0102, 12), np.geomspace(10.0, 1e-7, 12), np.full(5, 0.5), np.linspace(1.1e-9, 1.2e-9, 5)],
    ids=["narrow", "wide", "constant", "tiny"],
)
def test_report_loss_axes_keep_their_labels_on_the_canvas(losses: np.ndarray) -> None:
    """Narrow loss ranges get wide tick labels (9.975e-3, ...); the axis labels must still show."""
    history = [
        {"iteration": i, "train_loss": v, "val_loss": 1.1 * v, "flip_fraction": 0.1, "logdet": 1.0}
        for i, v in enumerate(losses)
    ]
    figure = history_figure(history, best_iteration=1, y_scale=[0.5])
    figure.canvas.draw()
    loss_ax = figure.axes[0]
    (target_ax,) = loss_ax.child_axes  # the same losses in target units
    for axis, text in ((loss_ax.yaxis, "MSE (standardised)"), (target_ax.yaxis, "MSE (target units)")):
        extent = axis.label.get_window_extent()
        assert axis.label.get_text() == text
        assert figure.bbox.x0 <= extent.x0 and extent.x1 <= figure.bbox.x1, (text, extent)
    low, high = loss_ax.get_ylim()
    shown = [t for t in loss_ax.get_yticklabels(which="both") if t.get_text() and low <= t.get_position()[1] <= high]
    assert shown  # at least one labelled loss value inside the view


def test_every_printed_loss_names_its_units(small_h5: tuple[Path, dict[str, str]]) -> None:
    """Iteration lines are standardised; the done line and report.md add target units, which are
    the MSE of the best model on the training rows, as NumPy computes it."""
    tmp, specs = small_h5
    run = tmp / "units_run"
    proc = cli("train", specs["/X"], "--y", specs["/y"], *SMALL, "--out-dir", str(run), cwd=tmp)
    iterations = [line for line in proc.stderr.splitlines() if line.startswith("iter ")]
    assert len(iterations) == 5 and all("(standardised)" in line for line in iterations)
    done = proc.stderr.strip().splitlines()[-1]
    assert "(standardised)" in done and "(target units)" in done
    model = streamls.load_model(run / MODEL)
    with h5py.File(specs["/X"].split(":")[0], "r") as handle:
        X, y = handle["X"][...], handle["y"][...]
    train = ~validation_mask(0, len(y), 0.2, 3)
    train_mse = float(np.mean((y[train] - model.predict(X[train])) ** 2))
    assert f"train MSE {train_mse:.6g}" in done
    report = (run / "report.md").read_text()
    assert "(standardised)" in report and f"In target units: training MSE {train_mse:.6g}" in report


def test_json_events_name_their_units(small_h5: tuple[Path, dict[str, str]]) -> None:
    tmp, specs = small_h5
    proc = cli("train", specs["/X"], "--y", specs["/y"], *SMALL, "--out-dir", "units_json", "--log-format", "json", cwd=tmp)
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert {e["loss_units"] for e in events if e["event"] == "iteration"} == {"standardised"}
    done = events[-1]
    variance = float(streamls.load_model(tmp / "units_json" / MODEL).standardizer.y_scale[0]) ** 2
    assert done["loss_units"] == "standardised"
    assert done["train_mse"] == pytest.approx(done["train_loss"] * variance, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# logs, configuration errors, demo
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_h5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("small")
    data = teacher_data(n=800, d=3, seed=2)
    return tmp, write_hdf5(tmp, {"/X": data.X, "/y": data.y}, chunk_rows=100)


def test_json_log_lines_parse(small_h5: tuple[Path, dict[str, str]]) -> None:
    tmp, specs = small_h5
    proc = cli("train", specs["/X"], "--y", specs["/y"], *SMALL, "--out-dir", "json_run", "--log-format", "json", cwd=tmp)
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    iterations = [e for e in events if e["event"] == "iteration"]
    assert [e["iteration"] for e in iterations] == [0, 1, 2, 3, 4]
    for key in ("train_loss", "val_loss", "flip_fraction", "logdet", "seconds", "rows_per_second"):
        assert key in iterations[-1]
    assert iterations[0]["flip_fraction"] is None  # NaN is written as null: strict JSON
    assert events[-1]["event"] == "done"
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr


def test_a_race_logs_every_start_and_checkpoints_only_the_kept_one(small_h5: tuple[Path, dict[str, str]]) -> None:
    tmp, specs = small_h5
    race = ["--hidden-units", "4", "--max-iter", str(RACE_ITERATIONS + 3), "--tol", "0", "--n-init", "2",
            "--random-state", "3", "--threads", "1"]
    proc = cli("train", specs["/X"], "--y", specs["/y"], *race, "--out-dir", "race_run", "--log-format", "json",
               "--keep-checkpoints", "100", cwd=tmp)
    iterations = [e for e in map(json.loads, proc.stderr.splitlines()) if e["event"] == "iteration"]
    starts = [e.get("race_start") for e in iterations]
    assert starts[: 2 * RACE_ITERATIONS] == [0] * RACE_ITERATIONS + [1] * RACE_ITERATIONS
    assert set(starts[2 * RACE_ITERATIONS:]) == {None}
    model = streamls.load_model(tmp / "race_run" / MODEL)
    kept = [e["train_loss"] for e in iterations[: 2 * RACE_ITERATIONS] if e["race_start"] == model.summary.race_winner]
    assert [r["train_loss"] for r in model.history[:RACE_ITERATIONS]] == kept
    # No checkpoint of an undecided race: a run resumed from one could not finish it.
    assert [i for i, _ in checkpoint_files(str(tmp / "race_run"))] == [0, *range(RACE_ITERATIONS, RACE_ITERATIONS + 4)]


def test_quiet_prints_nothing(small_h5: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, specs = small_h5
    with threadpool_limits(1):
        assert main(["train", specs["/X"], "--y", specs["/y"], *SMALL, "--out-dir", str(tmp / "quiet_run"), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert "iter    4" in (tmp / "quiet_run" / "train.log").read_text()  # the log file keeps everything


def test_overwrite_replaces_a_previous_run(small_h5: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, specs = small_h5
    run = tmp / "overwritten"
    args = ["train", specs["/X"], "--y", specs["/y"], *SMALL, "--out-dir", str(run), "-q"]
    with threadpool_limits(1):
        assert main([*args, "--max-iter", "6"]) == 0
        assert main(args) == 2  # the directory holds a run
        assert main([*args, "--overwrite"]) == 0
    assert [i for i, _ in checkpoint_files(str(run))] == [2, 3, 4]  # none left from the 6-iteration run
    assert len(json.loads((run / "history.json").read_text())) == 5
    assert "holds a previous run" in capsys.readouterr().err


def test_unknown_config_key_names_closest(small_h5: tuple[Path, dict[str, str]]) -> None:
    tmp, specs = small_h5
    (tmp / "typo.toml").write_text(f'data = "{specs["/X"]}"\ny = "{specs["/y"]}"\nhiden_units = 8\n')
    proc = cli("train", "--config", "typo.toml", "--out-dir", "typo_run", cwd=tmp, check=2)
    assert "'hiden_units'" in proc.stderr and "did you mean 'hidden_units'" in proc.stderr
    assert not (tmp / "typo_run").exists()


def test_unknown_flag_names_closest(small_h5: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, specs = small_h5
    assert main(["train", specs["/X"], "--hiden-units", "8", "--out-dir", str(tmp / "x")]) == 2
    assert "did you mean --hidden-units?" in capsys.readouterr().err


def test_bad_value_is_exit_2(small_h5: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, specs = small_h5
    assert main(["train", specs["/X"], "--y", specs["/y"], "--alpha", "1.5", "--out-dir", str(tmp / "bad")]) == 2
    assert "argument --alpha: expected a float in the range [0, 1), got '1.5'" in capsys.readouterr().err
    (tmp / "bad.toml").write_text("alpha = 1.5\n")  # from a file, TrainConfig refuses it
    assert main(["train", specs["/X"], "--y", specs["/y"], "--config", str(tmp / "bad.toml"), "--out-dir", str(tmp / "bad")]) == 2
    assert "'alpha' parameter" in capsys.readouterr().err
    assert main(["train", str(tmp / "missing.h5:/X"), "--out-dir", str(tmp / "bad")]) == 2
    assert "missing.h5" in capsys.readouterr().err


def test_demo_on_a_terminal_draws_progress_bars(tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: tqdm bars (carriage returns, rows/s); stdout keeps the table."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamls", "demo", "--rows", "2000", "--max-iter", "3", "--threads", "1", "--out-dir", "demo"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=follower, text=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, terminal
    assert "\r" in terminal and "rows/s" in terminal and "iter    3" in terminal
    lines = out.splitlines()
    assert lines[0].startswith("MSE in target units; the iteration lines' standardised losses are MSE / ")
    assert lines[1].split()[:3] == ["model", "train", "MSE"]
    assert any(line.startswith("streamls h=16") for line in lines)
    assert "(standardised)" in terminal
    assert_valid_png(tmp_path / "demo" / "report.png")
    assert "test MSE" in (tmp_path / "demo" / "report.md").read_text()  # the demo has a test set


# ---------------------------------------------------------------------------------------------
# checkpoints, kills, resume
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Data for a 25-iteration run and the model of an uninterrupted run on it."""
    tmp = tmp_path_factory.mktemp("long")
    data = teacher_data(n=16000, d=7, hidden=6, seed=11)
    specs = write_hdf5(tmp, {"/X": data.X, "/y": data.y}, chunk_rows=2000)
    args = [specs["/X"], "--y", specs["/y"], *LONG]
    # The reference keeps every checkpoint, for the round-trip test; the other runs keep the default few.
    cli("train", *args, "--out-dir", "reference", "--keep-checkpoints", "26", cwd=tmp)
    return {"tmp": tmp, "args": args, "reference": str(tmp / "reference" / MODEL)}


def test_sigkill_after_third_checkpoint_then_resume(long_job: dict) -> None:
    tmp, run = long_job["tmp"], long_job["tmp"] / "killed"
    proc = popen("train", *long_job["args"], "--out-dir", str(run), cwd=tmp)
    wait_for(checkpoint_path(str(run), 3), proc)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / MODEL).exists()
    # A kill during a checkpoint write leaves a temporary file behind; resume removes it.
    (run / "checkpoints" / ".ckpt-000099.h5.tmp-deadbeef").write_bytes(b"torn write")
    resumed = cli("train", "--resume", str(run), cwd=tmp)
    assert "partial checkpoint" in resumed.stderr and "resuming from" in resumed.stderr
    assert_same_model(str(run / MODEL), long_job["reference"])
    assert not any(p.name.startswith(".ckpt") for p in (run / "checkpoints").iterdir())
    assert [i for i, _ in checkpoint_files(str(run))] == [23, 24, 25]  # pruned to the last few, after the resume too


def test_matrix_free_run_killed_and_resumed_gives_the_uninterrupted_model(long_job: dict) -> None:
    """The matrix-free solve's one carried choice (the last ridge, where its next run starts) is in the checkpoint."""
    tmp = long_job["tmp"]
    args = [*long_job["args"], "--hidden-solver", "cg", "--max-iter", "8"]
    cli("train", *args, "--out-dir", "cg-reference", cwd=tmp)
    run = tmp / "cg-killed"
    proc = popen("train", *args, "--out-dir", str(run), cwd=tmp)
    wait_for(checkpoint_path(str(run), 3), proc)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    cli("train", "--resume", str(run), cwd=tmp)
    assert_same_model(str(run / MODEL), str(tmp / "cg-reference" / MODEL))
    assert {r["hidden_solver"] for r in streamls.load_model(str(run / MODEL)).history[1:]} == {"cg"}


def test_damaged_newest_checkpoint_falls_back_to_a_kept_one(long_job: dict) -> None:
    """Pruning keeps checkpoints before the newest, so a damaged newest one still leaves a resume point."""
    tmp, run = long_job["tmp"], long_job["tmp"] / "damaged"
    proc = popen("train", *long_job["args"], "--out-dir", str(run), cwd=tmp)
    wait_for(checkpoint_path(str(run), 4), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    kept = checkpoint_files(str(run))
    assert len(kept) == KEEP_CHECKPOINTS and kept[-1][0] >= 4
    with h5py.File(kept[-1][1], "r+") as handle:  # damage after the fact: the checksum no longer matches
        handle["W"][0, 0] += 1.0
    resumed = cli("train", "--resume", str(run), cwd=tmp)
    assert "skipping checkpoint" in resumed.stderr and f"iteration {kept[-2][0]})" in resumed.stderr
    assert_same_model(str(run / MODEL), long_job["reference"])


def test_prune_checkpoints_keeps_the_newest_and_anything_newer(tmp_path: Path) -> None:
    for iteration in (0, 1, 2, 3, 4, 5, 9):
        path = Path(checkpoint_path(str(tmp_path), iteration))
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"a checkpoint")
    removed = prune_checkpoints(str(tmp_path), newest=5, keep=3)
    assert sorted(Path(p).name for p in removed) == ["ckpt-000000.h5", "ckpt-000001.h5", "ckpt-000002.h5"]
    assert [i for i, _ in checkpoint_files(str(tmp_path))] == [3, 4, 5, 9]
    assert prune_checkpoints(str(tmp_path), newest=5, keep=3) == []
    with pytest.raises(ValueError, match="keep must be >= 1"):
        prune_checkpoints(str(tmp_path), newest=5, keep=0)


def test_sigterm_stops_with_143_and_resumes(long_job: dict) -> None:
    tmp, run = long_job["tmp"], long_job["tmp"] / "terminated"
    proc = popen("train", *long_job["args"], "--out-dir", str(run), cwd=tmp)
    wait_for(checkpoint_path(str(run), 2), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err and f"streamls train --resume {run}" in err
    assert not (run / MODEL).exists() and not (run / ".lock").exists()
    last = checkpoint_files(str(run))[-1]
    assert last[0] >= 2 and Path(last[1]).name in err
    cli("train", "--resume", str(run), cwd=tmp)
    assert_same_model(str(run / MODEL), long_job["reference"])


def test_sigint_exits_130(long_job: dict) -> None:
    tmp, run = long_job["tmp"], long_job["tmp"] / "interrupted"
    proc = popen("train", *long_job["args"], "--out-dir", str(run), "--log-format", "json", cwd=tmp)
    wait_for(checkpoint_path(str(run), 1), proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    event = json.loads(err.strip().splitlines()[-1])
    assert event["event"] == "interrupted" and event["signal"] == "SIGINT" and "--resume" in event["resume"]


def test_resume_refuses_changed_settings(long_job: dict) -> None:
    run = long_job["tmp"] / "reference"
    proc = cli("train", "--resume", str(run), "--hidden-units", "3", cwd=long_job["tmp"], check=2)
    assert "hidden_units (stored 16, given 3)" in proc.stderr


def test_existing_run_needs_resume_or_overwrite(long_job: dict, capsys: pytest.CaptureFixture[str]) -> None:
    run = long_job["tmp"] / "reference"
    assert main(["train", *long_job["args"], "--out-dir", str(run)]) == 2
    assert "--resume" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# resource limits and locks
# ---------------------------------------------------------------------------------------------
def test_memory_limit_refuses_before_reading_data(tmp_path: Path) -> None:
    """Every stored chunk is garbage, so any read would fail: the refusal must come first."""
    data = teacher_data(n=400, d=30, seed=3)
    specs = write_zarr(str(tmp_path / "big.zarr"), {"X": data.X, "y": data.y}, chunk_rows=100)
    for chunk in (tmp_path / "big.zarr" / "X" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"not a chunk")
    with pytest.raises(RuntimeError):  # the zstd codec rejects the garbage
        zarr.open_group(str(tmp_path / "big.zarr"), mode="r")["X"][:100]
    proc = cli("train", specs["X"], "--y", specs["y"], "--hidden-units", "256", "--memory-limit", "512MiB",
               "--out-dir", "run", cwd=tmp_path, check=2)
    # h (d + 1) = 256 * 31 = 7936 unknowns: 6 float64 matrices of 7936^2 are 2.82 GiB.
    assert "2.82 GiB" in proc.stderr and "hidden_units=256" in proc.stderr and "512 MiB" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_memory_limit_is_recorded_with_block_rows(tmp_path: Path) -> None:
    data = teacher_data(n=3000, d=3, seed=4)
    specs = write_hdf5(tmp_path, {"/X": data.X, "/y": data.y}, chunk_rows=100)
    with threadpool_limits(1):
        assert main(["train", specs["/X"], "--y", specs["/y"], *SMALL, "--memory-limit", "8GiB", "--block-rows", "1050",
                     "--out-dir", str(tmp_path / "run")]) == 0
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert config["memory_limit"] == "8GiB" and config["block_rows"] == 1100  # whole stored chunks


def test_block_rows_below_the_stored_chunk_says_so(
    small_h5: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp, specs = small_h5  # stored chunks of 100 rows
    args = ["train", specs["/X"], "--y", specs["/y"], *SMALL, "--block-rows", "30", "--out-dir", str(tmp / "rounded")]
    with threadpool_limits(1):
        assert main(args) == 0
    err = capsys.readouterr().err
    assert (
        f"warning: --block-rows 30: reading blocks of 100 rows instead, because blocks are whole stored chunks "
        f"of {specs['/X']}"
    ) in err
    assert "python -m data_tools convert" in err and "--chunk-rows 30" in err
    assert "reading blocks of 100 rows instead" in (tmp / "rounded" / "train.log").read_text()
    assert tomllib.loads((tmp / "rounded" / "config.toml").read_text())["block_rows"] == 100


def test_memory_limit_refusal_suggests_rechunking_and_the_command_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One stored chunk of 400,000 rows does not fit while the statistics of a small network do: the
    refusal names the data_tools command that re-chunks the data, and that command writes chunks that fit."""
    n, d = 400_000, 8
    with h5py.File(tmp_path / "big.h5", "w") as handle:  # never written: reads give zeros, the file stays small
        handle.create_dataset("X", shape=(n, d), dtype="f4", chunks=(n, d), compression="gzip")
        handle.create_dataset("y", shape=(n,), dtype="f4", chunks=(n,), compression="gzip")
    x_spec, y_spec = f"{tmp_path / 'big.h5'}:/X", f"{tmp_path / 'big.h5'}:/y"
    dataset = Dataset(x_spec, y_spec)
    estimate = memory_estimate(JobConfig(hidden_units=4), dataset)
    dataset.close()
    # 100 MiB beside the fixed part: about 117,000 rows fit, a chunk of 400,000 does not.
    limit = estimate.fixed_bytes + (100 << 20)
    assert main(["train", x_spec, "--y", y_spec, "--hidden-units", "4", "--memory-limit", str(limit),
                 "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "store the data in smaller chunks (blocks are whole stored chunks, here 400000 rows" in err
    command = err.split("fit): ", 1)[1].strip().rstrip(".")
    assert command == f"python -m data_tools convert {x_spec} rechunked.h5 --chunk-rows 65536"
    assert not (tmp_path / "run").exists()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = command.split()[1:]
    done = subprocess.run(
        [sys.executable, *args, "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    with h5py.File(tmp_path / "rechunked.h5", "r") as handle:
        assert handle["X"].shape == (n, d) and handle["X"].chunks == (65536, d)


def test_plan_block_rows_stays_under_limit() -> None:
    estimate = MemoryEstimate(hidden_units=64, n_features=31, n_targets=1, baseline_bytes=100 << 20)
    assert estimate.matrix_bytes == 6 * 2048**2 * 8  # P and its copies, (h p)^2 float64 each
    limit = estimate.fixed_bytes + 5000 * estimate.row_bytes
    rows = plan_block_rows(estimate, limit, requested=65536, chunk_rows=1000)
    assert rows == 5000 and estimate.peak_bytes(rows) <= limit
    assert plan_block_rows(estimate, limit, requested=2500, chunk_rows=1000) == 3000  # whole chunks
    with pytest.raises(MemoryLimitError, match="hidden_units=64") as refused:
        plan_block_rows(estimate, estimate.fixed_bytes + 999 * estimate.row_bytes, requested=65536, chunk_rows=1000, data="d.h5:/X")
    # 999 rows would fit, a chunk of 1000 does not: smaller chunks (a power of two) are the remedy.
    assert "python -m data_tools convert d.h5:/X rechunked.h5 --chunk-rows 512" in str(refused.value)
    with pytest.raises(MemoryLimitError) as hopeless:  # the statistics alone exceed the limit
        plan_block_rows(estimate, estimate.fixed_bytes - 1, requested=65536, chunk_rows=1000)
    assert "data_tools" not in str(hopeless.value)


def test_memory_limit_gives_fewer_block_threads_when_more_would_not_fit() -> None:
    estimate = MemoryEstimate(hidden_units=8, n_features=7, n_targets=1, baseline_bytes=100 << 20, workers=3)
    single = MemoryEstimate(hidden_units=8, n_features=7, n_targets=1, baseline_bytes=100 << 20)
    # Each further thread holds three more (h p)^2 matrices, a tile and a block.
    assert estimate.matrix_bytes - single.matrix_bytes == 2 * 3 * 64**2 * 8
    further = estimate.matrix_bytes - single.matrix_bytes + 2 * (single.tile_bytes + 1000 * single.row_bytes)
    assert estimate.peak_bytes(1000) - single.peak_bytes(1000) == further
    data = teacher_data(n=800, d=7)
    dataset = Dataset(data.X, data.y, block_rows=400)
    job = JobConfig(hidden_units=8, threads=3)
    assert local_workers(job, dataset) == 3  # no limit: as asked
    # Between the estimates for two and three threads (the baseline, this process's RSS, drifts a little).
    limit = (memory_estimate(job, dataset, 2).peak_bytes(400) + memory_estimate(job, dataset, 3).peak_bytes(400)) // 2
    assert local_workers(replace(job, memory_limit=str(limit)), dataset) == 2
    assert local_workers(replace(job, memory_limit="1MB"), dataset) == 1  # the refusal is check_fits's job


def test_live_lock_refuses_and_stale_lock_is_taken_over(long_job: dict, capsys: pytest.CaptureFixture[str]) -> None:
    run = long_job["tmp"] / "reference"
    lock = run / ".lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": "now"}))
    try:
        assert main(["train", "--resume", str(run)]) == 2
        assert f"pid {os.getpid()}" in capsys.readouterr().err
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started": "then"}))
        assert main(["train", "--resume", str(run)]) == 0  # a finished run: a no-op, as cron reruns need
        err = capsys.readouterr().err
        assert "stale lock" in err and "finished already" in err
        assert not lock.exists()
    finally:
        lock.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# checkpoint files and configuration files (in process)
# ---------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_and_damaged_newest_is_skipped(long_job: dict, tmp_path: Path) -> None:
    from streamls.cli.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

    files = checkpoint_files(str(long_job["tmp"] / "reference"))
    state, meta = load_checkpoint(files[5][1])
    assert state.iteration == 5 and len(state.history) == 5 and state.W_prev is not None
    save_checkpoint(state, checkpoint_path(str(tmp_path), 5), meta)
    first, _ = load_checkpoint(files[0][1])
    assert first.W_prev is None and first.best_W is None and first.history == ()
    save_checkpoint(first, checkpoint_path(str(tmp_path), 0), meta)
    again, meta_again = load_checkpoint(checkpoint_path(str(tmp_path), 5))
    assert meta_again == meta and again.history == state.history and again.solve == state.solve
    for name in ("W", "B", "W_prev", "best_W", "best_B"):
        np.testing.assert_array_equal(getattr(again, name), getattr(state, name))
    np.testing.assert_array_equal(again.standardizer.y_scale, state.standardizer.y_scale)
    with h5py.File(checkpoint_path(str(tmp_path), 5), "r+") as handle:  # damage after the fact
        handle["W"][0, 0] += 1.0
    found = latest_checkpoint(str(tmp_path))
    assert found is not None and found[0].iteration == 0


def test_effective_config_round_trips_through_toml(tmp_path: Path) -> None:
    from streamls.cli.config import JobConfig, merged, read_toml, to_toml

    job = JobConfig(data="/d/x.h5:/X", target_cols=[2, 5], hidden_units=7, alpha=0.25, l2=1e-8, random_state=9,
                    block_rows=4096, memory_limit="4GiB", threads=2)
    (tmp_path / "c.toml").write_text(to_toml(job, header="generated"))
    assert merged(read_toml(tmp_path / "c.toml")) == job
    sparse = tomllib.loads(to_toml(JobConfig(hidden_units=3)))  # unset keys are left out (TOML has no null)
    assert "random_state" not in sparse and merged(sparse) == JobConfig(hidden_units=3)


# ---------------------------------------------------------------------------------------------
# numerical failure, Dask
# ---------------------------------------------------------------------------------------------
def test_numerical_failure_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finite targets of magnitude 1.5e308 overflow every sum: the run must fail with 3, not write a model."""
    X = np.random.default_rng(0).standard_normal((200, 3))
    y = np.where(np.arange(200) % 2 == 0, 1.5e308, -1.5e308)
    specs = write_hdf5(tmp_path, {"/X": X, "/y": y})
    with np.errstate(all="ignore"):
        code = main(["train", specs["/X"], "--y", specs["/y"], "--max-iter", "2", "--out-dir", str(tmp_path / "run")])
    assert code == 3
    assert "training loss is nan" in capsys.readouterr().err
    assert not (tmp_path / "run" / MODEL).exists()


@pytest.mark.slow
def test_dask_flags(small_h5: tuple[Path, dict[str, str]]) -> None:
    """--scheduler runs the passes on a real LocalCluster on loopback, with the local run's result."""
    from distributed import LocalCluster

    from streamls.cli.parser import parse
    from streamls.cli.train import fresh_job

    args = parse(["train", "d.h5:/X", "--dask-workers", "2", "--out-dir", "r"])
    assert fresh_job({k: v for k, v in vars(args).items() if k in ("data", "dask_workers", "out_dir")}, None).backend == "dask"
    tmp, specs = small_h5
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        cli("train", specs["/X"], "--y", specs["/y"], *SMALL, "--scheduler", cluster.scheduler_address,
            "--out-dir", "dask_run", cwd=tmp)
    with threadpool_limits(1):
        local = streamls.fit(specs["/X"], specs["/y"], hidden_units=6, max_iter=4, tol=0, random_state=3, validation_fraction=0.2)
    on_dask = streamls.load_model(tmp / "dask_run" / MODEL)
    np.testing.assert_allclose(on_dask.W, local.model.W, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(on_dask.B, local.model.B, rtol=1e-8, atol=1e-10)


def test_history_records_stages_and_a_single_read(long_job: dict) -> None:
    """The default schedule on 16000 rows (too few to sample): one stage of every row, from the pool (one read)."""
    history = json.loads((long_job["tmp"] / "reference" / "history.json").read_text())
    assert {r["stage"] for r in history} == {0}
    assert sum(r["rows_read"] for r in history) == 16000
    assert all(r["sample_rows"] > 0 for r in history)


def test_memory_limit_leaves_the_pool_what_a_pass_does_not_need(long_job: dict) -> None:
    from streamls.cli.config import merged
    from streamls.cli.planning import open_dataset, pool_budget

    job = replace(merged(), data=long_job["args"][0], y=long_job["args"][2], hidden_units=16, block_rows=2000)
    dataset = open_dataset(job, job.block_rows)
    try:
        assert pool_budget(job, dataset) is None  # no limit: the library's default share
        peak = memory_estimate(job, dataset, 1).peak_bytes(dataset.block_rows)
        # The estimate's baseline is this process's resident memory, which drifts a little.
        limited = replace(job, memory_limit=str(peak + 50 * 2**20), threads=1)
        assert 40 * 2**20 < pool_budget(limited, dataset) < 60 * 2**20
        assert pool_budget(replace(limited, memory_limit=str(peak // 2)), dataset) == 0
    finally:
        dataset.close()
