"""Regression metrics of a model on a dataset, streamed block by block in constant memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SourceFormatError
from ..model import TwoLayerModel
from ..sources import Dataset
from ..stats.moments import ColumnMoments


@dataclass(frozen=True)
class Metrics:
    """Per-output metrics in the targets' own units.

    Attributes
    ----------
    n : int
        Rows evaluated (rows holding NaN/Inf are skipped under ``nan_policy="drop"``).
    mse, rmse, r2 : numpy.ndarray, shape (k,)
    """

    n: int
    mse: np.ndarray
    rmse: np.ndarray
    r2: np.ndarray

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form: ``n`` and the per-output ``mse``, ``rmse`` and ``r2`` as lists of length k."""
        return {"n": self.n, "mse": self.mse.tolist(), "rmse": self.rmse.tolist(), "r2": self.r2.tolist()}


def evaluate(model: TwoLayerModel, dataset: Dataset, prefetch: bool = True) -> Metrics:
    """MSE, RMSE and R^2 per output over every (kept) row of ``dataset``.

    The squared errors are summed per block; the target variance uses Chan's pairwise
    merge, so targets with a large mean lose no precision. R^2 of a constant target is
    ``nan``. Inputs beyond the training range are counted over every block and warned
    about once, at the end (:class:`~streamls.errors.OutOfRangeWarning`).
    """
    sse = np.zeros(dataset.n_targets)
    moments: ColumnMoments | None = None
    report = model.range_report(dataset.feature_names)
    for block in dataset.blocks(prefetch=prefetch):
        x, y = (block.x, block.y) if block.keep is None else (block.x[block.keep], block.y[block.keep])
        if len(x) == 0:
            continue
        y = np.asarray(y, dtype=np.float64)
        pred = model.predict(x, range_report=report).reshape(len(x), -1)
        sse += ((y - pred) ** 2).sum(axis=0)
        part = ColumnMoments.of(y)
        moments = part if moments is None else moments + part
    if moments is None:
        raise SourceFormatError(f"{dataset.name}: no rows to evaluate (all {dataset.n_rows} rows dropped)")
    if report is not None:
        report.warn(dataset.x_source.name)
    mse = sse / moments.n
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(moments.m2 > 0, 1.0 - sse / moments.m2, np.nan)
    return Metrics(moments.n, mse, np.sqrt(mse), r2)
