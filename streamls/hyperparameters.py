"""Hyperparameters of a training run: :class:`TrainConfig`, the one place each is declared."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import parameter_error

#: Row schedules: grow a random sample and end early once more rows stop helping; grow it
#: up to every row; or read every row in every pass.
SCHEDULES = ("sample", "sample-all", "full")

@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a training run (all validated on construction).

    Attributes
    ----------
    hidden_units : int
        Hidden neurons ``h`` (>= 1).
    alpha : float
        Activation slope for negative pre-activations, in [0, 1) (0: ReLU).
    l2 : float
        Ridge term relative to the mean diagonal of each layer's Gram matrix (>= 0).
    damping : float
        Initial weight of the proximal term pulling each hidden solve toward the current
        hidden weights, relative to the mean diagonal of its Gram matrix (>= 0; 0: the plain
        alternating solves). Adapted every iteration by :func:`next_damping`.
    max_iter : int
        Most iterations (solves); each costs one pass over the data.
    tol : float
        Stop when the best loss of the last ``n_iter_no_change`` iterations improves on the
        best before them by less than ``tol`` relatively; 0 runs all ``max_iter``.
    n_iter_no_change : int
        The window of the stopping rule.
    random_state : int or None
        Seed of the initialisation and of the validation split.
    validation_fraction : float
        Share of rows, chosen by a hash of the row index, held out; when > 0 the stopping
        rule and the best-iterate choice use the validation loss.
    schedule : {"sample", "sample-all", "full"}
        Which rows each pass reads (:mod:`streamls.schedule`): a growing random sample that
        ends once more rows stop lowering the loss; the same grown to every row; or every
        row in every pass.
    """

    hidden_units: int = 32
    alpha: float = 0.0
    l2: float = 1e-6
    damping: float = 1e-2
    max_iter: int = 100
    tol: float = 1e-4
    n_iter_no_change: int = 10
    random_state: int | None = None
    validation_fraction: float = 0.0
    schedule: str = "sample"

    def __post_init__(self) -> None:
        _check_int("hidden_units", self.hidden_units, 1)
        _check_int("max_iter", self.max_iter, 0)
        _check_int("n_iter_no_change", self.n_iter_no_change, 1)
        if self.random_state is not None:
            _check_int("random_state", self.random_state, 0)
        _check_real("alpha", self.alpha, 0.0, 1.0, "a float in the range [0, 1)", upper_open=True)
        _check_real("l2", self.l2, 0.0, math.inf, "a float in the range [0, inf)")
        _check_real("damping", self.damping, 0.0, math.inf, "a float in the range [0, inf)")
        _check_real("tol", self.tol, 0.0, math.inf, "a float in the range [0, inf)")
        _check_real("validation_fraction", self.validation_fraction, 0.0, 1.0, "a float in the range [0, 1)", upper_open=True)
        if self.schedule not in SCHEDULES:
            raise parameter_error("fit", "schedule", f"one of {SCHEDULES}", self.schedule)


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise parameter_error("fit", name, f"an int in the range [{low}, inf)", value)


def _check_real(name: str, value: Any, low: float, high: float, text: str, upper_open: bool = False) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and low <= value and (value < high if upper_open else value <= high)
    if not ok:
        raise parameter_error("fit", name, text, value)
