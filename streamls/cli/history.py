"""The per-iteration history of a run as ``history.csv`` and ``history.json``."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict
from typing import Any

from ..state import IterationRecord

HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"


def nan_to_null(value: Any) -> Any:
    """``value`` with every non-finite float, also inside dicts and lists, replaced by ``None`` (JSON null)."""
    if isinstance(value, dict):
        return {k: nan_to_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_null(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_history(run_dir: str, history: list[IterationRecord]) -> None:
    """``history.csv`` (one row per iteration) and ``history.json`` (NaN as null), losses standardised as recorded."""
    rows = [asdict(r) for r in history]
    with open(os.path.join(run_dir, HISTORY_CSV), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(run_dir, HISTORY_JSON), "w") as handle:
        json.dump(nan_to_null(rows), handle, indent=1)
