"""The report of a training run: a PNG of the history and a short markdown summary.

The figure is drawn with matplotlib's object API on an Agg canvas, so no display and no
global pyplot state are involved (batch jobs have no display).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

REPORT_PNG = "report.png"
REPORT_MD = "report.md"


def _column(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r[key] is None else float(r[key]) for r in history])


def plot_history(history: Sequence[Mapping[str, Any]], path: str, title: str = "", best_iteration: int | None = None) -> None:
    """Write a PNG of training and validation loss, pattern-flip fraction and log det(M + lambda I).

    Parameters
    ----------
    history : sequence of dict
        Iteration records (fields of :class:`streamls.IterationRecord`).
    path : str
        Output ``.png``.
    best_iteration : int, optional
        Marked on the loss panel (the iterate the model keeps).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    it = _column(history, "iteration")
    fig = Figure(figsize=(10, 3.2), dpi=90)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.15, top=0.84, wspace=0.3)
    FigureCanvasAgg(fig)
    loss_ax, flip_ax, det_ax = fig.subplots(1, 3)
    loss_ax.plot(it, _column(history, "train_loss"), marker=".", label="training")
    val = _column(history, "val_loss")
    if np.isfinite(val).any():
        loss_ax.plot(it, val, marker=".", label="validation")
    if best_iteration is not None:
        loss_ax.axvline(best_iteration, color="0.6", linestyle=":", label=f"best ({best_iteration})")
    loss_ax.set(yscale="log", xlabel="iteration", ylabel="MSE (standardised)", title="loss")
    loss_ax.legend()
    flip_ax.plot(it, _column(history, "flip_fraction"), marker=".", color="C2")
    flip_ax.set(xlabel="iteration", ylabel="fraction of (row, neuron)", title="pattern flips")
    det_ax.plot(it, _column(history, "logdet"), marker=".", color="C3")
    det_ax.set(xlabel="iteration", ylabel="log det(M + lambda I)", title="hidden-layer system")
    if title:
        fig.suptitle(title)
    fig.savefig(path, format="png")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def summary_markdown(
    history: Sequence[Mapping[str, Any]],
    hyperparameters: Mapping[str, Any],
    info: Mapping[str, Any],
    image: str = REPORT_PNG,
) -> str:
    """A short markdown summary of a run: data, hyperparameters, outcome, the figure."""
    best = int(info.get("best_iteration", 0))
    best_rec = next((r for r in history if int(r["iteration"]) == best), history[-1])
    lines = [
        "# streamls training report",
        "",
        (
            f"Data: `{info.get('data', '?')}`: {info.get('n_rows', '?')} rows, {info.get('n_features', '?')} "
            f"inputs, {info.get('n_targets', '?')} outputs; {info.get('n_train', '?')} training rows, "
            f"{info.get('n_validation', '?')} validation rows, {info.get('dropped_rows', 0)} dropped."
        ),
        "",
        "| hyperparameter | value |",
        "|---|---|",
        *(f"| {k} | {_fmt(v)} |" for k, v in hyperparameters.items()),
        "",
        f"Stopped after {int(history[-1]['iteration'])} iterations: {info.get('stop_reason', '?')}.",
        (
            f"Best iteration {best}: training MSE {_fmt(best_rec['train_loss'])}, validation MSE "
            f"{_fmt(best_rec['val_loss'] if best_rec['val_loss'] is not None else math.nan)} (standardised units)."
        ),
        (
            f"Schedule {info.get('schedule', '?')}: stage {int(info.get('stage', 0)) + 1} of {info.get('n_stages', '?')}; "
            f"the model was fitted on {info.get('n_fitted_rows', '?')} rows"
            f"{', ended early as more rows no longer lowered the loss' if info.get('ended_early') else ''}; "
            f"{info.get('rows_read', '?')} rows read from storage."
        ),
        f"Total time {sum(float(r['seconds']) for r in history):.3g} s.",
        "",
        f"![training history]({image})",
        "",
    ]
    return "\n".join(lines)


def write_report(run_dir: str, history: Sequence[Mapping[str, Any]], hyperparameters: Mapping[str, Any], info: Mapping[str, Any]) -> tuple[str, str]:
    """Write ``report.png`` and ``report.md`` into ``run_dir``; returns their paths."""
    png, md = os.path.join(run_dir, REPORT_PNG), os.path.join(run_dir, REPORT_MD)
    plot_history(history, png, title=str(info.get("data", "")), best_iteration=info.get("best_iteration"))
    with open(md, "w") as handle:
        handle.write(summary_markdown(history, hyperparameters, info))
    return png, md
