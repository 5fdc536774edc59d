"""Checkpoints of :class:`streamls.training.TrainState`: one small HDF5 file per iteration, no pickle.

Each checkpoint is written under a temporary name, flushed and fsynced, then renamed
(:class:`~streamls.sources.sinks.OutputFile`), and the directory is fsynced after the
rename. A process killed at any moment therefore leaves either the previous set of
checkpoints or the previous set plus one complete new file; temporary leftovers start
with a dot and are ignored. A SHA-256 checksum guards against damage after the fact.

Layout: arrays ``W``, ``B``, ``x_mean``, ``x_scale``, ``y_mean``, ``y_scale`` and, when
set, ``W_prev``, ``best_W``, ``best_B``; array ``metadata`` holds UTF-8 JSON with the
iteration counters, the solve diagnostics, the history and the caller's ``meta``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict
from typing import Any

import h5py
import numpy as np

from ..errors import ModelFileError
from ..sources.sinks import OutputFile
from ..stats import Standardizer
from ..training import IterationRecord, SolveOutcome, TrainState

logger = logging.getLogger(__name__)

FORMAT = "streamls.TrainState"
FORMAT_VERSION = 1
DIRECTORY = "checkpoints"
_NAME = re.compile(r"ckpt-(\d+)\.h5")
_OPTIONAL = ("W_prev", "best_W", "best_B")


def checkpoint_path(run_dir: str, iteration: int) -> str:
    """``RUN/checkpoints/ckpt-000012.h5`` for the state whose current model is ``iteration``."""
    return os.path.join(run_dir, DIRECTORY, f"ckpt-{iteration:06d}.h5")


def _arrays(state: TrainState) -> dict[str, np.ndarray]:
    st = state.standardizer
    arrays = {
        "W": state.W, "B": state.B,
        "x_mean": st.x_mean, "x_scale": st.x_scale, "y_mean": st.y_mean, "y_scale": st.y_scale,
        "W_prev": state.W_prev, "best_W": state.best_W, "best_B": state.best_B,
    }
    return {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items() if v is not None}


def _checksum(arrays: dict[str, np.ndarray], metadata: bytes) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(str(arrays[name].shape).encode())
        digest.update(arrays[name].tobytes())
    digest.update(metadata)
    return digest.hexdigest()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    arrays = _arrays(state)
    metadata = json.dumps(
        {
            "iteration": state.iteration,
            "best_iteration": state.best_iteration,
            "solve": asdict(state.solve),
            "history": [asdict(r) for r in state.history],
            "meta": meta or {},
        },
        allow_nan=True,
    ).encode()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with OutputFile(path, overwrite=True) as out:
        for name, value in arrays.items():
            out.create_array(name, value.shape, np.float64, data=value)
        out.create_array("metadata", (len(metadata),), np.uint8, data=np.frombuffer(metadata, dtype=np.uint8))
        out.attrs["format"] = FORMAT
        out.attrs["format_version"] = FORMAT_VERSION
        out.attrs["checksum"] = _checksum(arrays, metadata)
    _fsync_dir(directory)  # make the rename itself durable


def load_checkpoint(path: str) -> tuple[TrainState, dict[str, Any]]:
    """Read a checkpoint; returns the state and the ``meta`` it was saved with.

    Raises
    ------
    ModelFileError
        When the file is missing, not a checkpoint, of another version or damaged.
    """
    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
            if attrs.get("format") != FORMAT or int(attrs.get("format_version", -1)) != FORMAT_VERSION:
                raise ModelFileError(f"{path}: not a streamls checkpoint of format version {FORMAT_VERSION}")
            arrays = {name: np.asarray(handle[name][...], dtype=np.float64) for name in handle if name != "metadata"}
            metadata = np.asarray(handle["metadata"][...], dtype=np.uint8).tobytes()
    except (OSError, KeyError) as exc:
        raise ModelFileError(f"{path}: checkpoint unreadable, truncated or damaged ({exc})") from exc
    if _checksum(arrays, metadata) != attrs.get("checksum"):
        raise ModelFileError(f"{path}: checkpoint checksum mismatch; the file was modified or damaged")
    info = json.loads(metadata)
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
        standardizer=Standardizer(arrays["x_mean"], arrays["x_scale"], arrays["y_mean"], arrays["y_scale"]),
    )
    return state, info["meta"]


def checkpoint_files(run_dir: str) -> list[tuple[int, str]]:
    """Complete checkpoints of a run as ``(iteration, path)``, oldest first."""
    directory = os.path.join(run_dir, DIRECTORY)
    if not os.path.isdir(directory):
        return []
    found = [(int(m.group(1)), os.path.join(directory, name)) for name in os.listdir(directory) if (m := _NAME.fullmatch(name))]
    return sorted(found)


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
