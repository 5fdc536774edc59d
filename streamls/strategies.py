"""Solver strategies: how one pass's statistics become the next model.

The training loop asks a strategy for the next weights and knows nothing about how they
are found. :class:`AlternatingRidge` is the method of METHOD.md: the output layer's ridge
solve, then the damped hidden-layer solve under the fixed pattern, optionally a search
along that step, then rebalancing. Passes beyond the statistics pass (the matrix-free
solve's products, the search's candidates) go through :class:`RowPasses`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .hyperparameters import AUTO
from .matrix_free import solve_hidden_matrix_free
from .solvers import (
    STEP_LENGTHS,
    best_candidate,
    choose_hidden_layer,
    choose_output_layer,
    hidden_loss,
    output_loss,
    rebalance,
    solve_hidden_layer,
    solve_output_layer,
    step_candidates,
)
from .state import SolveOutcome, TrainState
from .stats import PassStatistics
from .stats.products import CandidateSums, HiddenProducts


@dataclass(frozen=True)
class Step:
    """The next model and what its solves tell about it.

    Attributes
    ----------
    W : numpy.ndarray, shape (h, d + 1)
    B : numpy.ndarray, shape (h + 1, k)
    outcome : SolveOutcome
    """

    W: np.ndarray
    B: np.ndarray
    outcome: SolveOutcome


class RowPasses(Protocol):
    """Further passes over the rows of the current pass (its sample and split), for the solves that need them."""

    def products(self, V: np.ndarray, directions: np.ndarray) -> HiddenProducts:
        """``M v`` of the pass's fixed pattern and output weights ``V`` (h, k) for directions (r, h, p)."""

    def candidates(self, candidates: np.ndarray) -> CandidateSums:
        """The output layer's sums over the training rows under each candidate hidden layer (r, h, p)."""


class SolverStrategy(Protocol):
    """Turns the statistics of the current model's pass into the next model."""

    def step(self, stats: PassStatistics, state: TrainState, rows: RowPasses | None = None) -> Step:
        """The next model from ``stats`` (a pass with hidden-layer sums) and the current ``state``.

        ``rows`` runs further passes over the same rows: the products of the matrix-free
        hidden solve (statistics in the block form) and the step search's candidates.
        """


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


@dataclass(frozen=True)
class AlternatingRidge:
    """Output-layer ridge solve, then the damped fixed-pattern hidden solve (METHOD.md).

    The hidden solve is dense (eigendecomposition or Cholesky of ``M`` from ``P``) or, for
    statistics in the block form, matrix-free (:mod:`streamls.matrix_free`).

    Parameters
    ----------
    l2 : float or "auto"
        Ridge term relative to each Gram matrix's mean diagonal; ``"auto"`` chooses it for
        each layer and pass from :data:`~streamls.solvers.L2_GRID` by the validation rows'
        loss (the pass's ``held_out`` sums), or by GCV without them.
    damping : float
        Initial proximal weight of the hidden solve, adapted by :func:`next_damping`.
    line_search : {"off", "on", "auto"}
        Whether to try :data:`~streamls.solvers.STEP_LENGTHS` along the hidden step, each
        scored by the training loss after its own output solve (one more pass over the rows);
        ``"auto"``: for the matrix-free hidden solve only (:meth:`searches`).
    """

    l2: float | str
    damping: float
    line_search: str = "off"

    def searches(self, matrix_free: bool) -> bool:
        """Whether a step with this hidden solve searches along its step.

        ``"auto"`` searches for the matrix-free solve only: its iteration costs the statistics
        pass and about 30 product passes, so the search's one pass adds little, and on 500k
        teacher rows (d = 128, h = 32) the held-out loss after 130 s was 0.0546 with it and
        0.0592 without (64 and 58 iterations). The gain there came from each candidate's output
        layer, solved under its own pattern (every length taken was 1), not from longer steps.
        After a dense solve the pass adds about a fifth of the statistics pass (d = 16, h = 32),
        and the search lowers the training loss, not the test loss (docs/method.md, "The step
        search").
        """
        return self.line_search == "on" or (self.line_search == AUTO and matrix_free)

    def step(self, stats: PassStatistics, state: TrainState, rows: RowPasses | None = None) -> Step:
        """Both half-steps from one pass; the damping adapts to the current stage's realised losses."""
        assert stats.Q is not None and stats.s is not None
        start = time.perf_counter()
        n, k = max(stats.n, 1), stats.C.shape[1]
        # Losses of different samples are not comparable: only this stage's tell rise from fall.
        losses = [r.train_loss for r in state.stage_history()]
        damping = next_damping(state.solve.damping, losses, self.damping)
        auto = self.l2 == AUTO
        if auto:
            B, out_report, out_choice = choose_output_layer(stats.G, stats.C, stats.sum_yy, stats.held_out)
            l2_output = out_choice.l2
        else:
            l2_output = float(self.l2)
            B, out_report = solve_output_layer(stats.G, stats.C, l2_output)
        fitted = output_loss(stats.G, stats.C, stats.sum_yy, B)
        train = (stats.sum_y, stats.sum_yy, stats.n)
        if stats.D is not None:
            assert rows is not None, "the matrix-free hidden solve needs product passes"
            previous = state.solve.l2_hidden
            matrix_free = solve_hidden_matrix_free(
                stats.block_diagonal(), stats.Q, stats.s, B, train, rows.products, None if auto else l2_output, damping,
                state.W, stats.held_out, previous if math.isfinite(previous) else l2_output, traces=stats.D_trace,
            )
            W, l2_hidden, predicted = matrix_free.W, matrix_free.l2, matrix_free.predicted
            logdet = condition = math.nan
            hidden_warning, solver = None, ("cg", matrix_free.iterations, matrix_free.residual)
        else:
            assert stats.P is not None
            if auto:
                W, hid_report, M, r, hid_choice = choose_hidden_layer(stats.P, stats.Q, stats.s, B, train, stats.held_out, damping, state.W)
                l2_hidden = hid_choice.l2
            else:
                l2_hidden = l2_output
                W, hid_report, M, r = solve_hidden_layer(stats.P, stats.Q, stats.s, B, l2_hidden, damping, state.W)
            predicted = hidden_loss(M, r, W.ravel(), stats.sum_y, stats.sum_yy, stats.n, B[-1])
            logdet, condition, hidden_warning = hid_report.logdet, hid_report.condition, hid_report.warning
            solver = ("dense", 0, math.nan)
        length = 1.0
        if self.searches(matrix_free=solver[0] == "cg"):  # the hidden solve that ran
            assert rows is not None, "the step search needs a pass over the rows"
            candidates = step_candidates(state.W, W)
            sums = rows.candidates(candidates)
            chosen, B, errors = best_candidate(sums.G, sums.C, stats.sum_yy, l2_output)
            # The chosen candidate's loss is exact: its pattern and output layer are the model's.
            W, length, predicted = candidates[chosen], STEP_LENGTHS[chosen], float(errors[chosen])
        W, V = rebalance(W, B[:-1])
        warnings = [w for w in (out_report.warning, hidden_warning) if w]
        outcome = SolveOutcome(
            predicted_loss=predicted / (n * k),
            output_loss=fitted / (n * k),
            logdet=logdet,
            condition=condition,
            warning="; ".join(warnings) or None,
            seconds=time.perf_counter() - start,
            damping=damping,
            l2_output=l2_output,
            l2_hidden=l2_hidden,
            hidden_solver=solver[0],
            cg_iterations=solver[1],
            cg_residual=solver[2],
            step_length=length,
        )
        return Step(W, np.vstack([V, B[-1:]]), outcome)
