"""The run directory of ``streamls train``: its file names, clearing it, and a finished run's outputs.

Layout::

    RUN/config.toml          effective configuration (what --resume reads back)
    RUN/checkpoints/ckpt-NNNNNN.h5   state after the solves that produced model NNNNNN (the last few)
    RUN/train.log            plain log lines with timestamps
    RUN/model.h5             the best model, written when training ends
    RUN/history.csv, RUN/history.json, RUN/report.png, RUN/report.md
    RUN/.lock                held while a job runs
"""

from __future__ import annotations

import os
import shutil

from ..training import TrainResult
from . import checkpoint
from .history import HISTORY_CSV, HISTORY_JSON, write_history
from .report import REPORT_MD, REPORT_PNG, write_report

CONFIG = "config.toml"
MODEL = "model.h5"
LOG = "train.log"
#: Files of a previous run that ``--overwrite`` removes (and whose presence needs it).
RUN_FILES = (CONFIG, MODEL, LOG, HISTORY_CSV, HISTORY_JSON, REPORT_PNG, REPORT_MD, checkpoint.DIRECTORY)


def run_files(run_dir: str) -> list[str]:
    """The names of :data:`RUN_FILES` present in ``run_dir``."""
    return [name for name in RUN_FILES if os.path.lexists(os.path.join(run_dir, name))]


def clear_run(run_dir: str) -> None:
    """Delete a previous run's files (:data:`RUN_FILES`) from ``run_dir``, leaving anything else."""
    for name in run_files(run_dir):
        path = os.path.join(run_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def write_outputs(run_dir: str, result: TrainResult, test_mse: float | None = None) -> None:
    """The model, the history and the report of a finished run.

    ``test_mse``, the MSE on a test set in target units where the caller has one (the
    demo), goes into the report.
    """
    model = result.model
    model.save(os.path.join(run_dir, MODEL))
    write_history(run_dir, result.history)
    write_report(run_dir, model.history, model.hyperparameters, model.summary, model.standardizer.y_scale, test_mse)
