"""The ``predict``, ``evaluate``, ``info`` and ``demo`` commands (``train`` lives in :mod:`.train`)."""

from __future__ import annotations

import json
import os
import warnings
from typing import IO, Any

import numpy as np

from ..errors import OutOfRangeWarning
from ..hyperparameters import TrainConfig
from ..model import TwoLayerModel
from ..persistence import load_model
from ..sources import Dataset, open_source
from ..sources.dataset import round_block_rows
from ..sources.memory import ArraySource
from ..synthetic import SynthSpec, Teacher, generate_rows
from .backend import build_backend
from .config import JobConfig
from .history import nan_to_null
from .metrics import Metrics, evaluate
from .planning import block_size_note
from .progress import LOSS_UNITS, Reporter
from .rundir import write_outputs
from .signals import StopFlag
from .threads import limited_threads
from .train import train_loop

#: How the command lines name the units of MSE and RMSE computed on the targets as stored.
TARGET_UNITS = "target units"


def run_predict(model_path: str, data: str, out: str, block_rows: int | None, overwrite: bool, threads: int | None, reporter: Reporter) -> int:
    """Stream predictions for every row of ``data`` into ``out`` (HDF5 or Zarr array)."""
    model = load_model(model_path)
    source = open_source(data)
    try:
        if block_rows is not None:
            note = block_size_note(block_rows, round_block_rows(block_rows, source.chunk_rows), source)
            if note is not None:
                reporter.message(note, "warning")
        with limited_threads(threads):
            written = model.predict_to(source, out, block_rows=block_rows, overwrite=overwrite, prefetch=threads != 1)
    finally:
        source.close()
    reporter.event("done", f"wrote predictions to {written}", output=written)
    return 0


def evaluation_dataset(model: TwoLayerModel, data: str, y: str | None, target_cols: list[int | str] | None, nan_policy: str, block_rows: int | None) -> Dataset:
    """The rows to score, as :meth:`TwoLayerModel.scoring_dataset` lays them out (targets by name, or the last ``k`` columns)."""
    cols = None if target_cols is None else (target_cols[0] if len(target_cols) == 1 else target_cols)
    return model.scoring_dataset(data, y, target_cols=cols, nan_policy=nan_policy, block_rows=block_rows)


def metrics_table(metrics: Metrics, data: str) -> str:
    """A text table of ``data``'s metrics: a title naming the units, a header line and one line per output
    (rows, MSE, RMSE and R^2)."""
    lines = [
        f"{data}: MSE and RMSE in {TARGET_UNITS}",
        f"{'output':>6}  {'rows':>10}  {'MSE':>12}  {'RMSE':>12}  {'R^2':>10}",
    ]
    for c in range(len(metrics.mse)):
        lines.append(f"{c:>6}  {metrics.n:>10}  {metrics.mse[c]:>12.6g}  {metrics.rmse[c]:>12.6g}  {metrics.r2[c]:>10.6f}")
    return "\n".join(lines)


def run_evaluate(
    model_path: str, data: str, y: str | None, target_cols: list[int | str] | None, nan_policy: str,
    block_rows: int | None, as_json: bool, threads: int | None, reporter: Reporter, out: IO[str],
) -> int:
    """Print MSE, RMSE and R^2 per output to ``out``, streaming the data once; notes go to ``reporter``."""
    model = load_model(model_path)
    dataset = evaluation_dataset(model, data, y, target_cols, nan_policy, block_rows)
    try:
        note = block_size_note(block_rows, dataset.block_rows, dataset.x_source)
        if note is not None:
            reporter.message(note, "warning")
        with limited_threads(threads):
            metrics = evaluate(model, dataset, prefetch=threads != 1)
    finally:
        dataset.close()
    if as_json:
        payload = {"model": model_path, "data": dataset.name, "units": TARGET_UNITS, **metrics.as_dict()}
        print(json.dumps(nan_to_null(payload), allow_nan=False), file=out)
    else:
        print(metrics_table(metrics, dataset.name), file=out)
    return 0


#: The summary fields ``info`` shows under ``training_data``; ``best_iteration`` and
#: ``stop_reason`` go under ``history`` and the rest under ``fit``.
TRAINING_DATA_FIELDS = ("data", "n_rows", "n_features", "n_targets", "n_train", "n_validation", "dropped_rows")
#: The sections of :func:`model_summary`, in the order the text form prints them.
SECTIONS = ("architecture", "training_data", "hyperparameters", "history", "fit")


def model_summary(model: TwoLayerModel, path: str) -> dict[str, Any]:
    """What ``info`` shows: architecture, training data, hyperparameters, history summary and the
    rest of the model's :class:`~streamls.summary.FitSummary` (schedule, rows, race of starts)."""
    history = model.history
    fit = model.summary.as_dict()
    training_data = {key: fit.pop(key) for key in TRAINING_DATA_FIELDS}
    best, stop_reason = fit.pop("best_iteration"), fit.pop("stop_reason")
    best_rec = next((r for r in history if int(r["iteration"]) == best), None)
    return {
        "model": path,
        "architecture": {
            "inputs": model.n_features,
            "hidden_units": model.hidden_units,
            "outputs": model.n_targets,
            "activation": "relu" if model.alpha == 0 else f"leaky relu (alpha={model.alpha:g})",
            "parameters": int(model.W.size + model.B.size),
        },
        "training_data": training_data,
        "hyperparameters": model.hyperparameters,
        "history": {
            "iterations": int(history[-1]["iteration"]) if history else 0,
            "best_iteration": best,
            "stop_reason": stop_reason,
            "loss_units": LOSS_UNITS,
            "first_train_loss": history[0]["train_loss"] if history else None,
            "best_train_loss": best_rec["train_loss"] if best_rec else None,
            "best_val_loss": best_rec["val_loss"] if best_rec else None,
            "last_train_loss": history[-1]["train_loss"] if history else None,
            "seconds": sum(float(r["seconds"]) for r in history),
        },
        "fit": fit,
    }


def _shown(value: Any) -> Any:
    """``value`` as the text form prints it: floats, also in lists, to 6 significant digits."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(str(_shown(v)) for v in value) + "]"
    return value


def summary_text(summary: dict[str, Any]) -> str:
    """The text form of :func:`model_summary`: one indented block per section, floats to 6 significant digits."""
    lines = [f"model {summary['model']}"]
    for section in SECTIONS:
        lines.append(f"{section.replace('_', ' ')}:")
        for key, value in summary[section].items():
            lines.append(f"  {key:<22} {_shown(value)}")
    return "\n".join(lines)


def run_info(model_path: str, as_json: bool, out: IO[str]) -> int:
    """Print a saved model's summary to ``out`` (JSON on one line, or text); return the exit status 0."""
    summary = model_summary(load_model(model_path), model_path)
    print(json.dumps(nan_to_null(summary), allow_nan=False) if as_json else summary_text(summary), file=out)
    return 0


# -- demo -----------------------------------------------------------------------------------
def _mse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean((y - pred) ** 2))


def run_demo(rows: int, hidden_units: int, max_iter: int, seed: int, out_dir: str | None, threads: int | None, reporter: Reporter, out: IO[str]) -> int:
    """Train on synthetic teacher data held in memory and print a comparison table."""
    # The rows after the training rows are further independent draws: the test set.
    spec = SynthSpec(n_rows=rows + max(rows // 4, 1000), n_features=8, hidden_units=12, noise=0.1, seed=seed, dtype="float64")
    X_all, y_all = generate_rows(spec, Teacher.draw(spec), 0, spec.n_rows)
    (X, X_test), (y, y_test) = np.split(X_all, [rows]), np.split(y_all[:, 0], [rows])
    job = JobConfig(hidden_units=hidden_units, max_iter=max_iter, random_state=seed, validation_fraction=0.1, threads=threads)
    config = TrainConfig(**job.train_options())
    reporter.message(f"demo: {rows} rows of a random 8-12-1 ReLU teacher (noise 0.1), hidden_units={hidden_units}")
    dataset = Dataset(ArraySource(X, name="demo inputs"), ArraySource(y, name="demo targets"), block_rows=8192)
    stop = StopFlag()
    backend = build_backend(job, dataset, reporter.advance)
    try:
        with limited_threads(threads):
            result = train_loop(dataset, config, backend, reporter, stop)
    finally:
        reporter.close_bar()
        backend.close()
    A = np.hstack([X, np.ones((rows, 1))])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    A_test = np.hstack([X_test, np.ones((len(X_test), 1))])
    model = result.model
    with warnings.catch_warnings():
        # Fresh Gaussian draws (the validation and test rows) pass the training rows' extremes
        # now and then; that is the comparison the table makes, not a problem to warn about.
        warnings.simplefilter("ignore", OutOfRangeWarning)
        streamls_train_mse, streamls_test_mse = _mse(y, model.predict(X)), _mse(y_test, model.predict(X_test))
    table = [
        ("mean of y", _mse(y, np.full(rows, y.mean())), _mse(y_test, np.full(len(y_test), y.mean()))),
        ("linear least squares", _mse(y, A @ coef), _mse(y_test, A_test @ coef)),
        (f"streamls h={hidden_units} ({result.n_iter} it.)", streamls_train_mse, streamls_test_mse),
        ("noise floor", spec.noise**2, spec.noise**2),
    ]
    var_test = float(np.var(y_test))
    # The iteration lines and this table show the same fits in two units: say how they relate.
    variance = float(model.standardizer.y_scale[0]) ** 2
    print(
        f"MSE in {TARGET_UNITS}; the iteration lines' {LOSS_UNITS} losses are MSE / {variance:.4g} "
        f"(the training targets' variance)",
        file=out,
    )
    print(f"{'model':<30} {'train MSE':>10} {'test MSE':>10} {'test R^2':>9}", file=out)
    for name, train_mse, test_mse in table:
        print(f"{name:<30} {train_mse:>10.4g} {test_mse:>10.4g} {1 - test_mse / var_test:>9.4f}", file=out)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        write_outputs(out_dir, result, test_mse=streamls_test_mse)
        print(f"model, history and report written to {out_dir}", file=out)
    return 0
