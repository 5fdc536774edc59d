"""streamls against gradient-trained networks of the same architecture.

The same two-layer network ``d -> h -> k`` (ReLU, or leaky ReLU with slope ``alpha``) is
trained on the same standardised rows by

- streamls (``streamls.fit`` with its default stopping rule) from an HDF5 file;
- PyTorch Adam and PyTorch SGD with momentum 0.9, streaming mini-batches from the same
  HDF5 file through ``torch.utils.data`` (a ``Dataset`` of h5py batch reads, a
  ``DataLoader`` shuffling the batch order);
- scikit-learn ``MLPRegressor`` (adam and lbfgs) on the rows in memory (ReLU only, so
  these run for ``alpha = 0`` only).

Protocol (per dataset and configuration; see benchmarks/README.md):

1. streamls trains; its time ``T`` (moments pass included; process CPU seconds by
   default, see ``--clock``) sets the clock.
2. Every gradient candidate (each optimiser and learning rate) trains for ``T`` seconds:
   the equal-time comparison.
3. The ``--continue-top`` candidates with the lowest training loss at ``T`` go on until
   ``multiplier * T`` (default 10 T): the budget comparison. Only the training clock
   counts; the full-train-set evaluations in between are excluded from it.

Losses are mean squared errors of the standardised target (train-split mean and scale
applied to both splits), on the whole training or test split. Each result is printed as
one JSON line; the run writes results.json, table.md and PNG plots to ``--out``.

Run ``python benchmarks/compare.py --quick`` (a few minutes) or ``--full``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from peers import Learner, TorchLearner, mse
from threadpoolctl import threadpool_limits

import streamls
from streamls.split import row_uniforms

REPO = Path(__file__).resolve().parents[1]
UCI_DIR = REPO.parent / "shared" / "data" / "uci"
REAL_DATASETS = ("protein", "kin40k", "elevators", "pol", "bike", "airfoil", "concrete")
TEST_FRACTION = 0.2
BATCH_SIZE = 64
ADAM_LRS = (1e-3, 1e-2)
SGD_LRS = (3e-3, 3e-2)
LBFGS_CHUNK = 10
EARLY_FRACTIONS = (0.01, 0.02, 0.05)
EVALS_PER_T = 10
# An evaluation lands on the first step boundary at or after its scheduled time; one
# that late by at most this fraction still counts as "at" that time.
OVERSHOOT = 0.05
# The clock of every budget: CPU seconds of this process by default (set by --clock).
# The machine this ran on is shared, and CPU time does not count other jobs' turns;
# on an idle machine with one thread it equals wall time.
CLOCK: Callable[[], float] = time.process_time
CLOCK_NAME = "cpu"


# ----------------------------------------------------------------------------- data


@dataclass
class Split:
    """A dataset's standardised train and test rows.

    Attributes
    ----------
    name : str
    x_train : numpy.ndarray of float32, shape (n_train, d)
    y_train : numpy.ndarray of float32, shape (n_train, 1)
    x_test, y_test : numpy.ndarray of float32, shapes (n_test, d), (n_test, 1)
    n_rows : int
        Rows in the source before the split and any subsampling.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_rows: int


def load_uci(name: str) -> np.ndarray | None:
    """The table ``../shared/data/uci/NAME.csv.gz`` (last column the target), or None if absent."""
    path = UCI_DIR / f"{name}.csv.gz"
    if not path.exists():
        return None
    with gzip.open(path, "rt") as handle:
        return np.loadtxt(handle, delimiter=",", ndmin=2)


def teacher_table(n: int, d: int = 10, h: int = 20, noise: float = 0.1, seed: int = 7) -> np.ndarray:
    """Rows of a random two-layer ReLU teacher plus Gaussian noise, shape (n, d + 1)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    W = rng.standard_normal((d, h)) / math.sqrt(d)
    b = 0.5 * rng.standard_normal(h)
    v = rng.standard_normal(h) / math.sqrt(h)
    y = np.maximum(x @ W + b, 0.0) @ v
    y += noise * y.std() * rng.standard_normal(n)
    return np.column_stack([x, y])


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


def write_training_file(split: Split, path: Path, seed: int) -> None:
    """The training rows, in one random row order, as ``path:/X`` (n, d) and ``path:/y`` (n,).

    Both streamls and the PyTorch loaders read this file; the shuffle once at write time
    lets the loaders read contiguous batches that are still random samples.
    """
    order = np.random.default_rng(seed).permutation(len(split.x_train))
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=split.x_train[order])
        handle.create_dataset("y", data=split.y_train[order, 0])


# ----------------------------------------------------------------------------- runs


@dataclass
class StreamlsRun:
    """streamls' outcome on one configuration.

    ``seconds`` is on ``CLOCK`` (the budget's unit), ``wall_seconds`` wall time.
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
class GradientRun:
    """One gradient-trained candidate: optimiser, learning rate and its loss curve.

    ``curve`` holds ``(train_clock_seconds, train_mse, test_mse)`` at each evaluation.
    """

    method: str
    lr: float | None
    continued: bool = False
    steps: int = 0
    epochs: float = 0.0
    train_seconds: float = 0.0
    stopped: str = ""
    curve: list[tuple[float, float, float]] = field(default_factory=list)

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


def run_streamls(path: Path, split: Split, h: int, alpha: float, max_iter: int, seed: int) -> StreamlsRun:
    """``streamls.fit`` on the training file with its default stopping rule, timed by ``CLOCK``.

    The fit callback stamps the clock after every iteration's solves, so the curve's times
    include the moments pass, every data pass and every solve.
    """
    stamps: list[float] = []
    wall, start = time.perf_counter(), CLOCK()
    result = streamls.fit(
        f"{path}:/X", f"{path}:/y", hidden_units=h, alpha=alpha, max_iter=max_iter, random_state=seed,
        callback=lambda state, record: stamps.append(CLOCK() - start),
    )
    seconds = CLOCK() - start
    wall = time.perf_counter() - wall
    model = result.model
    # History losses are in streamls' own standardised units; its scale of our already
    # standardised target is ~1, and this factor makes the units identical.
    unit = float(np.mean(model.standardizer.y_scale**2))
    losses = [r.train_loss * unit for r in result.history]
    times = [*stamps, seconds][: len(losses)]
    best = min(losses)
    return StreamlsRun(
        seconds=seconds,
        wall_seconds=wall,
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


class SklearnLearner(Learner):
    """scikit-learn ``MLPRegressor`` (ReLU) on in-memory rows: an adam epoch or an L-BFGS chunk per step."""

    def __init__(self, split: Split, h: int, solver: str, seed: int) -> None:
        from sklearn.neural_network import MLPRegressor

        self.x, self.y = split.x_train, split.y_train[:, 0]
        self.solver = solver
        chunk = {"max_iter": LBFGS_CHUNK, "warm_start": True} if solver == "lbfgs" else {"batch_size": BATCH_SIZE}
        # alpha here is sklearn's L2 penalty, off like streamls' near-zero ridge.
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


def advance(learner: Learner, run: GradientRun, split: Split, budget: float, schedule: list[float]) -> None:
    """Train until the training clock reaches ``budget``, evaluating at ``schedule`` points.

    The clock counts only training steps (data loading included); evaluations of the
    whole train and test split are excluded. A point is recorded at the first step
    boundary at or past each scheduled time, and at the end.
    """
    if not run.curve:
        run.curve.append((0.0, learner.mse(split.x_train, split.y_train), learner.mse(split.x_test, split.y_test)))
    pending = [t for t in schedule if run.train_seconds < t <= budget]
    clock = run.train_seconds
    while clock < budget and not run.stopped:
        start = CLOCK()
        ok = learner.step()
        clock += CLOCK() - start
        if not ok:
            run.stopped = "converged" if isinstance(learner, SklearnLearner) and learner.solver == "lbfgs" else "diverged"
        if (pending and clock >= pending[0]) or clock >= budget or run.stopped:
            while pending and clock >= pending[0]:
                pending.pop(0)
            run.curve.append((clock, learner.mse(split.x_train, split.y_train), learner.mse(split.x_test, split.y_test)))
    run.train_seconds, run.epochs = clock, learner.epochs
    run.steps = getattr(learner, "steps", 0)


def candidates(path: Path, split: Split, h: int, alpha: float, seed: int) -> list[tuple[GradientRun, Callable[[], Learner]]]:
    """Every gradient candidate and a factory building its learner."""
    d, k = split.x_train.shape[1], split.y_train.shape[1]
    out: list[tuple[GradientRun, Callable[[], Learner]]] = []
    for optimizer, lrs in (("torch-adam", ADAM_LRS), ("torch-sgd", SGD_LRS)):
        for lr in lrs:
            name = optimizer.split("-")[1]
            out.append((GradientRun(optimizer, lr),
                        lambda name=name, lr=lr: TorchLearner(path, d, k, h, alpha, name, lr, seed, batch_size=BATCH_SIZE)))
    if alpha == 0:  # MLPRegressor has no leaky ReLU
        out.append((GradientRun("sklearn-adam", 1e-3), lambda: SklearnLearner(split, h, "adam", seed)))
        out.append((GradientRun("sklearn-lbfgs", None), lambda: SklearnLearner(split, h, "lbfgs", seed)))
    return out


def race(path: Path, split: Split, h: int, alpha: float, T: float, multiplier: float, top: int, seed: int) -> list[GradientRun]:
    """All candidates to T, then the ``top`` best at T on to ``multiplier * T``."""
    schedule = eval_schedule(T, multiplier)
    entries = [(run, factory()) for run, factory in candidates(path, split, h, alpha, seed)]
    for run, learner in entries:
        advance(learner, run, split, T, schedule)
    ranked = sorted(entries, key=lambda e: e[0].best_by(math.inf)[0])
    for run, learner in ranked[:top]:
        run.continued = True
        advance(learner, run, split, multiplier * T, schedule)
    return [run for run, _ in entries]


# ----------------------------------------------------------------------------- one configuration


@dataclass
class ConfigResult:
    """Everything measured on one (dataset, h, alpha)."""

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

    def best_at(self, seconds: float) -> tuple[GradientRun, float, float]:
        """The gradient candidate with the lowest training MSE by ``seconds``: (run, train, test)."""
        scored = [(run, *run.best_by(seconds)) for run in self.gradient]
        return min(scored, key=lambda s: s[1])

    def summary(self) -> dict[str, Any]:
        """The figures of the table and the claim check."""
        T, s = self.streamls.seconds, self.streamls
        eq_run, eq_train, eq_test = self.best_at(T)
        bud_run, bud_train, bud_test = self.best_at(self.multiplier * T)
        reach = [t for run in self.gradient if (t := run.time_to_reach(s.train_mse)) is not None]
        reach_ratio = min(min(reach) / T, self.multiplier) if reach else self.multiplier
        return {
            "dataset": self.dataset, "h": self.h, "alpha": self.alpha, "n_train": self.n_train, "d": self.d,
            "streamls_seconds": T, "streamls_iterations": s.n_iter, "streamls_best_iteration": s.best_iteration,
            "streamls_within_1pct_iteration": s.within_1pct_iteration,
            "streamls_train": s.train_mse, "streamls_test": s.test_mse,
            "equal_time_method": eq_run.label, "equal_time_train": eq_train, "equal_time_test": eq_test,
            "budget_method": bud_run.label, "budget_train": bud_train, "budget_test": bud_test,
            "wins_equal_time": s.train_mse < eq_train, "wins_budget": s.train_mse < bud_train,
            "reach_ratio": reach_ratio, "reached": bool(reach) and min(reach) <= self.multiplier * T,
        }


def run_config(split: Split, real: bool, main: bool, h: int, alpha: float, args: argparse.Namespace, workdir: Path) -> ConfigResult:
    path = workdir / f"{split.name}-train.h5"
    if not path.exists():
        write_training_file(split, path, args.seed)
    s = run_streamls(path, split, h, alpha, args.max_iter, args.seed)
    gradient = race(path, split, h, alpha, s.seconds, args.multiplier, args.continue_top, args.seed)
    return ConfigResult(
        split.name, real, main, h, alpha, split.n_rows, len(split.x_train), len(split.x_test), split.x_train.shape[1],
        args.multiplier, s, gradient,
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
    table = load_uci(name)
    if table is None:
        print(f"skipping {name}: {UCI_DIR / (name + '.csv.gz')} not found", file=sys.stderr)
        return None
    return standardised_split(name, table, plan.max_train_rows, seed), True


# ----------------------------------------------------------------------------- report


def machine_info(threads: int) -> dict[str, Any]:
    """Versions and hardware of this run."""
    import sklearn
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as handle:
        cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    return {
        "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
        "sklearn": sklearn.__version__, "h5py": h5py.__version__, "streamls": streamls.__version__,
        "cpu": cpu, "cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform(),
    }


def claim_check(results: list[ConfigResult]) -> dict[str, Any]:
    """The paper-claim figures over the main configuration's real datasets."""
    rows = [r.summary() for r in results if r.main and r.real]
    if not rows:
        return {"datasets": 0}
    return {
        "datasets": len(rows),
        "wins_equal_time": sum(r["wins_equal_time"] for r in rows),
        "wins_budget": sum(r["wins_budget"] for r in rows),
        "median_reach_ratio": statistics.median(r["reach_ratio"] for r in rows),
        "median_within_1pct_iteration": statistics.median(r["streamls_within_1pct_iteration"] for r in rows),
        "per_dataset": {
            r["dataset"]: {k: r[k] for k in ("streamls_train", "equal_time_train", "budget_train", "streamls_test",
                                             "equal_time_test", "budget_test", "reach_ratio")}
            for r in rows
        },
    }


def fmt(value: float) -> str:
    return f"{value:.4g}"


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
        never = "" if s["reached"] else " (never)"
        lines.append(
            f"| {s['dataset']} | {s['h']} | {s['alpha']:g} | {s['n_train']} | {s['d']} | {s['streamls_seconds']:.2f} | "
            f"{s['streamls_iterations']} ({s['streamls_best_iteration']}, {s['streamls_within_1pct_iteration']}) | "
            f"{fmt(s['streamls_train'])} / {fmt(s['streamls_test'])} | "
            f"{fmt(s['equal_time_train'])} / {fmt(s['equal_time_test'])} ({s['equal_time_method']}) | "
            f"{fmt(s['budget_train'])} / {fmt(s['budget_test'])} ({s['budget_method']}) | "
            f"{yes(s['wins_equal_time'])}, {yes(s['wins_budget'])} | {s['reach_ratio']:.2f}{never} |"
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


def plot(results: list[ConfigResult], out: Path) -> list[Path]:
    """loss_vs_time.png (one panel per main-configuration dataset) and streamls_iterations.png.

    The time panels draw the best training MSE so far (every method keeps its best
    iterate); the iteration plot draws streamls' realised loss of each iterate.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = [r for r in results if r.main]
    if not main:
        return []
    cols = min(4, len(main))
    rows = -(-len(main) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, r in zip(axes.flat, main):
        t, tr = zip(*r.streamls.curve)
        ax.plot(np.maximum(t, 1e-3), np.minimum.accumulate(tr), color="black", lw=2, label="streamls")
        for method in sorted({g.method for g in r.gradient}):
            best = min((g for g in r.gradient if g.method == method), key=lambda g: g.best_by(math.inf)[0])
            t, tr, _ = zip(*best.curve)
            ax.plot(np.maximum(t, 1e-3), np.minimum.accumulate(tr), lw=1.2, label=best.label)
        ax.axvline(r.streamls.seconds, color="grey", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", title=f"{r.dataset} (h={r.h}, n={r.n_train})", xlabel=f"training seconds ({CLOCK_NAME})")
        ax.set_ylim(top=1.5)
        ax.set_ylabel("train MSE (standardised)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(main):]:
        ax.axis("off")
    fig.tight_layout()
    paths = [out / "loss_vs_time.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, (raw, best) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in main:
        raw.plot(r.streamls.iter_losses, lw=1.2, label=r.dataset)
        best.plot(np.minimum.accumulate(r.streamls.iter_losses), lw=1.2, label=r.dataset)
    raw.set(yscale="log", ylim=(None, 3.0), xlabel="iteration", ylabel="train MSE (standardised)",
            title="streamls: realised loss of each iterate (clipped at 3)")
    best.set(yscale="log", ylim=(None, 1.05), xlabel="iteration", ylabel="train MSE (standardised)",
             title="streamls: best loss so far")
    best.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    paths.append(out / "streamls_iterations.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def print_claim_check(check: dict[str, Any], multiplier: float) -> None:
    n = check["datasets"]
    print("\n== paper-claim check (main configuration, real datasets) ==")
    if not n:
        print("no real dataset ran")
        return
    print(f"streamls train MSE below the best gradient method at equal time ({CLOCK_NAME} clock): {check['wins_equal_time']} of {n}")
    print(f"streamls train MSE below the best gradient method within {multiplier:g}x its time: {check['wins_budget']} of {n}")
    print(f"median (time best gradient method needs to reach streamls' loss) / (streamls time), never = {multiplier:g}: "
          f"{check['median_reach_ratio']:.2f}")
    print(f"median iteration at which streamls got within 1% of its best: {check['median_within_1pct_iteration']}")
    print("dataset: streamls train/test | best gradient @T train/test | @budget train/test")
    for name, v in check["per_dataset"].items():
        print(f"  {name}: {fmt(v['streamls_train'])}/{fmt(v['streamls_test'])} | {fmt(v['equal_time_train'])}/"
              f"{fmt(v['equal_time_test'])} | {fmt(v['budget_train'])}/{fmt(v['budget_test'])}")


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick", help="a few minutes (default)")
    mode.add_argument("--full", action="store_const", dest="mode", const="full", help="the documented full run")
    parser.add_argument("--datasets", help="comma-separated subset of the mode's datasets")
    parser.add_argument("--max-train-rows", type=int, help="override the mode's training-row cap (0: no cap)")
    parser.add_argument("--multiplier", type=float, default=10.0, help="gradient budget in units of streamls' time")
    parser.add_argument("--continue-top", type=int, default=2, help="candidates continued from T to the budget")
    parser.add_argument("--max-iter", type=int, default=100, help="streamls max_iter (default stopping rule otherwise)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads for every method")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time budgets in process CPU seconds (default; robust on a shared machine) or wall seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild table, plots and claim check from OUT/results.json without training")
    parser.add_argument("--merge", nargs="+", metavar="DIR",
                        help="combine the results.json of runs split by --datasets into OUT (no training)")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/compare-MODE)")
    args = parser.parse_args(argv)
    args.mode = args.mode or "quick"
    return args


def write_report(results: list[ConfigResult], meta: dict[str, Any], out: Path, final: bool) -> dict[str, Any]:
    """results.json (rewritten after every configuration, so a stopped run keeps its results),
    then at the end table.md, the plots and the printed claim check."""
    check = claim_check(results)
    report = {"meta": meta, "claim_check": check, "summary": [r.summary() for r in results],
              "results": [asdict(r) for r in results]}
    (out / "results.json").write_text(json.dumps(report, indent=1, default=float))
    if final:
        order = [*REAL_DATASETS, "synthetic"]
        results = sorted(results, key=lambda r: (not r.main, order.index(r.dataset) if r.dataset in order else len(order), r.h, r.alpha))
        per_method = "Training MSE at T / within the budget, best learning rate of each method:\n\n" + method_table(results)
        (out / "table.md").write_text(markdown_table(results) + "\n" + per_method)
        figures = plot(results, out)
        print_claim_check(check, results[0].multiplier if results else 10.0)
        print(f"\nwrote {out / 'results.json'}, {out / 'table.md'}, " + ", ".join(str(p) for p in figures))
    return report


def load_results(path: Path) -> tuple[list[ConfigResult], dict[str, Any]]:
    """The configurations and metadata of a results.json written by this script."""
    report = json.loads(path.read_text())
    results = []
    for r in report["results"]:
        s = StreamlsRun(**{**r["streamls"], "curve": [tuple(p) for p in r["streamls"]["curve"]]})
        g = [GradientRun(**{**run, "curve": [tuple(p) for p in run["curve"]]}) for run in r["gradient"]]
        results.append(ConfigResult(**{**r, "streamls": s, "gradient": g}))
    return results, report["meta"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    global CLOCK, CLOCK_NAME
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    CLOCK_NAME = args.clock
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
        CLOCK_NAME = meta["args"].get("clock", "cpu")
        return write_report(results, meta, out, final=True)
    import torch  # the bench extra; imported here so the module imports without it

    torch.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(args.threads)
    plan = PLANS[args.mode]
    if args.max_train_rows is not None:
        plan = Plan(plan.datasets, plan.main, plan.grid, plan.grid_datasets, args.max_train_rows or None, plan.synthetic_rows)
    wanted = set(args.datasets.split(",")) if args.datasets else None
    workdir = out / "data"
    workdir.mkdir(parents=True, exist_ok=True)
    meta = {"mode": args.mode, "args": {k: str(v) for k, v in vars(args).items()}, "plan": asdict(plan),
            "machine": machine_info(args.threads), "adam_lrs": ADAM_LRS, "sgd_lrs": SGD_LRS, "batch_size": BATCH_SIZE}
    results: list[ConfigResult] = []
    splits: dict[str, tuple[Split, bool] | None] = {}
    started = time.perf_counter()
    with threadpool_limits(args.threads):
        for name, h, alpha, is_main in planned_configs(plan):
            if wanted is not None and name not in wanted:
                continue
            if name not in splits:
                splits[name] = load_split(name, plan, args.seed)
            if splits[name] is None:
                continue
            split, real = splits[name]
            results.append(run_config(split, real, is_main, h, alpha, args, workdir))
            print(json.dumps({"benchmark": "compare", **results[-1].summary()}), flush=True)
            meta["elapsed_wall_seconds"] = time.perf_counter() - started
            write_report(results, meta, out, final=False)
    return write_report(results, meta, out, final=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
