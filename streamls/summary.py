"""What a fit reports about itself: the data, the rows used, how and why it stopped.

One :class:`FitSummary` is built when training ends (:mod:`streamls.training`), kept on
the model (:attr:`streamls.TwoLayerModel.summary`), saved in its file and shown by
``streamls info`` and the run report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class FitSummary:
    """The outcome of one fit, as saved with its model.

    Every field has a default: a model built by hand has no fit to report, and a model
    file written before a field existed reads it as its default. The defaults of the
    schedule and race fields describe what streamls did before those existed (every row in
    every pass, one start); the counts and names read 0 and ``""`` where unrecorded.

    Attributes
    ----------
    data : str
        Name of the training data (its spec or source name).
    n_rows, n_features, n_targets : int
        Rows, input columns and target columns of the training data.
    n_train, n_validation, dropped_rows : int
        Rows of the last pass used for training, held out for validation, and skipped for
        holding NaN/Inf.
    best_iteration : int
        Iteration of the kept model.
    stop_reason : str
        Why training stopped.
    schedule : str
        The row schedule (``"sample"``, ``"sample-all"``, ``"full"``).
    stage, n_stages : int
        Sample stage of the last pass (0-based) and the number of stages the schedule has.
    n_fitted_rows : int
        Training rows of the pass that the kept model was solved from (0 for the initial model).
    ended_early : bool
        Whether the schedule stopped before its stage of every row, as more rows no longer
        lowered the loss.
    rows_read : int
        Rows read from storage over the whole fit, the moments pass included.
    race_losses : tuple of float
        Lowest first-stage loss of each start of a race of starts (``n_init > 1``); empty
        without a race.
    race_winner : int
        Index in ``race_losses`` of the start kept (0 without a race).
    """

    data: str = ""
    n_rows: int = 0
    n_features: int = 0
    n_targets: int = 0
    n_train: int = 0
    n_validation: int = 0
    dropped_rows: int = 0
    best_iteration: int = 0
    stop_reason: str = ""
    schedule: str = "full"
    stage: int = 0
    n_stages: int = 1
    n_fitted_rows: int = 0
    ended_early: bool = False
    rows_read: int = 0
    race_losses: tuple[float, ...] = ()
    race_winner: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON types (``race_losses`` a list), for a model file."""
        values = asdict(self)
        values["race_losses"] = list(self.race_losses)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FitSummary:
        """Inverse of :meth:`as_dict`; also reads the ``info`` of model format versions 1 and 2.

        Keys that are not fields are ignored, and missing fields take their defaults.
        """
        known = {f.name for f in fields(cls)}
        given = {key: value for key, value in values.items() if key in known}
        if "race_losses" in given:
            given["race_losses"] = tuple(float(loss) for loss in given["race_losses"])
        return cls(**given)
