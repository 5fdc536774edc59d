"""The training loop: one pass per iteration over the schedule's rows, then the solver's step.

Iteration ``t`` reads the rows of the current sample stage once with model ``t`` (hidden
weights ``W_t``, output weights ``B_t``): from the in-memory pool when the stage fits it,
else from storage. That pass yields model ``t``'s realised loss and every statistic the
solver strategy needs, so model ``t + 1`` comes without another read (METHOD.md). History
record ``t`` describes model ``t``: its realised losses come from pass ``t``, its predicted
loss and solver diagnostics from the solves that produced it.

Two components decide what the loop does: the :class:`~streamls.schedule.RowSchedule`
(which rows each pass covers, when to grow the sample and when to stop) and the
:class:`~streamls.strategies.SolverStrategy` (how pass statistics become the next model).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .backends import Backend
from .errors import NumericalError, SourceFormatError, parameter_error
from .hyperparameters import TrainConfig
from .initialization import anchor_candidates, initial_weights
from .matrix_free import dense_hidden_solve, preconditioner_share
from .model import TwoLayerModel
from .schedule import MATRIX_FREE_MIN_STAGES, MIN_STAGES, RowSchedule, Stage, monitored_losses
from .sizes import parse_size
from .sources import Dataset
from .state import IterationRecord, SolveOutcome, TrainState
from .stats import Holdout, MomentsRequest, PassStatistics, Standardizer, StatisticsRequest
from .stats.passes import CandidateRequest, PatternRequest, ProductRequest
from .stats.products import CandidateSums, HiddenProducts, kept_dtype
from .stats.sample import POOL_BUILD_COPIES, POOLED_ROW_OVERHEAD, Sample
from .strategies import AlternatingRidge, SolverStrategy
from .summary import FitSummary

__all__ = ["IterationRecord", "SolveOutcome", "TrainResult", "TrainState", "Trainer", "default_pool_budget"]

logger = logging.getLogger(__name__)

#: Share of the memory available at the start that the sample pool may fill by default.
DEFAULT_POOL_SHARE = 0.25
#: Iterations each start of a race (``n_init > 1``) trains on the first stage before the
#: lowest loss is kept. Measured on airfoil and concrete (four seeds each): after 10
#: iterations the order of the starts' losses was unrelated to their final test error;
#: after 25 it picked the start with the lowest final test error on both.
RACE_ITERATIONS = 25


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`fit`.

    The counts and the stop reason are those of the model's :class:`~streamls.summary.FitSummary`
    (``summary``), which the model keeps and saves.

    Attributes
    ----------
    model : TwoLayerModel
        The best iterate (lowest validation loss if there are validation rows, else
        lowest training loss).
    history : list of IterationRecord
    """

    model: TwoLayerModel
    history: list[IterationRecord]

    @property
    def summary(self) -> FitSummary:
        """What the fit reported (the model's :attr:`~streamls.TwoLayerModel.summary`)."""
        return self.model.summary

    @property
    def best_iteration(self) -> int:
        """Iteration of the model kept."""
        return self.summary.best_iteration

    @property
    def stop_reason(self) -> str:
        """Why training stopped."""
        return self.summary.stop_reason

    @property
    def n_train(self) -> int:
        """Rows used for training (by the last pass)."""
        return self.summary.n_train

    @property
    def n_validation(self) -> int:
        """Rows held out for validation."""
        return self.summary.n_validation

    @property
    def dropped_rows(self) -> int:
        """Rows skipped for holding NaN/Inf."""
        return self.summary.dropped_rows

    @property
    def n_iter(self) -> int:
        """Solves performed."""
        return self.history[-1].iteration if self.history else 0

    def history_table(self) -> dict[str, np.ndarray]:
        """The history as columns, ``{field: array of shape (n_records,)}``."""
        rows = [asdict(r) for r in self.history]
        return {key: np.array([row[key] for row in rows]) for key in rows[0]} if rows else {}


def default_pool_budget() -> int:
    """Bytes the sample pool may hold by default: :data:`DEFAULT_POOL_SHARE` of available memory.

    Available memory is ``MemAvailable`` of ``/proc/meminfo`` (what can be had without
    swapping), else physical memory.
    """
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(DEFAULT_POOL_SHARE * int(line.split()[1]) * 1024)
    except OSError:
        pass
    return int(DEFAULT_POOL_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def loss_estimate(sum_e: float, sum_e2: float, n: int, k: int) -> tuple[float, float]:
    """Mean loss and its standard error from per-row squared errors ``e_i = sum_c r_ic^2``.

    Parameters
    ----------
    sum_e, sum_e2 : float
        ``sum e_i`` and ``sum e_i^2`` over ``n`` rows.
    n, k : int
        Rows and outputs.

    Returns
    -------
    loss, se : float
        ``sum e_i / (n k)`` and ``sd(e_i) / (k sqrt(n))``; ``nan`` without rows.
    """
    if n <= 0:
        return math.nan, math.nan
    mean = sum_e / n
    variance = max(sum_e2 / n - mean**2, 0.0)
    return mean / k, math.sqrt(variance / n) / k


def fresh_gap(stats: PassStatistics, k: int) -> tuple[float, float]:
    """Loss of the rows new at this stage minus that of the rows fitted before, and its standard error."""
    seen_n = stats.n - stats.fresh_n
    if stats.fresh_n == 0 or seen_n <= 0:
        return math.nan, math.nan
    fresh, fresh_se = loss_estimate(stats.fresh_sse, stats.fresh_sse_sq, stats.fresh_n, k)
    seen, seen_se = loss_estimate(float(stats.sse.sum()) - stats.fresh_sse, stats.sse_sq - stats.fresh_sse_sq, seen_n, k)
    return fresh - seen, math.hypot(fresh_se, seen_se)


def pooled_row_bytes(dataset: Dataset) -> int:
    """Bytes one row takes in the sample pool: its stored values, index and rank."""
    x_item = dataset.x_source.dtype.itemsize
    y_item = x_item if dataset.y_source is None else dataset.y_source.dtype.itemsize
    return dataset.n_features * x_item + dataset.n_targets * y_item + POOLED_ROW_OVERHEAD


class Trainer:
    """Alternating least squares on a fixed activation pattern, over any backend and row schedule.

    Parameters
    ----------
    dataset : Dataset
    config : TrainConfig
    backend : Backend
    callback : callable, optional
        Called as ``callback(state, record)`` after every iteration's solves, with the
        state a resumed run would start from; the CLI writes checkpoints there. During a
        race of starts it sees every start's iterations too, with ``state.race_start`` set
        (no state to resume from); once the race is decided, the kept start's state again
        with ``race_start=None``.
    memory_limit : int or str, optional
        Bytes (or a size such as ``"4GiB"``) the in-memory sample pool may hold; default
        :func:`default_pool_budget`.
    solver : SolverStrategy, optional
        Default :class:`~streamls.strategies.AlternatingRidge` with the config's ``l2`` and ``damping``.
    on_pass : callable, optional
        Called as ``on_pass(label, rows)`` before every pass (the CLI's progress bar).
    """

    def __init__(
        self,
        dataset: Dataset,
        config: TrainConfig,
        backend: Backend,
        callback: Callable[[TrainState, IterationRecord], None] | None = None,
        *,
        memory_limit: int | str | None = None,
        solver: SolverStrategy | None = None,
        on_pass: Callable[[str, int], None] | None = None,
    ) -> None:
        self.dataset = dataset
        self.config = config
        self.backend = backend
        self.callback = callback
        self.on_pass = on_pass
        self.seed = config.random_state or 0
        self.holdout = Holdout(config.validation_fraction, self.seed)
        h, d, k = config.hidden_units, dataset.n_features, dataset.n_targets
        self.solver = solver if solver is not None else AlternatingRidge(config.l2, config.damping, config.line_search)
        if isinstance(memory_limit, (int, np.integer)) and not isinstance(memory_limit, bool) and memory_limit >= 0:
            self.pool_budget = int(memory_limit)  # 0: no pool, every stage streamed
        else:
            self.pool_budget = default_pool_budget() if memory_limit is None else parse_size(memory_limit)
        # The dense solve's matrices must fit the memory limit (without one, or with 0 for no
        # pool, the default share of available memory).
        self.matrix_budget = self.pool_budget if self.pool_budget > 0 else default_pool_budget()
        dense = dense_hidden_solve(config.hidden_solver, dataset.n_rows, h, d + 1, k, config.auto_l2, self.matrix_budget)
        self.matrix_free = not dense
        self.schedule = RowSchedule.for_run(
            config.schedule, dataset.n_rows, h * (d + 1) + (h + 1) * k, config.tol, config.n_iter_no_change,
            MIN_STAGES if dense else MATRIX_FREE_MIN_STAGES,
        )
        self.rows_read = 0
        self.dropped: int | None = None
        self._pool: Any = None
        self._pool_rows = self._pool_bytes = 0
        self._unrecorded_reads = 0
        self._last_pass_rows = 0
        self._rival_starts: list[np.ndarray] = []
        self._race_losses: tuple[float, ...] = ()
        self._race_winner = 0

    def planned_pool_fraction(self) -> float:
        """The sample fraction a fresh run keeps in memory under the pool budget."""
        peak_row_bytes = POOL_BUILD_COPIES * pooled_row_bytes(self.dataset)  # held twice while it is built
        affordable = self.pool_budget / max(peak_row_bytes * self.dataset.n_rows, 1)
        return self.schedule.pool_fraction(affordable)

    def initial_state(self, init: TwoLayerModel | None = None) -> TrainState:
        """The state before the first pass: from ``init`` (warm start) or a moments pass.

        A warm start keeps the model's standardisation, so its weights stay valid and
        the moments pass is skipped (the pool, if any, is filled by :meth:`run`).
        """
        cfg, k = self.config, self.dataset.n_targets
        pool_fraction = self.planned_pool_fraction()
        if init is not None:
            self._check_init(init)
            return self._fresh_state(init.W.copy(), init.B.copy(), init.standardizer, pool_fraction)
        rng = np.random.default_rng(cfg.random_state)
        candidates = anchor_candidates(self.dataset.n_rows, cfg.hidden_units, rng)
        moments = self._moments_pass(MomentsRequest(self.holdout, candidates), pool_fraction)
        if moments.x.n == 0:
            raise SourceFormatError(
                f"{self.dataset.name}: no training rows left after dropping {moments.dropped} rows holding NaN/Inf "
                f"and holding out {moments.n_validation} validation rows"
            )
        standardizer = Standardizer.from_moments(moments)
        anchors = standardizer.inputs(moments.anchors())
        W = initial_weights(anchors, cfg.hidden_units, rng)
        # Drawn after the first start, so that one start is the same whatever n_init.
        self._rival_starts = [initial_weights(anchors, cfg.hidden_units, rng) for _ in range(cfg.starts(self.matrix_free) - 1)]
        return self._fresh_state(W, np.zeros((cfg.hidden_units + 1, k)), standardizer, pool_fraction)

    def _moments_pass(self, request: MomentsRequest, pool_fraction: float) -> Any:
        """The moments pass; with a pool fraction it also keeps those rows in memory."""
        self._announce("moments" if pool_fraction == 0 else f"moments, keeping {pool_fraction:.3g} of the rows in memory", self.dataset.n_rows)
        if pool_fraction > 0:
            bands = tuple(f for f in self.schedule.fractions if f <= pool_fraction)
            moments, self._pool = self.backend.pool(self.dataset, replace(request, pool=Sample(pool_fraction, self.seed), bands=bands))
            self._pool_rows, self._pool_bytes = moments.pooled_rows, moments.pooled_bytes
            logger.info("pool: %d rows, %.3g MB in memory", moments.pooled_rows, moments.pooled_bytes / 1e6)
        else:
            moments = self.backend.run(self.dataset, request)
        self.rows_read += self.dataset.n_rows
        self._unrecorded_reads += self.dataset.n_rows
        self.dropped = moments.dropped
        return moments

    def _fresh_state(self, W: np.ndarray, B: np.ndarray, standardizer: Standardizer, pool_fraction: float) -> TrainState:
        return TrainState(0, W, B, None, SolveOutcome(), (), 0, None, None, standardizer, pool_fraction=pool_fraction)

    def _check_init(self, init: TwoLayerModel) -> None:
        expected = (self.config.hidden_units, self.dataset.n_features, self.dataset.n_targets, self.config.alpha)
        found = (init.hidden_units, init.n_features, init.n_targets, init.alpha)
        if expected != found:
            raise parameter_error(
                "fit", "init", f"a model with (hidden_units, n_features, n_targets, alpha) = {expected}", found
            )

    def run(self, state: TrainState) -> TrainResult:
        """Iterate from ``state`` until the schedule stops or ``max_iter``; return the best model.

        A state that pools rows but whose pool is not in memory (a warm start or a resumed
        run) first refills it with one read. A fresh run with several starts
        (``TrainConfig.n_init``) first races them on the first stage (:meth:`_race`).
        """
        if state.pool_fraction > 0 and self._pool is None:
            empty = np.zeros(0, dtype=np.int64)
            self._moments_pass(MomentsRequest(self.holdout, empty), state.pool_fraction)
        if self._races(state):
            state, result = self._race(state)
            if result is not None:
                return result
        while True:
            state, result = self._advance(state)
            if result is not None:
                return result

    def _races(self, state: TrainState) -> bool:
        """Whether to race several starts from ``state``: a fresh run, the judging stage in memory, and
        ``max_iter`` beyond the race's :data:`RACE_ITERATIONS`."""
        in_memory = state.pool_fraction >= self.schedule.stage(self.schedule.race_stage()).fraction
        return state.iteration == 0 and bool(self._rival_starts) and in_memory and self.config.max_iter > RACE_ITERATIONS

    def _racing(self, state: TrainState, judge: int) -> bool:
        """Whether a start of the race trains on: on data of one stage for :data:`RACE_ITERATIONS`, else
        up to and including the first pass of stage ``judge`` (unless it ends early before it)."""
        if judge == 0:
            return state.stage == 0 and state.iteration < RACE_ITERATIONS
        return not state.final_stage and all(r.stage < judge for r in state.history)

    def _race(self, first: TrainState) -> tuple[TrainState, TrainResult | None]:
        """Train every start up to the judging stage (:meth:`RowSchedule.race_stage`); the lowest loss goes on.

        The stages up to the judging one are held in memory, so the race reads nothing from
        storage. Every start is judged by its best loss on the deepest stage all of them
        reached (the judging stage's first pass, unless one ended early), so all are compared
        on the same rows. The callback sees every start's iterations (``race_start`` set),
        then the kept start once more as the state to resume from: a run killed during the
        race starts again from its beginning, which gives the same model.
        """
        entrants = [replace(first, W=W, race_start=i) for i, W in enumerate([first.W, *self._rival_starts])]
        judge = self.schedule.race_stage()
        ran = []
        unrecorded = self._unrecorded_reads  # the moments pass's, for whichever start is kept
        for state in entrants:
            self._unrecorded_reads = unrecorded
            result = None
            while result is None and self._racing(state, judge):
                state, result = self._advance(state)
            ran.append((replace(state, race_start=None), result))
        common = min(state.history[-1].stage for state, _ in ran)
        losses = [min(monitored_losses([r for r in state.history if r.stage == common])) for state, _ in ran]
        best = min(range(len(ran)), key=lambda i: losses[i])
        logger.info("race of %d starts, judged on stage %d: start %d has the lowest loss, %.6g (%s)", len(ran), common,
                    best, losses[best], ", ".join(f"{loss:.6g}" for loss in losses))
        state, result = ran[best]
        self._race_losses = tuple(losses)
        self._race_winner = best
        if result is None and self.callback is not None:
            self.callback(state, state.history[-1])
        return state, result

    def _advance(self, state: TrainState) -> tuple[TrainState, TrainResult | None]:
        """One iteration: the pass over the current model, then the schedule's decision and the solves.

        Returns the next state, or the state and the result when training stops.
        """
        final_pass = state.iteration >= self.config.max_iter
        stats, seconds = self._pass(state, hidden=not final_pass)
        state = self._recorded(state, stats, seconds)
        stage = self.schedule.stage(state.stage)
        if final_pass:
            return state, self._result(state, stats, "max_iter reached")
        decision = self.schedule.decide(state.stage_history(), stage, state.final_stage)
        if decision.action == "stop":
            assert decision.reason is not None
            return state, self._result(state, stats, decision.reason)
        step = self.solver.step(stats, state, self._row_passes(state))
        del stats  # the next pass builds new matrices; do not hold two sets at once
        if decision.final:
            logger.info("stage %d: rows new to the model fit as well as the sample; this stage is the last", stage.index)
        state = replace(
            state,
            iteration=state.iteration + 1,
            W=step.W,
            B=step.B,
            W_prev=state.W,
            solve=step.outcome,
            stage=state.stage + (decision.action == "grow"),
            final_stage=state.final_stage or decision.final,
        )
        if self.callback is not None:
            self.callback(state, state.history[-1])
        return state, None

    def _pass(self, state: TrainState, hidden: bool) -> tuple[PassStatistics, float]:
        stage = self.schedule.stage(state.stage)
        dense = self._dense_hidden(state)
        share = 1.0 if dense else preconditioner_share(self._stage_rows(state), self.dataset.n_features + 1)
        request = StatisticsRequest(
            state.standardizer, state.W, state.B, self.config.alpha, self.holdout, state.W_prev, hidden,
            Sample(stage.fraction, self.seed), stage.seen, held_out=self.config.auto_l2 and self.holdout.fraction > 0,
            dense=dense, grams_rank=stage.fraction * share,
        )
        start = time.perf_counter()
        stats = self._run(state, request, self._pass_label(state.iteration, stage, self._in_pool(state)))
        seconds = time.perf_counter() - start
        return stats, seconds

    def _in_pool(self, state: TrainState) -> bool:
        return self.schedule.stage(state.stage).fraction <= state.pool_fraction

    def _stage_rows(self, state: TrainState) -> int:
        """Rows a pass of the current stage reads: about ``pool_rows * f / f_pool`` of the pool, or every stored row."""
        if self._in_pool(state):
            return round(self._pool_rows * self.schedule.stage(state.stage).fraction / state.pool_fraction)
        return self.dataset.n_rows

    def _run(self, state: TrainState, request: Any, label: str) -> Any:
        """Run ``request`` over the current stage's rows, from the pool or from storage (counted as read)."""
        rows = self._stage_rows(state)
        self._announce(label, rows)
        if self._in_pool(state):
            result = self.backend.run_pooled(self._pool, request)
        else:
            result = self.backend.run(self.dataset, request)
            self.rows_read += rows
            self._unrecorded_reads += rows
        self._last_pass_rows = rows
        return result

    def _dense_hidden(self, state: TrainState) -> bool:
        """Whether this pass's hidden solve is dense (:func:`streamls.matrix_free.dense_hidden_solve`)."""
        cfg = self.config
        rows = self._stage_rows(state)
        p, k = self.dataset.n_features + 1, self.dataset.n_targets
        return dense_hidden_solve(cfg.hidden_solver, rows, cfg.hidden_units, p, k, cfg.auto_l2, self.matrix_budget)

    def _row_passes(self, state: TrainState) -> StagePasses:
        """Further passes over the rows of the current pass, for the solves.

        A matrix-free solve on pooled rows runs its products over the rows under the pass's
        pattern, kept where they are pooled (:meth:`Backend.fix_pattern`) when they fit the
        pool's budget beside the pool.
        """
        stage = self.schedule.stage(state.stage)
        label = self._pass_label(state.iteration, stage, self._in_pool(state))
        rows = PatternRequest(state.standardizer, state.W, self.holdout, Sample(stage.fraction, self.seed))

        def run(request: Any, what: str) -> Any:
            return self._run(state, request, f"{label}, {what}")

        run_products = run
        if self._in_pool(state) and not self._dense_hidden(state) and self._pattern_fits(state):
            self._announce(f"{label}, pattern", self._stage_rows(state))
            fixed = self.backend.fix_pattern(self._pool, rows)

            def run_products(request: Any, what: str) -> Any:
                self._announce(f"{label}, {what}", self._stage_rows(state))
                return self.backend.run_fixed(fixed, request)

        return StagePasses(run, run_products, rows, self.config.alpha, self.config.auto_l2 and self.holdout.fraction > 0)

    def _pattern_fits(self, state: TrainState) -> bool:
        """Whether the current stage's rows under a pattern fit the pool's budget beside the pool."""
        x_item = kept_dtype(self.dataset.x_source.dtype).itemsize
        row_bytes = x_item * (self.dataset.n_features + 1) + self.config.hidden_units
        return self._stage_rows(state) * row_bytes <= self.pool_budget - self._pool_bytes

    def _pass_label(self, iteration: int, stage: Stage, in_pool: bool) -> str:
        if len(self.schedule.fractions) == 1:
            return f"iteration {iteration}"
        where = "memory" if in_pool else "storage"
        return f"iteration {iteration}, stage {stage.index + 1}/{len(self.schedule.fractions)} ({stage.fraction:.3g} of rows, {where})"

    def _announce(self, label: str, rows: int) -> None:
        if self.on_pass is not None:
            self.on_pass(label, rows)

    def _recorded(self, state: TrainState, stats: PassStatistics, pass_seconds: float) -> TrainState:
        """Complete model ``state.iteration``'s record with its pass and track the stage's best."""
        k, h = self.dataset.n_targets, self.config.hidden_units
        n = max(stats.n, 1)
        solve = state.solve
        val_loss, val_se = loss_estimate(float(stats.val_sse.sum()), stats.val_sse_sq, stats.n_val, k)
        train_se = loss_estimate(float(stats.sse.sum()), stats.sse_sq, stats.n, k)[1]
        gap, gap_se = fresh_gap(stats, k)
        record = IterationRecord(
            iteration=state.iteration,
            train_loss=float(stats.sse.sum() / (n * k)),
            val_loss=val_loss,
            predicted_loss=solve.predicted_loss,
            output_loss=solve.output_loss,
            logdet=solve.logdet,
            condition=solve.condition,
            dead_neurons=int((stats.active == 0).sum()),
            flip_fraction=stats.flips / (n * h) if state.W_prev is not None else math.nan,
            seconds=solve.seconds + pass_seconds,
            rows_per_second=self._last_pass_rows / pass_seconds if pass_seconds > 0 else math.inf,
            warning=solve.warning,
            damping=solve.damping,
            stage=state.stage,
            sample_rows=stats.n,
            rows_read=self._unrecorded_reads,
            loss_se=val_se if stats.n_val else train_se,
            fresh_gap=gap,
            fresh_gap_se=gap_se,
            l2_output=solve.l2_output,
            l2_hidden=solve.l2_hidden,
            hidden_solver=solve.hidden_solver,
            cg_iterations=solve.cg_iterations,
            cg_residual=solve.cg_residual,
            step_length=solve.step_length,
        )
        self._unrecorded_reads = 0
        if not math.isfinite(record.train_loss):
            raise NumericalError(f"iteration {state.iteration}: training loss is {record.train_loss}; weights diverged")
        logger.info(
            "iteration %d (stage %d, %d rows): train %.6g val %.6g predicted %.6g flips %.4g logdet %.6g (%.2fs, %.3g rows/s)",
            record.iteration, record.stage, record.sample_rows, record.train_loss, record.val_loss, record.predicted_loss,
            record.flip_fraction, record.logdet, record.seconds, record.rows_per_second,
        )
        if record.warning:
            logger.warning("iteration %d: %s", record.iteration, record.warning)
        history = (*state.history, record)
        losses = monitored_losses(history)
        # Losses of different samples are not comparable: the best is kept within the stage.
        new_stage = state.best_W is None or history[state.best_iteration].stage != record.stage
        if new_stage or losses[-1] < losses[state.best_iteration]:
            return replace(state, history=history, best_iteration=state.iteration, best_W=state.W, best_B=state.B)
        return replace(state, history=history)

    def _result(self, state: TrainState, stats: PassStatistics, reason: str) -> TrainResult:
        assert state.best_W is not None and state.best_B is not None
        cfg, best = self.config, state.best_iteration
        summary = FitSummary(
            data=self.dataset.name,
            n_rows=self.dataset.n_rows,
            n_features=self.dataset.n_features,
            n_targets=self.dataset.n_targets,
            n_train=stats.n,
            n_validation=stats.n_val,
            dropped_rows=stats.dropped if self.dropped is None else self.dropped,
            best_iteration=best,
            stop_reason=reason,
            schedule=cfg.schedule,
            stage=state.stage,
            n_stages=len(self.schedule.fractions),
            # The best model was solved from the pass before its own.
            n_fitted_rows=state.history[best - 1].sample_rows if best > 0 else 0,
            ended_early=state.final_stage and not self.schedule.stage(state.stage).everything,
            rows_read=self.rows_read,
            race_losses=self._race_losses,
            race_winner=self._race_winner,
        )
        model = TwoLayerModel(
            W=state.best_W,
            B=state.best_B,
            alpha=cfg.alpha,
            standardizer=state.standardizer,
            target_is_1d=self.dataset.target_is_1d,
            feature_names=self.dataset.feature_names,
            target_names=self.dataset.target_names,
            hyperparameters=asdict(cfg),
            history=[asdict(r) for r in state.history],
            summary=summary,
        )
        logger.info("stopped: %s; best iteration %d", reason, best)
        return TrainResult(model, list(state.history))


@dataclass(frozen=True)
class StagePasses:
    """The :class:`~streamls.strategies.RowPasses` of one iteration: the rows and split of its statistics pass.

    Attributes
    ----------
    run : callable
        ``run(request, what)`` evaluates a pass request over those rows, from the pool or
        from storage, and returns its sums (``what`` names the pass for the progress bar).
    run_products : callable
        The same for product passes (over the rows under the pattern, when they are kept).
    rows : PatternRequest
        The rows and the pattern of the products: the pass's standardisation, hidden weights,
        split and sample.
    alpha : float
    validation : bool
        Whether the products sum the validation rows too (``l2="auto"`` with validation rows).
    """

    run: Callable[[Any, str], Any]
    run_products: Callable[[ProductRequest, str], HiddenProducts]
    rows: PatternRequest
    alpha: float
    validation: bool

    def products(self, V: np.ndarray, directions: np.ndarray) -> HiddenProducts:
        """``M v`` of the pass's pattern for output weights ``V`` (the matrix-free hidden solve)."""
        return self.run_products(ProductRequest(self.rows, V, directions, self.alpha, self.validation), "product")

    def candidates(self, candidates: np.ndarray) -> CandidateSums:
        """The output layer's sums under each candidate hidden layer (the step search)."""
        rows = self.rows
        request = CandidateRequest(rows.standardizer, candidates, self.alpha, rows.holdout, rows.sample)
        result: CandidateSums = self.run(request, "step search")
        return result
