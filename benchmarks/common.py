"""Helpers shared by the benchmarks: the budget clock, the cores, the machine description and the real data."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from streamls.sources import open_source

#: The shared real data sets (``../shared/data/uci/NAME.csv.gz``: no header, last column the target).
UCI_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "uci"


def uci_table(name: str) -> np.ndarray | None:
    """The table ``UCI_DIR / NAME.csv.gz``, shape (n, d + 1), read by streamls' own CSV source; None if absent."""
    path = UCI_DIR / f"{name}.csv.gz"
    if not path.exists():
        return None
    source = open_source(str(path))
    try:
        return np.asarray(source.read(0, source.n_rows), dtype=np.float64)
    finally:
        source.close()

#: The clocks a budget can be timed by: CPU seconds of this process, or wall seconds.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


@dataclass(frozen=True)
class Clock:
    """The clock that times training budgets.

    Attributes
    ----------
    name : {"cpu", "wall"}
        As the command lines and reports name it.
    now : callable
        Seconds on this clock; only differences between two readings mean anything.
    """

    name: str
    now: Callable[[], float]

    @classmethod
    def named(cls, name: str) -> Clock:
        """The clock called ``name`` in :data:`CLOCKS`."""
        return cls(name, CLOCKS[name])


def cores() -> int:
    """CPU cores this process may run on."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` says."""
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as handle:
        return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    return platform.processor()


def machine_info(**extra: Any) -> dict[str, Any]:
    """Versions and hardware of this run, for a report's metadata, with ``extra`` entries appended."""
    import streamls

    return {
        "python": platform.python_version(), "numpy": np.__version__, "h5py": h5py.__version__,
        "streamls": streamls.__version__, "cpu": cpu_model(), "cores": cores(), "platform": platform.platform(),
        **extra,
    }
