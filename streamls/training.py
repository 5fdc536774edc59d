"""The training loop: one pass per iteration, then the two ridge half-steps.

Iteration ``t`` reads the data once with model ``t`` (hidden weights ``W_t``, output
weights ``B_t``). That pass yields model ``t``'s realised loss and every statistic both
half-steps need, so the solves give model ``t + 1`` without another read (METHOD.md).
History record ``t`` describes model ``t``: its realised losses come from pass ``t``,
its predicted loss and solver diagnostics from the solves that produced it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .backends import Backend, make_backend
from .errors import NumericalError, SourceFormatError, parameter_error
from .initialization import anchor_candidates, initial_weights
from .model import TwoLayerModel
from .hyperparameters import TrainConfig
from .solvers import hidden_loss, output_loss, rebalance, solve_hidden_layer, solve_output_layer
from .sources import Dataset
from .stats import Holdout, MomentsRequest, PassStatistics, Standardizer, StatisticsRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IterationRecord:
    """Diagnostics of model ``iteration`` (0: the initial model).

    Losses are mean squared errors in standardised target units (mean over rows and
    outputs); ``nan`` where not defined (no validation rows; no solve for iteration 0).
    """

    iteration: int
    train_loss: float
    val_loss: float
    predicted_loss: float
    output_loss: float
    logdet: float
    condition: float
    dead_neurons: int
    flip_fraction: float
    seconds: float
    rows_per_second: float
    warning: str | None = None
    damping: float = math.nan


@dataclass(frozen=True)
class SolveOutcome:
    """What the solves that produced a model tell about it, before its pass measures it."""

    predicted_loss: float = math.nan
    output_loss: float = math.nan
    logdet: float = math.nan
    condition: float = math.nan
    warning: str | None = None
    seconds: float = 0.0
    damping: float = math.nan


@dataclass(frozen=True)
class TrainState:
    """Everything needed to continue training: what a checkpoint holds.

    Attributes
    ----------
    iteration : int
        Index of the current model (number of solves done).
    W : numpy.ndarray, shape (h, d + 1)
    B : numpy.ndarray, shape (h + 1, k)
    W_prev : numpy.ndarray or None
        The previous model's hidden weights, to measure pattern flips.
    solve : SolveOutcome
        Diagnostics of the solves that produced the current model.
    history : list of IterationRecord
        Records of models ``0 .. iteration - 1``.
    best_iteration : int
    best_W, best_B : numpy.ndarray or None
    standardizer : Standardizer
    """

    iteration: int
    W: np.ndarray
    B: np.ndarray
    W_prev: np.ndarray | None
    solve: SolveOutcome
    history: tuple[IterationRecord, ...]
    best_iteration: int
    best_W: np.ndarray | None
    best_B: np.ndarray | None
    standardizer: Standardizer


@dataclass
class TrainResult:
    """The outcome of :func:`fit`.

    Attributes
    ----------
    model : TwoLayerModel
        The best iterate (lowest validation loss if there are validation rows, else
        lowest training loss).
    history : list of IterationRecord
    best_iteration : int
    stop_reason : str
    n_train, n_validation, dropped_rows : int
        Rows used for training, held out, and skipped for NaN/Inf.
    """

    model: TwoLayerModel
    history: list[IterationRecord]
    best_iteration: int
    stop_reason: str
    n_train: int
    n_validation: int
    dropped_rows: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_iter(self) -> int:
        """Solves performed."""
        return self.history[-1].iteration if self.history else 0

    def history_table(self) -> dict[str, np.ndarray]:
        """The history as columns, ``{field: array of shape (n_records,)}``."""
        rows = [asdict(r) for r in self.history]
        return {key: np.array([row[key] for row in rows]) for key in rows[0]} if rows else {}


def monitored_losses(history: Sequence[IterationRecord]) -> list[float]:
    """The loss the stopping rule and best-iterate choice watch: validation if present."""
    use_val = bool(history) and not math.isnan(history[0].val_loss)
    return [r.val_loss if use_val else r.train_loss for r in history]


def stop_reason(losses: Sequence[float], tol: float, window: int) -> str | None:
    """Why to stop after these losses, or ``None`` to go on.

    Stops when the best of the last ``window`` losses improves on the best before them
    by no more than ``tol`` relatively (so a loss stuck at 0 stops too). The realised
    loss is not monotone, so single-step changes would stop too early.
    """
    if tol <= 0 or len(losses) <= window:
        return None
    before, recent = min(losses[:-window]), min(losses[-window:])
    if before - recent <= tol * abs(before):
        return f"relative improvement below tol={tol:g} over the last {window} iterations"
    return None


#: Adaptive damping: the factor after a rise of the realised loss, after a fall, and the
#: range relative to the initial damping. A rise means the fixed-pattern step was too
#: long for the pattern it assumed; steady falls let the damping fade to plain ALS steps.
DAMPING_UP, DAMPING_DOWN, DAMPING_RANGE = 4.0, 0.5, (1e-2, 1e5)


def next_damping(previous: float, train_losses: Sequence[float], initial: float) -> float:
    """Damping of the next hidden solve, from the last one and the realised losses.

    Quadrupled when the last model's training loss rose above the one before, halved when
    it fell, kept within ``initial * DAMPING_RANGE``; ``initial`` for the first solve.
    """
    if initial == 0 or math.isnan(previous) or len(train_losses) < 2:
        return initial
    factor = DAMPING_UP if train_losses[-1] > train_losses[-2] else DAMPING_DOWN
    low, high = DAMPING_RANGE
    return float(min(max(previous * factor, initial * low), initial * high))


class Trainer:
    """Alternating least squares on a fixed activation pattern, over any backend.

    Parameters
    ----------
    dataset : Dataset
    config : TrainConfig
    backend : Backend
    callback : callable, optional
        Called as ``callback(state, record)`` after every iteration's solves, with the
        state a resumed run would start from; the CLI writes checkpoints there.
    """

    def __init__(
        self,
        dataset: Dataset,
        config: TrainConfig,
        backend: Backend,
        callback: Callable[[TrainState, IterationRecord], None] | None = None,
    ) -> None:
        self.dataset = dataset
        self.config = config
        self.backend = backend
        self.callback = callback
        self.holdout = Holdout(config.validation_fraction, config.random_state or 0)
        self.rows_read = 0

    def initial_state(self, init: TwoLayerModel | None = None) -> TrainState:
        """The state before the first pass: from ``init`` (warm start) or a moments pass.

        A warm start keeps the model's standardisation, so its weights stay valid and
        the moments pass is skipped.
        """
        cfg, k = self.config, self.dataset.n_targets
        if init is not None:
            self._check_init(init)
            return self._fresh_state(init.W.copy(), init.B.copy(), init.standardizer)
        rng = np.random.default_rng(cfg.random_state)
        candidates = anchor_candidates(self.dataset.n_rows, cfg.hidden_units, rng)
        moments = self.backend.run(self.dataset, MomentsRequest(self.holdout, candidates))
        self.rows_read += self.dataset.n_rows
        if moments.x.n == 0:
            raise SourceFormatError(
                f"{self.dataset.name}: no training rows left after dropping {moments.dropped} rows holding NaN/Inf "
                f"and holding out {moments.n_validation} validation rows"
            )
        standardizer = Standardizer.from_moments(moments)
        W = initial_weights(standardizer.inputs(moments.anchors()), cfg.hidden_units, rng)
        return self._fresh_state(W, np.zeros((cfg.hidden_units + 1, k)), standardizer)

    def _fresh_state(self, W: np.ndarray, B: np.ndarray, standardizer: Standardizer) -> TrainState:
        return TrainState(0, W, B, None, SolveOutcome(), (), 0, None, None, standardizer)

    def _check_init(self, init: TwoLayerModel) -> None:
        expected = (self.config.hidden_units, self.dataset.n_features, self.dataset.n_targets, self.config.alpha)
        found = (init.hidden_units, init.n_features, init.n_targets, init.alpha)
        if expected != found:
            raise parameter_error(
                "fit", "init", f"a model with (hidden_units, n_features, n_targets, alpha) = {expected}", found
            )

    def run(self, state: TrainState) -> TrainResult:
        """Iterate from ``state`` until the stopping rule or ``max_iter``; return the best model."""
        cfg = self.config
        while True:
            final_pass = state.iteration >= cfg.max_iter
            stats, seconds = self._pass(state, hidden=not final_pass)
            state = self._recorded(state, stats, seconds)
            reason = "max_iter reached" if final_pass else stop_reason(monitored_losses(state.history), cfg.tol, cfg.n_iter_no_change)
            if reason:
                return self._result(state, stats, reason)
            state = self._solved(state, stats)
            del stats  # the next pass builds new matrices; do not hold two sets at once
            if self.callback is not None:
                self.callback(state, state.history[-1])

    def _pass(self, state: TrainState, hidden: bool) -> tuple[PassStatistics, float]:
        request = StatisticsRequest(
            state.standardizer, state.W, state.B, self.config.alpha, self.holdout, state.W_prev, hidden
        )
        start = time.perf_counter()
        stats = self.backend.run(self.dataset, request)
        self.rows_read += self.dataset.n_rows
        return stats, time.perf_counter() - start

    def _recorded(self, state: TrainState, stats: PassStatistics, pass_seconds: float) -> TrainState:
        """Complete model ``state.iteration``'s record with its pass and track the best."""
        k, h = self.dataset.n_targets, self.config.hidden_units
        n = max(stats.n, 1)
        solve = state.solve
        record = IterationRecord(
            iteration=state.iteration,
            train_loss=float(stats.sse.sum() / (n * k)),
            val_loss=float(stats.val_sse.sum() / (stats.n_val * k)) if stats.n_val else math.nan,
            predicted_loss=solve.predicted_loss,
            output_loss=solve.output_loss,
            logdet=solve.logdet,
            condition=solve.condition,
            dead_neurons=int((stats.active == 0).sum()),
            flip_fraction=stats.flips / (n * h) if state.W_prev is not None else math.nan,
            seconds=solve.seconds + pass_seconds,
            rows_per_second=self.dataset.n_rows / pass_seconds if pass_seconds > 0 else math.inf,
            warning=solve.warning,
            damping=solve.damping,
        )
        if not math.isfinite(record.train_loss):
            raise NumericalError(f"iteration {state.iteration}: training loss is {record.train_loss}; weights diverged")
        logger.info(
            "iteration %d: train %.6g val %.6g predicted %.6g flips %.4g logdet %.6g (%.2fs, %.3g rows/s)",
            record.iteration, record.train_loss, record.val_loss, record.predicted_loss,
            record.flip_fraction, record.logdet, record.seconds, record.rows_per_second,
        )
        if record.warning:
            logger.warning("iteration %d: %s", record.iteration, record.warning)
        history = (*state.history, record)
        losses = monitored_losses(history)
        if state.best_W is None or losses[-1] < losses[state.best_iteration]:
            return replace(state, history=history, best_iteration=state.iteration, best_W=state.W, best_B=state.B)
        return replace(state, history=history)

    def _solved(self, state: TrainState, stats: PassStatistics) -> TrainState:
        """Both half-steps from one pass's statistics: the next model."""
        assert stats.P is not None and stats.Q is not None and stats.s is not None
        start = time.perf_counter()
        l2, n, k = self.config.l2, max(stats.n, 1), self.dataset.n_targets
        B, out_report = solve_output_layer(stats.G, stats.C, l2)
        damping = next_damping(state.solve.damping, [r.train_loss for r in state.history], self.config.damping)
        W, hid_report, M, r = solve_hidden_layer(stats.P, stats.Q, stats.s, B, l2, damping, state.W)
        predicted = hidden_loss(M, r, W.ravel(), stats.sum_y, stats.sum_yy, stats.n, B[-1])
        W, V = rebalance(W, B[:-1])
        warnings = [w for w in (out_report.warning, hid_report.warning) if w]
        solve = SolveOutcome(
            predicted_loss=predicted / (n * k),
            output_loss=output_loss(stats.G, stats.C, stats.sum_yy, B) / (n * k),
            logdet=hid_report.logdet,
            condition=hid_report.condition,
            warning="; ".join(warnings) or None,
            seconds=time.perf_counter() - start,
            damping=damping,
        )
        return replace(state, iteration=state.iteration + 1, W=W, B=np.vstack([V, B[-1:]]), W_prev=state.W, solve=solve)

    def _result(self, state: TrainState, stats: PassStatistics, reason: str) -> TrainResult:
        assert state.best_W is not None and state.best_B is not None
        cfg = self.config
        model = TwoLayerModel(
            W=state.best_W,
            B=state.best_B,
            alpha=cfg.alpha,
            standardizer=state.standardizer,
            target_is_1d=self.dataset.target_is_1d,
            hyperparameters=asdict(cfg),
            history=[asdict(r) for r in state.history],
            info={
                "data": self.dataset.name,
                "n_rows": self.dataset.n_rows,
                "n_features": self.dataset.n_features,
                "n_targets": self.dataset.n_targets,
                "n_train": stats.n,
                "n_validation": stats.n_val,
                "dropped_rows": stats.dropped,
                "best_iteration": state.best_iteration,
                "stop_reason": reason,
            },
        )
        logger.info("stopped: %s; best iteration %d", reason, state.best_iteration)
        return TrainResult(
            model, list(state.history), state.best_iteration, reason, stats.n, stats.n_val, stats.dropped,
            {"rows_read": self.rows_read},
        )
