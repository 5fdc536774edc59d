"""streamls against gradient-trained networks of the same architecture.

The same two-layer network ``d -> h -> k`` (ReLU, or leaky ReLU with slope ``alpha``) is
trained on the same standardised rows by

- streamls (``streamls.fit``) from an HDF5 file;
- PyTorch Adam and PyTorch SGD with momentum 0.9, streaming mini-batches from the same
  HDF5 file through ``torch.utils.data`` (a ``Dataset`` of h5py batch reads, a
  ``DataLoader`` shuffling the batch order);
- scikit-learn ``MLPRegressor`` (adam and lbfgs) on the rows in memory (ReLU only, so
  these run for ``alpha = 0`` only).

Two comparisons per dataset and configuration (see benchmarks/README.md):

Training loss. streamls with today's fixed settings (``l2=1e-6``, no validation rows)
trains; its time ``T`` (moments pass included; process CPU seconds by default, see
``--clock``) sets the clock. Every gradient candidate (each optimiser and learning rate)
trains for ``T``: the equal-time comparison. The ``--continue-top`` candidates with the
lowest training loss at ``T`` go on until ``multiplier * T`` (default 10 T): the budget
comparison.

Test error. streamls with the library's defaults (the ridge chosen by validation loss on
held-out rows) trains in ``T_d``. The gradient candidates train on the same training file
less streamls' validation rows (when streamls' defaults hold out none, the same hash
rows are held out for them all the same), are scored on those rows at every
evaluation and race to ``T_d``, the ``--continue-top`` best by validation MSE on to
``multiplier * T_d``; each is credited with its test MSE at its lowest validation MSE
(early stopping).

Only the training clock counts; the evaluations in between are excluded from it. Losses
are mean squared errors of the standardised target (train-split mean and scale applied to
both splits), on the whole training, validation or test split. Each result is printed as
one JSON line; the run writes results.json, table.md and PNG plots to ``--out``.

Run ``python benchmarks/compare.py --quick`` (a few minutes) or ``--full``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from common import UCI_DIR, Clock, machine_info, uci_table
from peers import Learner, TorchLearner, mse
from threadpoolctl import threadpool_limits

import streamls
from streamls.split import row_uniforms, validation_mask
from streamls.synthetic import SynthSpec, Teacher, generate_rows
from streamls.training import TrainResult

REPO = Path(__file__).resolve().parents[1]
REAL_DATASETS = ("protein", "kin40k", "elevators", "pol", "bike", "airfoil", "concrete")
TEST_FRACTION = 0.2
#: The synthetic dataset: streamls.synthetic's teacher (10 inputs, 20 ReLU units). Its
#: output has a standard deviation of about 0.5, so the noise is about 10% of it.
SYNTHETIC = SynthSpec(n_rows=1, n_features=10, hidden_units=20, noise=0.05, seed=7)
#: The settings the training-loss comparison pins: streamls' defaults before the ridge was
#: chosen by validation loss, so that its figures stay comparable across versions.
PINNED_OPTIONS = {"l2": 1e-6, "validation_fraction": 0.0}
#: The share of training rows held out for the gradient methods' early stopping: the rows
#: streamls holds out with this validation fraction (that of ``validation_fraction="auto"``).
#: When streamls' defaults hold out none, it chooses its ridge on every training row and the
#: gradient methods still hold these out.
DEFAULT_VALIDATION = 0.1
#: The test-error target: streamls' default at or below the best early-stopped gradient
#: method on at least this many of the real datasets.
TEST_TARGET_WINS = 6
BATCH_SIZE = 64
ADAM_LRS = (1e-3, 1e-2)
SGD_LRS = (3e-3, 3e-2)
LBFGS_CHUNK = 10
EARLY_FRACTIONS = (0.01, 0.02, 0.05)
EVALS_PER_T = 10
# An evaluation lands on the first step boundary at or after its scheduled time; one
# that late by at most this fraction still counts as "at" that time.
OVERSHOOT = 0.05


# ----------------------------------------------------------------------------- data


@dataclass
class Split:
    """A dataset's standardised train and test rows, and validation rows if held out.

    Attributes
    ----------
    name : str
    x_train : numpy.ndarray of float32, shape (n_train, d)
    y_train : numpy.ndarray of float32, shape (n_train, 1)
    x_test, y_test : numpy.ndarray of float32, shapes (n_test, d), (n_test, 1)
    n_rows : int
        Rows in the source before the split and any subsampling.
    x_val, y_val : numpy.ndarray of float32, shapes (n_val, d), (n_val, 1), or None
        Validation rows (taken out of the training rows by :func:`hold_out`).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_rows: int
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


def teacher_table(n: int) -> np.ndarray:
    """The first ``n`` rows of the :data:`SYNTHETIC` teacher stream, shape (n, d + 1), float64."""
    spec = replace(SYNTHETIC, n_rows=n)
    x, y = generate_rows(spec, Teacher.draw(spec), 0, n)
    return np.column_stack([x, y]).astype(np.float64)


def standardised_split(name: str, table: np.ndarray, max_train_rows: int | None, seed: int) -> Split:
    """Hash split of a table's rows, optional train subsample, train-split standardisation.

    The test rows are those whose ``row_uniforms(row, seed)`` falls below TEST_FRACTION;
    a capped training set is a hash sample of the remaining rows. Constant columns keep
    scale 1.
    """
    rows = np.arange(len(table))
    test = row_uniforms(rows, seed) < TEST_FRACTION
    train_rows = rows[~test]
    if max_train_rows is not None and len(train_rows) > max_train_rows:
        keep = np.argsort(row_uniforms(train_rows, seed + 1), kind="stable")[:max_train_rows]
        train_rows = np.sort(train_rows[keep])
    train, held = table[train_rows], table[test]
    mean, std = train.mean(axis=0), train.std(axis=0)
    scale = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    train, held = ((train - mean) / scale).astype(np.float32), ((held - mean) / scale).astype(np.float32)
    return Split(name, train[:, :-1], train[:, -1:], held[:, :-1], held[:, -1:], len(table))


def write_rows(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Rows as ``path:/X`` (n, d) and ``path:/y`` (n,), from ``x`` (n, d) and ``y`` (n, 1)."""
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=x)
        handle.create_dataset("y", data=y[:, 0])


def write_training_file(split: Split, path: Path, seed: int) -> None:
    """The training rows, in one random row order, as ``path:/X`` (n, d) and ``path:/y`` (n,).

    Both streamls and the PyTorch loaders read this file; the shuffle once at write time
    lets the loaders read contiguous batches that are still random samples.
    """
    order = np.random.default_rng(seed).permutation(len(split.x_train))
    write_rows(path, split.x_train[order], split.y_train[order])


def hold_out(split: Split, train_path: Path, fit_path: Path, fraction: float, seed: int) -> Split:
    """The split with streamls' validation rows of the training file taken out of its training rows.

    streamls trained on ``train_path`` with ``random_state=seed`` and validation fraction
    ``fraction`` holds out the file rows ``validation_mask(0, n, fraction, seed)``. They
    become the split's validation rows; the others, in the file's order, its training rows,
    also written to ``fit_path`` for the PyTorch loaders.
    """
    with h5py.File(train_path, "r") as handle:
        x, y = handle["X"][:], handle["y"][:].reshape(-1, 1)
    validation = validation_mask(0, len(x), fraction, seed)
    write_rows(fit_path, x[~validation], y[~validation])
    return replace(split, x_train=x[~validation], y_train=y[~validation], x_val=x[validation], y_val=y[validation])


# ----------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Settings:
    """What every configuration runs with, from the command line.

    Attributes
    ----------
    max_iter : int
        streamls' ``max_iter``.
    multiplier : float
        Gradient budgets in units of streamls' time.
    continue_top : int
        Candidates continued from streamls' time to the budget.
    patience : int
        Early-stopped race: a candidate stops after this many evaluations without a lower
        validation MSE (0: never).
    seed : int
    clock : Clock
    """

    max_iter: int
    multiplier: float
    continue_top: int
    patience: int
    seed: int
    clock: Clock


@dataclass
class StreamlsRun:
    """streamls' outcome on one configuration, with the pinned settings (:data:`PINNED_OPTIONS`).

    ``seconds`` is on the run's clock (the budget's unit), ``wall_seconds`` wall time.
    ``curve`` holds ``(seconds, train_mse)``: the zero predictor at 0, then each
    iterate's realised loss at the time its pass and solves were done;
    ``iter_losses`` the realised training loss of every iterate and ``iter_seconds``
    streamls' own per-iteration wall times (history ``seconds``).
    """

    seconds: float
    wall_seconds: float
    n_iter: int
    best_iteration: int
    stop_reason: str
    train_mse: float
    test_mse: float
    iter_losses: list[float]
    iter_seconds: list[float]
    curve: list[tuple[float, float]]
    within_1pct_iteration: int


@dataclass
class DefaultRun:
    """streamls' outcome with the library's defaults (no ``l2`` or validation keywords).

    ``seconds`` (``T_d``) is on the run's clock, ``wall_seconds`` wall time. ``n_train``
    and ``n_validation`` are the rows streamls fitted and held out (0 when its defaults
    hold out none: the ridge is then chosen without validation rows). The MSEs are those of the kept iterate
    on the training split less the validation rows of :func:`hold_out`, on those rows (a
    held-out score only when ``n_validation > 0``) and on the test split. ``val_losses``,
    ``l2_output_history`` and ``l2_hidden_history`` have one entry per history record:
    streamls' validation loss (nan without validation rows) and the ridges of the solves
    that produced that iterate, output and hidden layer (nan for the initial model, None
    where the history does not record them); ``l2_output`` and ``l2_hidden`` are those of
    the kept iterate.
    """

    seconds: float
    wall_seconds: float
    n_iter: int
    best_iteration: int
    stop_reason: str
    n_train: int
    n_validation: int
    train_mse: float
    validation_mse: float
    test_mse: float
    val_losses: list[float]
    l2_output_history: list[float | None]
    l2_hidden_history: list[float | None]
    l2_output: float | None
    l2_hidden: float | None


@dataclass(frozen=True)
class EarlyStop:
    """A gradient candidate stopped at its lowest validation MSE: when, and its validation and test MSE."""

    seconds: float
    validation: float
    test: float


@dataclass
class GradientRun:
    """One gradient-trained candidate: optimiser, learning rate and its loss curve.

    ``curve`` holds ``(train_clock_seconds, train_mse, test_mse)`` at each evaluation;
    ``validation`` the validation MSE at each (early-stopped race only, else empty).
    ``stopped`` says why it ended before its budget: ``"converged"`` (L-BFGS),
    ``"diverged"`` or ``"patience"`` (no lower validation MSE for ``patience`` evaluations).
    """

    method: str
    lr: float | None
    continued: bool = False
    steps: int = 0
    epochs: float = 0.0
    train_seconds: float = 0.0
    stopped: str = ""
    curve: list[tuple[float, float, float]] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.method if self.lr is None else f"{self.method} lr={self.lr:g}"

    def best_by(self, seconds: float) -> tuple[float, float]:
        """Lowest training MSE evaluated at or before ``seconds``, with its test MSE."""
        points = [(tr, te) for t, tr, te in self.curve if t <= seconds * (1 + OVERSHOOT) and math.isfinite(tr)]
        return min(points) if points else (math.inf, math.inf)

    def time_to_reach(self, loss: float) -> float | None:
        """Training clock at the first evaluation with training MSE <= ``loss``."""
        return next((t for t, tr, _ in self.curve if tr <= loss), None)

    def early_stop(self, seconds: float) -> EarlyStop:
        """The earliest evaluation with the lowest validation MSE at or before ``seconds``."""
        points = [EarlyStop(t, v, te) for (t, _, te), v in zip(self.curve, self.validation)
                  if t <= seconds * (1 + OVERSHOOT) and math.isfinite(v)]
        return min(points, key=lambda p: p.validation) if points else EarlyStop(math.nan, math.inf, math.inf)


@dataclass
class TimedFit:
    """A ``streamls.fit`` and its times.

    ``seconds`` and ``stamps`` (one per iteration, after its solves) are on the run's
    clock from the start of ``fit``; ``unit`` converts streamls' history losses (in its own
    standardised units) into ours.
    """

    result: TrainResult
    seconds: float
    wall_seconds: float
    stamps: list[float]
    unit: float


def timed_fit(path: Path, h: int, alpha: float, settings: Settings, **options: Any) -> TimedFit:
    """``streamls.fit`` on the training file with ``options``, timed by the settings' clock.

    The fit callback stamps the clock after every iteration's solves of the kept start (not
    of a race's undecided starts), so the stamps include the moments pass, every data pass
    and every solve.
    """
    clock = settings.clock
    stamps: list[float] = []

    def stamp(state: Any, record: Any) -> None:
        if getattr(state, "race_start", None) is None:
            stamps.append(clock.now() - start)

    wall, start = time.perf_counter(), clock.now()
    result = streamls.fit(
        f"{path}:/X", f"{path}:/y", hidden_units=h, alpha=alpha, max_iter=settings.max_iter,
        random_state=settings.seed, callback=stamp, **options,
    )
    seconds = clock.now() - start
    wall = time.perf_counter() - wall
    # streamls' scale of our already standardised target is ~1; this factor makes the units identical.
    unit = float(np.mean(result.model.standardizer.y_scale**2))
    return TimedFit(result, seconds, wall, stamps, unit)


def run_streamls(path: Path, split: Split, h: int, alpha: float, settings: Settings) -> StreamlsRun:
    """The training-loss run: ``streamls.fit`` with :data:`PINNED_OPTIONS` and the default stopping rule."""
    fit = timed_fit(path, h, alpha, settings, **PINNED_OPTIONS)
    result, model = fit.result, fit.result.model
    losses = [r.train_loss * fit.unit for r in result.history]
    times = [*fit.stamps, fit.seconds][: len(losses)]
    best = min(losses)
    return StreamlsRun(
        seconds=fit.seconds,
        wall_seconds=fit.wall_seconds,
        n_iter=result.n_iter,
        best_iteration=result.best_iteration,
        stop_reason=result.stop_reason,
        train_mse=mse(model.predict(split.x_train), split.y_train),
        test_mse=mse(model.predict(split.x_test), split.y_test),
        iter_losses=losses,
        iter_seconds=[r.seconds for r in result.history],
        curve=[(0.0, mse(np.zeros_like(split.y_train), split.y_train)), *zip(times, losses)],
        within_1pct_iteration=next(i for i, v in enumerate(losses) if v <= best * 1.01 + 1e-12),
    )


def optional_float(value: Any) -> float | None:
    """A history field as a float, or None where the record has none."""
    return None if value is None else float(value)


def run_default(path: Path, split: Split, h: int, alpha: float, settings: Settings) -> DefaultRun:
    """The test-error run: ``streamls.fit`` on the training file with the library's defaults.

    ``split`` is the dataset's split after :func:`hold_out`. streamls' defaults hold out
    either those validation rows or none (it then chooses the ridge without them); any
    other count means the peers would not stop on the rows streamls validated on.
    """
    fit = timed_fit(path, h, alpha, settings)
    result, model = fit.result, fit.result.model
    if result.n_validation not in (0, len(split.x_val)):
        raise RuntimeError(f"{split.name}: streamls held out {result.n_validation} validation rows, "
                           f"the comparison {len(split.x_val)}; its peers would not stop on the same rows")
    l2_output = [optional_float(getattr(r, "l2_output", None)) for r in result.history]
    l2_hidden = [optional_float(getattr(r, "l2_hidden", None)) for r in result.history]
    kept = next((i for i, r in enumerate(result.history) if r.iteration == result.best_iteration), None)
    return DefaultRun(
        seconds=fit.seconds,
        wall_seconds=fit.wall_seconds,
        n_iter=result.n_iter,
        best_iteration=result.best_iteration,
        stop_reason=result.stop_reason,
        n_train=result.n_train,
        n_validation=result.n_validation,
        train_mse=mse(model.predict(split.x_train), split.y_train),
        validation_mse=mse(model.predict(split.x_val), split.y_val),
        test_mse=mse(model.predict(split.x_test), split.y_test),
        val_losses=[r.val_loss * fit.unit for r in result.history],
        l2_output_history=l2_output,
        l2_hidden_history=l2_hidden,
        l2_output=None if kept is None else l2_output[kept],
        l2_hidden=None if kept is None else l2_hidden[kept],
    )


class SklearnLearner(Learner):
    """scikit-learn ``MLPRegressor`` (ReLU) on in-memory rows: an adam epoch or an L-BFGS chunk per step.

    ``x`` is (n, d), ``y`` (n, 1).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, h: int, solver: str, seed: int) -> None:
        from sklearn.neural_network import MLPRegressor

        self.x, self.y = x, y[:, 0]
        self.solver = solver
        chunk = {"max_iter": LBFGS_CHUNK, "warm_start": True} if solver == "lbfgs" else {"batch_size": BATCH_SIZE}
        # alpha here is sklearn's L2 penalty, off: the gradient methods are regularised by early stopping only.
        self.net = MLPRegressor(hidden_layer_sizes=(h,), activation="relu", solver=solver, alpha=0.0, tol=1e-10, random_state=seed, **chunk)
        self.steps = 0
        self.iterations = 0

    def step(self) -> bool:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.solver == "lbfgs":
                self.net.fit(self.x, self.y)
                self.iterations += self.net.n_iter_
                converged = self.net.n_iter_ < LBFGS_CHUNK
            else:
                self.net.partial_fit(self.x, self.y)
                converged = False
        self.steps += 1
        return not converged and math.isfinite(self.net.loss_)

    def mse(self, x: np.ndarray, y: np.ndarray) -> float:
        # Before its first fit the network has no weights: score the zero predictor.
        return mse(self.net.predict(x) if self.steps else np.zeros_like(y), y)

    @property
    def epochs(self) -> float:
        return float(self.iterations if self.solver == "lbfgs" else self.steps)


def eval_schedule(T: float, multiplier: float) -> list[float]:
    """Training-clock times at which to evaluate: a few early points, then every T / 10."""
    points = {T * f for f in EARLY_FRACTIONS} | {T * i / EVALS_PER_T for i in range(1, int(multiplier * EVALS_PER_T) + 1)}
    return sorted(points)


def evaluate(learner: Learner, run: GradientRun, split: Split, seconds: float) -> None:
    """Append the learner's MSEs on the split's training, test and (if any) validation rows."""
    run.curve.append((seconds, learner.mse(split.x_train, split.y_train), learner.mse(split.x_test, split.y_test)))
    if split.x_val is not None:
        run.validation.append(learner.mse(split.x_val, split.y_val))


def evaluations_since_best(values: list[float]) -> int:
    """Evaluations after the earliest lowest finite value (after the first one when none is finite)."""
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    best = min(finite, key=values.__getitem__) if finite else 0
    return len(values) - 1 - best


def advance(learner: Learner, run: GradientRun, split: Split, budget: float, schedule: list[float],
            clock: Clock, patience: int) -> None:
    """Train until the training clock reaches ``budget``, evaluating at ``schedule`` points.

    The clock counts only training steps (data loading included); evaluations of the
    whole train, test and validation split are excluded. A point is recorded at the first
    step boundary at or past each scheduled time, and at the end. With validation rows
    and ``patience > 0``, the run stops once that many evaluations in a row brought no
    lower validation MSE.
    """
    if not run.curve:
        evaluate(learner, run, split, 0.0)
    pending = [t for t in schedule if run.train_seconds < t <= budget]
    seconds = run.train_seconds
    while seconds < budget and not run.stopped:
        start = clock.now()
        ok = learner.step()
        seconds += clock.now() - start
        if not ok:
            run.stopped = "converged" if isinstance(learner, SklearnLearner) and learner.solver == "lbfgs" else "diverged"
        if (pending and seconds >= pending[0]) or seconds >= budget or run.stopped:
            while pending and seconds >= pending[0]:
                pending.pop(0)
            evaluate(learner, run, split, seconds)
            if patience and run.validation and evaluations_since_best(run.validation) >= patience and not run.stopped:
                run.stopped = "patience"
    run.train_seconds, run.epochs = seconds, learner.epochs
    run.steps = getattr(learner, "steps", 0)


def candidates(path: Path, split: Split, h: int, alpha: float, seed: int) -> list[tuple[GradientRun, Callable[[], Learner]]]:
    """Every gradient candidate and a factory building its learner on ``path`` (the split's training rows)."""
    d, k = split.x_train.shape[1], split.y_train.shape[1]
    out: list[tuple[GradientRun, Callable[[], Learner]]] = []
    for optimizer, lrs in (("torch-adam", ADAM_LRS), ("torch-sgd", SGD_LRS)):
        for lr in lrs:
            name = optimizer.split("-")[1]
            out.append((GradientRun(optimizer, lr),
                        lambda name=name, lr=lr: TorchLearner(path, d, k, h, alpha, name, lr, seed, batch_size=BATCH_SIZE)))
    if alpha == 0:  # MLPRegressor has no leaky ReLU
        out.append((GradientRun("sklearn-adam", 1e-3), lambda: SklearnLearner(split.x_train, split.y_train, h, "adam", seed)))
        out.append((GradientRun("sklearn-lbfgs", None), lambda: SklearnLearner(split.x_train, split.y_train, h, "lbfgs", seed)))
    return out


def training_rank(run: GradientRun) -> float:
    """The training-loss race's ranking: the lowest training MSE so far."""
    return run.best_by(math.inf)[0]


def validation_rank(run: GradientRun) -> float:
    """The early-stopped race's ranking: the lowest validation MSE so far."""
    return run.early_stop(math.inf).validation


def race(path: Path, split: Split, h: int, alpha: float, T: float, settings: Settings,
         rank: Callable[[GradientRun], float]) -> list[GradientRun]:
    """All candidates to ``T``, then the ``continue_top`` lowest by ``rank`` at ``T`` on to ``multiplier * T``.

    With validation rows in ``split`` every evaluation scores them too and the settings'
    patience applies.
    """
    schedule = eval_schedule(T, settings.multiplier)
    patience = settings.patience if split.x_val is not None else 0
    entries = [(run, factory()) for run, factory in candidates(path, split, h, alpha, settings.seed)]
    for run, learner in entries:
        advance(learner, run, split, T, schedule, settings.clock, patience)
    ranked = sorted(entries, key=lambda e: rank(e[0]))
    for run, learner in ranked[: settings.continue_top]:
        run.continued = True
        advance(learner, run, split, settings.multiplier * T, schedule, settings.clock, patience)
    return [run for run, _ in entries]


# ----------------------------------------------------------------------------- one configuration


@dataclass
class Summary:
    """The figures of the tables and the claim checks for one configuration.

    The training-loss comparison: ``streamls_*`` (the pinned run), ``equal_time_*`` and
    ``budget_*`` (the gradient candidate with the lowest training MSE within ``T`` and
    within the budget), ``wins_*`` (streamls' training MSE lower), ``reach_ratio``.
    The test-error comparison (None without one): ``default_*`` (the library-default run,
    ``default_seconds`` being ``T_d``), ``early_equal_time_*`` and ``early_budget_*`` (the
    candidate with the lowest test MSE at its own lowest validation MSE within ``T_d`` and
    within the budget; ``early_budget_seconds`` is that evaluation's time) and
    ``test_at_or_below_*`` (streamls' default test MSE at or below it).
    """

    dataset: str
    h: int
    alpha: float
    n_train: int
    d: int
    streamls_seconds: float
    streamls_iterations: int
    streamls_best_iteration: int
    streamls_within_1pct_iteration: int
    streamls_train: float
    streamls_test: float
    equal_time_method: str
    equal_time_train: float
    equal_time_test: float
    budget_method: str
    budget_train: float
    budget_test: float
    wins_equal_time: bool
    wins_budget: bool
    reach_ratio: float
    reached: bool
    default_seconds: float | None = None
    default_iterations: int | None = None
    default_best_iteration: int | None = None
    default_n_validation: int | None = None
    default_l2_output: float | None = None
    default_l2_hidden: float | None = None
    default_validation: float | None = None
    default_test: float | None = None
    early_equal_time_method: str | None = None
    early_equal_time_test: float | None = None
    early_budget_method: str | None = None
    early_budget_validation: float | None = None
    early_budget_test: float | None = None
    early_budget_seconds: float | None = None
    test_at_or_below_equal_time: bool | None = None
    test_at_or_below_budget: bool | None = None


@dataclass
class ConfigResult:
    """Everything measured on one (dataset, h, alpha).

    ``default`` and ``early_stopped`` are the test-error comparison (absent from results
    written before it existed).
    """

    dataset: str
    real: bool
    main: bool
    h: int
    alpha: float
    n_rows: int
    n_train: int
    n_test: int
    d: int
    multiplier: float
    streamls: StreamlsRun
    gradient: list[GradientRun]
    default: DefaultRun | None = None
    early_stopped: list[GradientRun] = field(default_factory=list)

    def best_at(self, seconds: float) -> tuple[GradientRun, float, float]:
        """The gradient candidate with the lowest training MSE by ``seconds``: (run, train, test)."""
        scored = [(run, *run.best_by(seconds)) for run in self.gradient]
        return min(scored, key=lambda s: s[1])

    def best_early_stopped(self, seconds: float) -> tuple[GradientRun, EarlyStop]:
        """The early-stopped candidate with the lowest test MSE at its lowest validation MSE by ``seconds``.

        Choosing among candidates by test MSE is generous to the gradient methods: a user
        would have to choose by validation MSE.
        """
        scored = [(run, run.early_stop(seconds)) for run in self.early_stopped]
        return min(scored, key=lambda s: s[1].test)

    def summary(self) -> Summary:
        T, s = self.streamls.seconds, self.streamls
        eq_run, eq_train, eq_test = self.best_at(T)
        bud_run, bud_train, bud_test = self.best_at(self.multiplier * T)
        reach = [t for run in self.gradient if (t := run.time_to_reach(s.train_mse)) is not None]
        reach_ratio = min(min(reach) / T, self.multiplier) if reach else self.multiplier
        out = Summary(
            dataset=self.dataset, h=self.h, alpha=self.alpha, n_train=self.n_train, d=self.d,
            streamls_seconds=T, streamls_iterations=s.n_iter, streamls_best_iteration=s.best_iteration,
            streamls_within_1pct_iteration=s.within_1pct_iteration,
            streamls_train=s.train_mse, streamls_test=s.test_mse,
            equal_time_method=eq_run.label, equal_time_train=eq_train, equal_time_test=eq_test,
            budget_method=bud_run.label, budget_train=bud_train, budget_test=bud_test,
            wins_equal_time=s.train_mse < eq_train, wins_budget=s.train_mse < bud_train,
            reach_ratio=reach_ratio, reached=bool(reach) and min(reach) <= self.multiplier * T,
        )
        if self.default is None or not self.early_stopped:
            return out
        dflt = self.default
        eq_run, eq_stop = self.best_early_stopped(dflt.seconds)
        bud_run, bud_stop = self.best_early_stopped(self.multiplier * dflt.seconds)
        return replace(
            out, default_seconds=dflt.seconds, default_iterations=dflt.n_iter,
            default_best_iteration=dflt.best_iteration, default_n_validation=dflt.n_validation,
            default_l2_output=dflt.l2_output, default_l2_hidden=dflt.l2_hidden,
            default_validation=dflt.validation_mse, default_test=dflt.test_mse,
            early_equal_time_method=eq_run.label, early_equal_time_test=eq_stop.test,
            early_budget_method=bud_run.label, early_budget_validation=bud_stop.validation,
            early_budget_test=bud_stop.test, early_budget_seconds=bud_stop.seconds,
            test_at_or_below_equal_time=dflt.test_mse <= eq_stop.test,
            test_at_or_below_budget=dflt.test_mse <= bud_stop.test,
        )


def run_config(split: Split, real: bool, main: bool, h: int, alpha: float, settings: Settings, workdir: Path) -> ConfigResult:
    """Both comparisons on one configuration: the training-loss race, then the early-stopped race."""
    # Written afresh each time: a file left in --out by a run with another seed or row cap
    # would hold other rows than the split.
    path = workdir / f"{split.name}-train.h5"
    write_training_file(split, path, settings.seed)
    s = run_streamls(path, split, h, alpha, settings)
    gradient = race(path, split, h, alpha, s.seconds, settings, training_rank)
    fit_path = workdir / f"{split.name}-fit.h5"
    held = hold_out(split, path, fit_path, DEFAULT_VALIDATION, settings.seed)
    default = run_default(path, held, h, alpha, settings)
    early = race(fit_path, held, h, alpha, default.seconds, settings, validation_rank)
    return ConfigResult(
        split.name, real, main, h, alpha, split.n_rows, len(split.x_train), len(split.x_test), split.x_train.shape[1],
        settings.multiplier, s, gradient, default, early,
    )


# ----------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Plan:
    """What a mode runs: datasets of the main configuration, the h/alpha grid and its datasets."""

    datasets: tuple[str, ...]
    main: tuple[int, float]
    grid: tuple[tuple[int, float], ...]
    grid_datasets: tuple[str, ...]
    max_train_rows: int | None
    synthetic_rows: int


FULL_GRID = tuple((h, a) for h in (16, 32, 64) for a in (0.0, 0.1))
PLANS = {
    "quick": Plan(("kin40k", "airfoil", "concrete", "synthetic"), (32, 0.0), ((16, 0.1),), ("airfoil",), 2000, 2500),
    # Cheapest first, so that a run stopped early still holds most datasets.
    "full": Plan(
        ("airfoil", "concrete", "kin40k", "protein", "synthetic", "bike", "elevators", "pol"),
        (32, 0.0), FULL_GRID, ("airfoil", "concrete"), None, 7500,
    ),
}


def planned_configs(plan: Plan) -> list[tuple[str, int, float, bool]]:
    """(dataset, h, alpha, is_main) in run order: the main table first, then the grid."""
    out = [(name, *plan.main, True) for name in plan.datasets]
    out += [(name, h, a, False) for name in plan.grid_datasets for h, a in plan.grid if (h, a) != plan.main]
    return out


def load_split(name: str, plan: Plan, seed: int) -> tuple[Split, bool] | None:
    """The dataset's split and whether it is real data; None (with a message) if absent."""
    if name == "synthetic":
        return standardised_split(name, teacher_table(plan.synthetic_rows), plan.max_train_rows, seed), False
    table = uci_table(name)
    if table is None:
        print(f"skipping {name}: {UCI_DIR / (name + '.csv.gz')} not found", file=sys.stderr)
        return None
    return standardised_split(name, table, plan.max_train_rows, seed), True


# ----------------------------------------------------------------------------- report


@dataclass
class TrainClaimRow:
    """One dataset of the training-loss claim check: training and test MSEs, and the reach ratio."""

    streamls_train: float
    equal_time_train: float
    budget_train: float
    streamls_test: float
    equal_time_test: float
    budget_test: float
    reach_ratio: float


@dataclass
class TrainClaimCheck:
    """The paper-claim figures (training loss) over the main configuration's real datasets."""

    datasets: int
    wins_equal_time: int = 0
    wins_budget: int = 0
    median_reach_ratio: float | None = None
    median_within_1pct_iteration: float | None = None
    per_dataset: dict[str, TrainClaimRow] = field(default_factory=dict)


@dataclass
class TestClaimRow:
    """One dataset of the test claim check: streamls' default against the best early-stopped gradient method."""

    streamls_test: float
    streamls_seconds: float
    l2_output: float | None
    l2_hidden: float | None
    equal_time_method: str
    equal_time_test: float
    budget_method: str
    budget_test: float
    budget_seconds: float
    at_or_below: bool


@dataclass
class TestClaimCheck:
    """The test-error figures over the main configuration's real datasets.

    ``at_or_below_*`` count the datasets where streamls' default test MSE is at or below
    the best early-stopped gradient method's within ``T_d`` and within the budget;
    ``passed`` says whether the budget count meets :data:`TEST_TARGET_WINS` (None unless
    every real dataset ran).
    """

    datasets: int
    at_or_below_equal_time: int = 0
    at_or_below_budget: int = 0
    target: str = f"at least {TEST_TARGET_WINS} of the {len(REAL_DATASETS)} real datasets"
    passed: bool | None = None
    per_dataset: dict[str, TestClaimRow] = field(default_factory=dict)


def main_real(results: list[ConfigResult]) -> list[Summary]:
    """Summaries of the main configuration's real datasets."""
    return [r.summary() for r in results if r.main and r.real]


def claim_check(results: list[ConfigResult]) -> TrainClaimCheck:
    """The training-loss claim over the main configuration's real datasets."""
    rows = main_real(results)
    if not rows:
        return TrainClaimCheck(0)
    return TrainClaimCheck(
        datasets=len(rows),
        wins_equal_time=sum(r.wins_equal_time for r in rows),
        wins_budget=sum(r.wins_budget for r in rows),
        median_reach_ratio=statistics.median(r.reach_ratio for r in rows),
        median_within_1pct_iteration=statistics.median(r.streamls_within_1pct_iteration for r in rows),
        per_dataset={r.dataset: TrainClaimRow(r.streamls_train, r.equal_time_train, r.budget_train, r.streamls_test,
                                              r.equal_time_test, r.budget_test, r.reach_ratio) for r in rows},
    )


def test_claim_check(results: list[ConfigResult]) -> TestClaimCheck:
    """The test-error claim over the main configuration's real datasets that ran the test comparison."""
    rows = [r for r in main_real(results) if r.default_test is not None]
    per_dataset = {
        r.dataset: TestClaimRow(r.default_test, r.default_seconds, r.default_l2_output, r.default_l2_hidden,
                                r.early_equal_time_method, r.early_equal_time_test, r.early_budget_method,
                                r.early_budget_test, r.early_budget_seconds, r.test_at_or_below_budget)
        for r in rows
    }
    wins = sum(r.test_at_or_below_budget for r in rows)
    return TestClaimCheck(
        datasets=len(rows),
        at_or_below_equal_time=sum(r.test_at_or_below_equal_time for r in rows),
        at_or_below_budget=wins,
        passed=wins >= TEST_TARGET_WINS if set(per_dataset) >= set(REAL_DATASETS) else None,
        per_dataset=per_dataset,
    )


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def markdown_table(results: list[ConfigResult]) -> str:
    """One row per configuration: streamls against the best gradient candidate at T and at the budget."""
    head = (
        "| dataset | h | alpha | n_train | d | streamls s | iters (best, 1%) | streamls train / test | "
        "best grad @ T: train / test | best grad @ budget: train / test | streamls lower @ T, @ budget | reach ratio |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | ---: |\n"
    )
    lines = []
    for r in results:
        s = r.summary()
        never = "" if s.reached else " (never)"
        lines.append(
            f"| {s.dataset} | {s.h} | {s.alpha:g} | {s.n_train} | {s.d} | {s.streamls_seconds:.2f} | "
            f"{s.streamls_iterations} ({s.streamls_best_iteration}, {s.streamls_within_1pct_iteration}) | "
            f"{fmt(s.streamls_train)} / {fmt(s.streamls_test)} | "
            f"{fmt(s.equal_time_train)} / {fmt(s.equal_time_test)} ({s.equal_time_method}) | "
            f"{fmt(s.budget_train)} / {fmt(s.budget_test)} ({s.budget_method}) | "
            f"{yes(s.wins_equal_time)}, {yes(s.wins_budget)} | {s.reach_ratio:.2f}{never} |"
        )
    return head + "\n".join(lines) + "\n"


def method_table(results: list[ConfigResult]) -> str:
    """Per method (its best learning rate), training MSE at T and at the budget, main configuration."""
    methods = sorted({g.method for r in results for g in r.gradient})
    head = "| dataset | streamls | " + " | ".join(methods) + " |\n| --- | ---: |" + " ---: |" * len(methods) + "\n"
    lines = []
    for r in (r for r in results if r.main):
        T, cells = r.streamls.seconds, []
        for method in methods:
            runs = [g for g in r.gradient if g.method == method]
            if not runs:
                cells.append("n/a")
                continue
            at_t = min(g.best_by(T)[0] for g in runs)
            at_b = min(g.best_by(r.multiplier * T)[0] for g in runs)
            cells.append(f"{fmt(at_t)} / {fmt(at_b)}")
        lines.append(f"| {r.dataset} | {fmt(r.streamls.train_mse)} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def test_table(results: list[ConfigResult]) -> str:
    """One row per configuration with a test comparison: streamls' default against early-stopped gradient methods."""
    head = (
        "| dataset | h | alpha | streamls rows fit / val | streamls default s | iters (best) | chosen l2 output, hidden | "
        "streamls val / test | early-stopped grad @ T_d: test | early-stopped grad @ budget: val / test (at s) | "
        "streamls at or below @ T_d, @ budget |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |\n"
    )
    lines = []
    for r in results:
        s = r.summary()
        if s.default_test is None:
            continue
        lines.append(
            f"| {s.dataset} | {s.h} | {s.alpha:g} | {r.default.n_train} / {s.default_n_validation} | "
            f"{s.default_seconds:.2f} | {s.default_iterations} ({s.default_best_iteration}) | "
            f"{fmt(s.default_l2_output)}, {fmt(s.default_l2_hidden)} | "
            f"{fmt(s.default_validation)} / {fmt(s.default_test)} | "
            f"{fmt(s.early_equal_time_test)} ({s.early_equal_time_method}) | "
            f"{fmt(s.early_budget_validation)} / {fmt(s.early_budget_test)} ({s.early_budget_method}, "
            f"{s.early_budget_seconds:.2f}) | {yes(s.test_at_or_below_equal_time)}, {yes(s.test_at_or_below_budget)} |"
        )
    return head + "\n".join(lines) + "\n"


def early_stopped_curve(run: GradientRun) -> tuple[list[float], list[float]]:
    """Training seconds and, at each, the test MSE at the lowest validation MSE so far (the early-stopped model)."""
    times, tests = [], []
    for i, (t, _, _) in enumerate(run.curve):
        times.append(t)
        tests.append(run.early_stop(t).test if i else run.curve[0][2])
    return times, tests


def panel_grid(n: int) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels, at most 4 a row; the spare panels of the last row are hidden."""
    import matplotlib.pyplot as plt

    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(results: list[ConfigResult], out: Path, clock_name: str) -> list[Path]:
    """loss_vs_time.png and test_vs_time.png (one panel per main-configuration dataset), streamls_iterations.png.

    The training panels draw the best training MSE so far (every method keeps its best
    iterate); the test panels each early-stopped candidate's test MSE at its lowest
    validation MSE so far, and streamls' default run as a point at ``T_d``; the iteration
    plot draws the pinned streamls run's realised loss of each iterate.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = [r for r in results if r.main]
    if not main:
        return []
    xlabel = f"training seconds ({clock_name})"
    fig, axes = panel_grid(len(main))
    for ax, r in zip(axes, main):
        t, tr = zip(*r.streamls.curve)
        ax.plot(np.maximum(t, 1e-3), np.minimum.accumulate(tr), color="black", lw=2, label="streamls")
        for method in sorted({g.method for g in r.gradient}):
            best = min((g for g in r.gradient if g.method == method), key=training_rank)
            t, tr, _ = zip(*best.curve)
            ax.plot(np.maximum(t, 1e-3), np.minimum.accumulate(tr), lw=1.2, label=best.label)
        ax.axvline(r.streamls.seconds, color="grey", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", title=f"{r.dataset} (h={r.h}, n={r.n_train})", xlabel=xlabel)
        ax.set_ylim(top=1.5)
        ax.set_ylabel("train MSE (standardised)")
        ax.legend(fontsize=7)
    paths = [save(fig, out / "loss_vs_time.png")]

    tested = [r for r in main if r.default is not None and r.early_stopped]
    if tested:
        fig, axes = panel_grid(len(tested))
        for ax, r in zip(axes, tested):
            ax.plot([r.default.seconds], [r.default.test_mse], "k*", ms=11, label="streamls default")
            ax.axhline(r.default.test_mse, color="black", lw=0.8, ls="--")
            for method in sorted({g.method for g in r.early_stopped}):
                best = min((g for g in r.early_stopped if g.method == method), key=lambda g: g.early_stop(math.inf).test)
                t, te = early_stopped_curve(best)
                ax.plot(np.maximum(t, 1e-3), te, lw=1.2, label=best.label)
            ax.axvline(r.default.seconds, color="grey", ls=":", lw=1)
            ax.set(xscale="log", yscale="log", title=f"{r.dataset} (h={r.h}, n_fit={r.default.n_train})", xlabel=xlabel)
            ax.set_ylim(top=1.5)
            ax.set_ylabel("test MSE, early-stopped (standardised)")
            ax.legend(fontsize=7)
        paths.append(save(fig, out / "test_vs_time.png"))

    fig, (raw, best) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in main:
        raw.plot(r.streamls.iter_losses, lw=1.2, label=r.dataset)
        best.plot(np.minimum.accumulate(r.streamls.iter_losses), lw=1.2, label=r.dataset)
    raw.set(yscale="log", ylim=(None, 3.0), xlabel="iteration", ylabel="train MSE (standardised)",
            title="streamls: realised loss of each iterate (clipped at 3)")
    best.set(yscale="log", ylim=(None, 1.05), xlabel="iteration", ylabel="train MSE (standardised)",
             title="streamls: best loss so far")
    best.legend(fontsize=8, ncol=2)
    paths.append(save(fig, out / "streamls_iterations.png"))
    return paths


def print_claim_check(check: TrainClaimCheck, multiplier: float, clock_name: str) -> None:
    n = check.datasets
    print("\n== paper-claim check (main configuration, real datasets) ==")
    if not n:
        print("no real dataset ran")
        return
    print(f"streamls train MSE below the best gradient method at equal time ({clock_name} clock): {check.wins_equal_time} of {n}")
    print(f"streamls train MSE below the best gradient method within {multiplier:g}x its time: {check.wins_budget} of {n}")
    print(f"median (time best gradient method needs to reach streamls' loss) / (streamls time), never = {multiplier:g}: "
          f"{check.median_reach_ratio:.2f}")
    print(f"median iteration at which streamls got within 1% of its best: {check.median_within_1pct_iteration}")
    print("dataset: streamls train/test | best gradient @T train/test | @budget train/test")
    for name, v in check.per_dataset.items():
        print(f"  {name}: {fmt(v.streamls_train)}/{fmt(v.streamls_test)} | {fmt(v.equal_time_train)}/"
              f"{fmt(v.equal_time_test)} | {fmt(v.budget_train)}/{fmt(v.budget_test)}")


def print_test_claim_check(check: TestClaimCheck, multiplier: float, clock_name: str) -> None:
    n = check.datasets
    print("\n== test claim check (main configuration, real datasets; streamls defaults against early-stopped "
          "gradient methods) ==")
    if not n:
        print("no real dataset ran the test comparison")
        return
    verdict = {None: "undecided: not every real dataset ran", True: "met", False: "missed"}[check.passed]
    print(f"streamls test MSE at or below the best early-stopped gradient method at equal time ({clock_name} clock): "
          f"{check.at_or_below_equal_time} of {n}")
    print(f"streamls test MSE at or below the best early-stopped gradient method within {multiplier:g}x its time: "
          f"{check.at_or_below_budget} of {n} (target {check.target}: {verdict})")
    print("dataset: streamls default test (T_d s; chosen l2 output, hidden) | early-stopped gradient test @T_d | "
          "@budget (method, at s)")
    for name, v in check.per_dataset.items():
        print(f"  {name}: {fmt(v.streamls_test)} ({v.streamls_seconds:.2f} s; {fmt(v.l2_output)}, {fmt(v.l2_hidden)}) | "
              f"{fmt(v.equal_time_test)} | {fmt(v.budget_test)} ({v.budget_method}, {v.budget_seconds:.2f} s)")


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick", help="a few minutes (default)")
    mode.add_argument("--full", action="store_const", dest="mode", const="full", help="the documented full run")
    parser.add_argument("--datasets", help="comma-separated subset of the mode's datasets")
    parser.add_argument("--main-only", action="store_true",
                        help="only the main configuration (what the claim checks count), not the h/alpha grid")
    parser.add_argument("--max-train-rows", type=int, help="override the mode's training-row cap (0: no cap)")
    parser.add_argument("--multiplier", type=float, default=10.0, help="gradient budget in units of streamls' time")
    parser.add_argument("--continue-top", type=int, default=2, help="candidates continued from T to the budget")
    parser.add_argument("--patience", type=int, default=20,
                        help="early-stopped race: stop a candidate after this many evaluations without a lower "
                             "validation MSE (0: never)")
    parser.add_argument("--max-iter", type=int, default=100, help="streamls max_iter (default stopping rule otherwise)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads for every method")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time budgets in process CPU seconds (default; robust on a shared machine) or wall seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild table, plots and claim checks from OUT/results.json without training")
    parser.add_argument("--merge", nargs="+", metavar="DIR",
                        help="combine the results.json of runs split by --datasets into OUT (no training)")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/compare-MODE)")
    args = parser.parse_args(argv)
    args.mode = args.mode or "quick"
    return args


def write_report(results: list[ConfigResult], meta: dict[str, Any], out: Path, final: bool) -> dict[str, Any]:
    """results.json (rewritten after every configuration, so a stopped run keeps its results),
    then at the end table.md, the plots and the printed claim checks."""
    check, test_check = claim_check(results), test_claim_check(results)
    report = {"meta": meta, "claim_check": asdict(check), "test_claim_check": asdict(test_check),
              "summary": [asdict(r.summary()) for r in results], "results": [asdict(r) for r in results]}
    (out / "results.json").write_text(json.dumps(report, indent=1, default=float))
    if final:
        order = [*REAL_DATASETS, "synthetic"]
        results = sorted(results, key=lambda r: (not r.main, order.index(r.dataset) if r.dataset in order else len(order), r.h, r.alpha))
        clock_name = meta["args"].get("clock", "cpu")
        multiplier = results[0].multiplier if results else 10.0
        per_method = "Training MSE at T / within the budget, best learning rate of each method:\n\n" + method_table(results)
        tests = ("Test MSE: streamls with its defaults against gradient methods early-stopped on the same validation "
                 "rows:\n\n" + test_table(results))
        (out / "table.md").write_text(markdown_table(results) + "\n" + per_method + "\n" + tests)
        figures = plot(results, out, clock_name)
        print_claim_check(check, multiplier, clock_name)
        print_test_claim_check(test_check, multiplier, clock_name)
        print(f"\nwrote {out / 'results.json'}, {out / 'table.md'}, " + ", ".join(str(p) for p in figures))
    return report


def gradient_run(fields: dict[str, Any]) -> GradientRun:
    """A GradientRun from its results.json entry."""
    return GradientRun(**{**fields, "curve": [tuple(p) for p in fields["curve"]]})


def load_results(path: Path) -> tuple[list[ConfigResult], dict[str, Any]]:
    """The configurations and metadata of a results.json written by this script (with or without the test comparison)."""
    report = json.loads(path.read_text())
    results = []
    for r in report["results"]:
        s = StreamlsRun(**{**r["streamls"], "curve": [tuple(p) for p in r["streamls"]["curve"]]})
        default = DefaultRun(**r["default"]) if r.get("default") else None
        results.append(ConfigResult(**{
            **r, "streamls": s, "gradient": [gradient_run(g) for g in r["gradient"]], "default": default,
            "early_stopped": [gradient_run(g) for g in r.get("early_stopped", [])],
        }))
    return results, report["meta"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = args.out or REPO / "benchmarks" / "results" / f"compare-{args.mode}"
    if args.report_only or args.merge:
        loaded = [load_results(Path(d) / "results.json") for d in (args.merge or [out])]
        # A configuration run by more than one merged run counts once, from the first.
        unique: dict[tuple[str, int, float], ConfigResult] = {}
        for rs, _ in loaded:
            for r in rs:
                unique.setdefault((r.dataset, r.h, r.alpha), r)
        results, meta = list(unique.values()), loaded[0][1]
        if args.merge:
            meta = {**meta, "merged_from": [str(d) for d in args.merge]}
            out.mkdir(parents=True, exist_ok=True)
        return write_report(results, meta, out, final=True)
    import sklearn
    import torch  # the bench extra; imported here so the module imports without it

    torch.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(args.threads)
    plan = PLANS[args.mode]
    if args.max_train_rows is not None:
        plan = Plan(plan.datasets, plan.main, plan.grid, plan.grid_datasets, args.max_train_rows or None, plan.synthetic_rows)
    settings = Settings(args.max_iter, args.multiplier, args.continue_top, args.patience, args.seed, Clock.named(args.clock))
    wanted = set(args.datasets.split(",")) if args.datasets else None
    workdir = out / "data"
    workdir.mkdir(parents=True, exist_ok=True)
    machine = machine_info(torch=torch.__version__, sklearn=sklearn.__version__, cpu_count=os.cpu_count(), threads=args.threads)
    meta = {"mode": args.mode, "args": {k: str(v) for k, v in vars(args).items()}, "plan": asdict(plan),
            "machine": machine, "adam_lrs": ADAM_LRS, "sgd_lrs": SGD_LRS, "batch_size": BATCH_SIZE,
            "pinned_options": PINNED_OPTIONS, "validation_fraction": DEFAULT_VALIDATION,
            "synthetic": asdict(SYNTHETIC)}
    results: list[ConfigResult] = []
    splits: dict[str, tuple[Split, bool] | None] = {}
    started = time.perf_counter()
    with threadpool_limits(args.threads):
        for name, h, alpha, is_main in planned_configs(plan):
            if (wanted is not None and name not in wanted) or (args.main_only and not is_main):
                continue
            if name not in splits:
                splits[name] = load_split(name, plan, args.seed)
            if splits[name] is None:
                continue
            split, real = splits[name]
            results.append(run_config(split, real, is_main, h, alpha, settings, workdir))
            print(json.dumps({"benchmark": "compare", **asdict(results[-1].summary())}), flush=True)
            meta["elapsed_wall_seconds"] = time.perf_counter() - started
            write_report(results, meta, out, final=False)
    return write_report(results, meta, out, final=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
