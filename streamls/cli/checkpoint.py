"""Checkpoints of :class:`streamls.training.TrainState`: one small HDF5 file per iteration, no pickle.

Each checkpoint is written by :func:`streamls.records.write_record`: under a
temporary name, flushed and fsynced, then renamed, and the directory fsynced after the
rename. A process killed at any moment therefore leaves either the previous set of
checkpoints or the previous set plus one complete new file; temporary leftovers start
with a dot and are ignored. A SHA-256 checksum guards against damage after the fact.

Layout: arrays ``W``, ``B``, ``x_mean``, ``x_scale``, ``y_mean``, ``y_scale`` and, when
set, ``W_prev``, ``best_W``, ``best_B``; array ``metadata`` holds UTF-8 JSON with the
iteration counters, the sample stage, the solve diagnostics, the history and the caller's
``meta``. Version 2 added the stage (``stage``, ``final_stage``, ``pool_fraction``).

A run keeps its last :data:`KEEP_CHECKPOINTS` checkpoints (``--keep-checkpoints``): after a
new one is complete, those more than that many iterations older are deleted. A resume needs
only the newest loadable file; the older ones it keeps stand in should the newest be damaged.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict
from typing import Any

from ..errors import ModelFileError
from ..records import read_record, standardizer_arrays, standardizer_from, write_record
from ..state import IterationRecord, SolveOutcome, TrainState

logger = logging.getLogger(__name__)

FORMAT = "streamls.TrainState"
FORMAT_VERSION = 2
DIRECTORY = "checkpoints"
#: Checkpoints a run keeps by default: the newest, which a resume reads, and two to fall
#: back on should it be damaged (:func:`latest_checkpoint`).
KEEP_CHECKPOINTS = 3
_NAME = re.compile(r"ckpt-(\d+)\.h5")


def checkpoint_path(run_dir: str, iteration: int) -> str:
    """``RUN/checkpoints/ckpt-000012.h5`` for the state whose current model is ``iteration``."""
    return os.path.join(run_dir, DIRECTORY, f"ckpt-{iteration:06d}.h5")


def save_checkpoint(state: TrainState, path: str, meta: dict[str, Any] | None = None) -> None:
    """Write ``state`` to ``path`` atomically.

    Parameters
    ----------
    state : TrainState
    path : str
        Destination ``.h5`` file; its directory is created if needed.
    meta : dict, optional
        JSON-serialisable facts to check on resume (data shape, configuration).
    """
    arrays = {
        "W": state.W,
        "B": state.B,
        "W_prev": state.W_prev,
        "best_W": state.best_W,
        "best_B": state.best_B,
        **standardizer_arrays(state.standardizer),
    }
    metadata = {
        "iteration": state.iteration,
        "best_iteration": state.best_iteration,
        "stage": state.stage,
        "final_stage": state.final_stage,
        "pool_fraction": state.pool_fraction,
        "solve": asdict(state.solve),
        "history": [asdict(r) for r in state.history],
        "meta": meta or {},
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_record(path, FORMAT, FORMAT_VERSION, arrays, metadata)


def load_checkpoint(path: str) -> tuple[TrainState, dict[str, Any]]:
    """Read a checkpoint; returns the state and the ``meta`` it was saved with.

    Raises
    ------
    ModelFileError
        When the file is missing, not a checkpoint, of another version or damaged.
    """
    arrays, info = read_record(path, FORMAT, FORMAT_VERSION, "checkpoint")
    try:
        state = TrainState(
            iteration=int(info["iteration"]),
            W=arrays["W"],
            B=arrays["B"],
            W_prev=arrays.get("W_prev"),
            solve=SolveOutcome(**info["solve"]),
            history=tuple(IterationRecord(**r) for r in info["history"]),
            best_iteration=int(info["best_iteration"]),
            best_W=arrays.get("best_W"),
            best_B=arrays.get("best_B"),
            standardizer=standardizer_from(arrays),
            stage=int(info["stage"]),
            final_stage=bool(info["final_stage"]),
            pool_fraction=float(info["pool_fraction"]),
        )
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: checkpoint lacks or garbles {exc}") from exc
    return state, info["meta"]


def checkpoint_files(run_dir: str) -> list[tuple[int, str]]:
    """Complete checkpoints of a run as ``(iteration, path)``, oldest first."""
    directory = os.path.join(run_dir, DIRECTORY)
    if not os.path.isdir(directory):
        return []
    found = [(int(m.group(1)), os.path.join(directory, name)) for name in os.listdir(directory) if (m := _NAME.fullmatch(name))]
    return sorted(found)


def prune_checkpoints(run_dir: str, newest: int, keep: int = KEEP_CHECKPOINTS) -> list[str]:
    """Delete the checkpoints of iterations up to ``newest - keep``; returns their paths.

    Call it once the checkpoint of iteration ``newest`` is complete: it and the ``keep - 1``
    iterations before it stay, and so does every newer file, so the checkpoint a resume
    reads is never deleted.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    old = [path for iteration, path in checkpoint_files(run_dir) if iteration <= newest - keep]
    for path in old:
        os.remove(path)
    return old


def remove_leftovers(run_dir: str) -> list[str]:
    """Delete temporary files of checkpoint writes that a kill interrupted; returns their names."""
    directory = os.path.join(run_dir, DIRECTORY)
    if not os.path.isdir(directory):
        return []
    leftovers = [name for name in os.listdir(directory) if name.startswith(".") and ".tmp-" in name]
    for name in leftovers:
        os.remove(os.path.join(directory, name))
    return leftovers


def latest_checkpoint(run_dir: str) -> tuple[TrainState, dict[str, Any], str] | None:
    """The newest loadable checkpoint of a run as ``(state, meta, path)``, or ``None``.

    A damaged newest file (disk trouble; the atomic write rules out a torn one) is
    skipped with a warning in favour of the one before it.
    """
    for _, path in reversed(checkpoint_files(run_dir)):
        try:
            state, meta = load_checkpoint(path)
        except ModelFileError as exc:
            logger.warning("skipping checkpoint: %s", exc)
            continue
        return state, meta, path
    return None
