"""The report of a training run: a PNG of the history and a short markdown summary.

The figure is drawn with matplotlib's object API on an Agg canvas, so no display and no
global pyplot state are involved (batch jobs have no display). Its layout is constrained,
so axis labels stay on the canvas however wide the tick labels of the loss range are.
Losses are recorded standardised (see :mod:`.progress`); with one target the loss panel
and the summary also give them in target units.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..summary import FitSummary
from .progress import LOSS_UNITS, target_units

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_PNG = "report.png"
REPORT_MD = "report.md"


def _column(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r[key] is None else float(r[key]) for r in history])


def history_figure(
    history: Sequence[Mapping[str, Any]],
    title: str = "",
    best_iteration: int | None = None,
    y_scale: Sequence[float] = (),
) -> Figure:
    """Training and validation loss, pattern-flip fraction and log det(M + lambda I) per iteration.

    Parameters
    ----------
    history : sequence of dict
        Iteration records (fields of :class:`streamls.IterationRecord`).
    best_iteration : int, optional
        Marked on the loss panel (the iterate the model keeps).
    y_scale : sequence of float
        The targets' standardisation scales; with one target the loss panel gets a second
        axis in target units.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    it = _column(history, "iteration")
    fig = Figure(figsize=(10, 3.4), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, flip_ax, det_ax = fig.subplots(1, 3)
    loss_ax.plot(it, _column(history, "train_loss"), marker=".", label="training")
    val = _column(history, "val_loss")
    if np.isfinite(val).any():
        loss_ax.plot(it, val, marker=".", label="validation")
    if best_iteration is not None:
        loss_ax.axvline(best_iteration, color="0.6", linestyle=":", label=f"best ({best_iteration})")
    loss_ax.set(yscale="log", xlabel="iteration", ylabel=f"MSE ({LOSS_UNITS})", title="loss")
    variance = target_units(1.0, y_scale)
    if variance is not None:
        target_ax = loss_ax.secondary_yaxis("right", functions=(lambda v: v * variance, lambda v: v / variance))
        target_ax.set_ylabel("MSE (target units)")
    loss_ax.legend()
    flip_ax.plot(it, _column(history, "flip_fraction"), marker=".", color="C2")
    flip_ax.set(xlabel="iteration", ylabel="fraction of (row, neuron)", title="pattern flips")
    det_ax.plot(it, _column(history, "logdet"), marker=".", color="C3")
    det_ax.set(xlabel="iteration", ylabel="log det(M + lambda I)", title="hidden-layer system")
    if title:
        fig.suptitle(title)
    return fig


def plot_history(
    history: Sequence[Mapping[str, Any]],
    path: str,
    title: str = "",
    best_iteration: int | None = None,
    y_scale: Sequence[float] = (),
) -> None:
    """Write :func:`history_figure` as a PNG to ``path``."""
    history_figure(history, title, best_iteration, y_scale).savefig(path, format="png")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _loss(record: Mapping[str, Any], key: str) -> float:
    return math.nan if record[key] is None else float(record[key])


def summary_markdown(
    history: Sequence[Mapping[str, Any]],
    hyperparameters: Mapping[str, Any],
    summary: FitSummary,
    image: str = REPORT_PNG,
    y_scale: Sequence[float] = (),
    test_mse: float | None = None,
) -> str:
    """A short markdown summary of a run: data, hyperparameters, outcome, the figure.

    The best iteration's losses are given standardised and, with one target (``y_scale``
    of length 1), in target units; ``test_mse`` (target units) where the caller has a test set.
    """
    s = summary  # shortened for the lines below
    best = s.best_iteration
    best_rec = next((r for r in history if int(r["iteration"]) == best), history[-1])
    train, val = _loss(best_rec, "train_loss"), _loss(best_rec, "val_loss")
    train_mse, val_mse = target_units(train, y_scale), target_units(val, y_scale)
    in_target = [] if train_mse is None else [f"training MSE {_fmt(train_mse)}", f"validation MSE {_fmt(val_mse)}"]
    if test_mse is not None:
        in_target.append(f"test MSE {_fmt(test_mse)}")
    lines = [
        "# streamls training report",
        "",
        (
            f"Data: `{s.data}`: {s.n_rows} rows, {s.n_features} inputs, {s.n_targets} outputs; {s.n_train} training "
            f"rows, {s.n_validation} validation rows, {s.dropped_rows} dropped."
        ),
        "",
        "| hyperparameter | value |",
        "|---|---|",
        *(f"| {k} | {_fmt(v)} |" for k, v in hyperparameters.items()),
        "",
        f"Stopped after {int(history[-1]['iteration'])} iterations: {s.stop_reason}.",
        f"Best iteration {best}: training MSE {_fmt(train)}, validation MSE {_fmt(val)} ({LOSS_UNITS}).",
        *([f"In target units: {', '.join(in_target)}."] if in_target else []),
        (
            f"Schedule {s.schedule}: stage {s.stage + 1} of {s.n_stages}; the model was fitted on {s.n_fitted_rows} rows"
            f"{', ended early as more rows no longer lowered the loss' if s.ended_early else ''}; "
            f"{s.rows_read} rows read from storage."
        ),
        f"Total time {sum(float(r['seconds']) for r in history):.3g} s.",
        "",
        f"![training history]({image})",
        "",
    ]
    return "\n".join(lines)


def write_report(
    run_dir: str,
    history: Sequence[Mapping[str, Any]],
    hyperparameters: Mapping[str, Any],
    summary: FitSummary,
    y_scale: Sequence[float] = (),
    test_mse: float | None = None,
) -> tuple[str, str]:
    """Write ``report.png`` and ``report.md`` into ``run_dir``; returns their paths."""
    png, md = os.path.join(run_dir, REPORT_PNG), os.path.join(run_dir, REPORT_MD)
    plot_history(history, png, summary.data, summary.best_iteration, y_scale)
    with open(md, "w") as handle:
        handle.write(summary_markdown(history, hyperparameters, summary, y_scale=y_scale, test_mse=test_mse))
    return png, md
