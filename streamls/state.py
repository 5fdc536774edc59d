"""What training records and carries between iterations: per-iteration records and the resumable state."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .stats import Standardizer


@dataclass(frozen=True)
class IterationRecord:
    """Diagnostics of model ``iteration`` (0: the initial model).

    Losses are mean squared errors in standardised target units (mean over rows and
    outputs) on the rows of the pass's sample; ``nan`` where not defined (no validation
    rows; no solve for iteration 0; no fresh rows).

    Attributes
    ----------
    stage : int
        Sample stage of the pass (0 for the ``"full"`` schedule).
    sample_rows : int
        Training rows the pass covered.
    rows_read : int
        Rows read from storage since the previous record (0 for a pass over the in-memory
        pool; the pass that fills the pool counts towards the record after it).
    loss_se : float
        Standard error of the monitored loss (validation if present, else training).
    fresh_gap, fresh_gap_se : float
        Loss on the training rows new at this stage minus the loss on those the model was
        fitted on, and its standard error (first pass of a stage only).
    l2_output, l2_hidden : float
        The relative ridge terms of the solves that produced the model (chosen by the data
        with ``l2="auto"``).
    hidden_solver : {"dense", "cg", ""}
        The hidden solve that produced the model ("" for the initial model).
    cg_iterations : int
        Product passes of the matrix-free solve (0 for the dense one).
    cg_residual : float
        Its final relative residual (``nan`` for the dense solve).
    step_length : float
        The length taken along the hidden solve's step (1: the solve's own weights; ``nan``
        for the initial model).
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
    stage: int = 0
    sample_rows: int = 0
    rows_read: int = 0
    loss_se: float = math.nan
    fresh_gap: float = math.nan
    fresh_gap_se: float = math.nan
    l2_output: float = math.nan
    l2_hidden: float = math.nan
    hidden_solver: str = ""
    cg_iterations: int = 0
    cg_residual: float = math.nan
    step_length: float = math.nan


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
    l2_output: float = math.nan
    l2_hidden: float = math.nan
    hidden_solver: str = ""
    cg_iterations: int = 0
    cg_residual: float = math.nan
    step_length: float = math.nan


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
    history : tuple of IterationRecord
        Records of models ``0 .. iteration - 1``.
    best_iteration : int
        The best record of the current stage.
    best_W, best_B : numpy.ndarray or None
    standardizer : Standardizer
    stage : int
        Sample stage of the current model's pass.
    final_stage : bool
        Whether the schedule ended growing early: the current stage is the last.
    pool_fraction : float
        Sample fraction held in memory (0: none), kept so a resumed run pools the same rows.
    race_start : int or None
        While a race of starts (``n_init > 1``) is undecided, the start this state trains
        (0 .. n_init - 1); ``None`` otherwise. Such a state is no point to resume from, since
        the resumed run could not finish the race: the CLI writes no checkpoint of it.
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
    stage: int = 0
    final_stage: bool = False
    pool_fraction: float = 0.0
    race_start: int | None = None

    def stage_history(self) -> Sequence[IterationRecord]:
        """The records of the current stage, oldest first."""
        history = self.history
        first = len(history)
        while first > 0 and history[first - 1].stage == self.stage:
            first -= 1
        return history[first:]
