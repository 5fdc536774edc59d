"""What a run tells its user: a progress bar on a terminal, log lines everywhere else.

On a terminal (and ``--log-format text``) each pass gets a tqdm bar (rows, rows/s, ETA)
and each iteration a summary line. Elsewhere, as in a batch job, there is no bar and no
control character: one plain or JSON line per iteration and per message. JSON lines are
strict JSON (NaN and infinity written as ``null``). A log file, if given, receives the
plain lines with timestamps whatever the mode.

Every loss shown says its units. Training records losses as MSE of the standardised
targets (:data:`LOSS_UNITS`: each target minus its mean, divided by its standard deviation,
over the training rows), which is MSE in target units divided by the target's variance;
:func:`target_units` converts where there is one target.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import IO, Any

from ..state import IterationRecord

LOG_FORMATS = ("text", "json")
#: The fields of an iteration's log line.
ITERATION_FIELDS = (
    "iteration", "train_loss", "val_loss", "predicted_loss", "flip_fraction", "logdet",
    "dead_neurons", "seconds", "rows_per_second", "warning", "stage", "sample_rows", "rows_read",
    "l2_output", "l2_hidden", "hidden_solver", "cg_iterations", "cg_residual", "step_length",
)


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def iteration_fields(record: IterationRecord) -> dict[str, Any]:
    """The logged fields of a record, JSON-safe."""
    values = asdict(record)
    return {key: _finite_or_none(values[key]) for key in ITERATION_FIELDS}


def number_text(value: float, spec: str) -> str:
    """A number, or ``-`` where it is not defined (NaN)."""
    return "-" if math.isnan(value) else format(value, spec)


#: The units of the losses training records (see the module docstring).
LOSS_UNITS = "standardised"


def target_units(loss: float, y_scale: Sequence[float]) -> float | None:
    """A recorded (standardised) loss as MSE in the target's own units; ``None`` unless there is one target.

    With several targets the recorded loss is a mean over outputs of different units, which
    has no value in any one of them.
    """
    return loss * float(y_scale[0]) ** 2 if len(y_scale) == 1 else None


def iteration_text(record: IterationRecord, race_start: int | None = None) -> str:
    """One human-readable line for an iteration (of start ``race_start`` of an undecided race, if given)."""
    text = (
        ("" if race_start is None else f"race start {race_start}  ")
        + f"iter {record.iteration:4d}  stage {record.stage} ({record.sample_rows} rows)  "
        f"train {record.train_loss:.6g}  val {number_text(record.val_loss, '.6g')} ({LOSS_UNITS})  "
        f"flips {number_text(record.flip_fraction, '.4g')}  logdet {number_text(record.logdet, '.6g')}  "
        f"{record.seconds:.2f}s  {record.rows_per_second:.3g} rows/s"
    )
    if record.hidden_solver == "cg":
        text += f"  cg {record.cg_iterations} products, residual {record.cg_residual:.2g}"
    return text + (f"  warning: {record.warning}" if record.warning else "")


class Reporter:
    """Progress bars and log lines of one command.

    Parameters
    ----------
    stream : file
        Where lines go (standard error).
    log_format : {"text", "json"}
    verbosity : int
        -1 quiet (warnings and errors only), 0 normal, 1 verbose.
    bar : bool
        Draw progress bars (only sensible on a terminal with text output).
    """

    def __init__(self, stream: IO[str], log_format: str = "text", verbosity: int = 0, bar: bool = False) -> None:
        self.stream = stream
        self.json = log_format == "json"
        self.verbosity = verbosity
        self.bar_enabled = bar and not self.json and verbosity >= 0
        self.log_file: IO[str] | None = None
        self._bar: Any = None
        self._rows_done = 0
        self.pass_rows = 0
        self.pass_label = ""

    # -- lines -----------------------------------------------------------------------
    def _emit(self, text: str, payload: dict[str, Any]) -> None:
        if self.json:
            line = json.dumps(payload, allow_nan=False)
        else:
            line = text
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
        if self.log_file is not None:
            self.log_file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
            self.log_file.flush()

    def message(self, text: str, level: str = "info", **fields: Any) -> None:
        """A message; ``info`` is hidden by ``--quiet``, ``debug`` shown only by ``--verbose``."""
        needed = {"debug": 1, "info": 0}.get(level, -1)
        if self.verbosity < needed:
            if self.log_file is not None and level != "debug":
                self.log_file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
            return
        prefix = "" if level == "info" else f"{level}: "
        payload = {"event": "message", "level": level, "message": text}
        payload.update({k: _finite_or_none(v) for k, v in fields.items()})
        self._emit(prefix + text, payload)

    def iteration(self, record: IterationRecord, race_start: int | None = None) -> None:
        """The summary line of one iteration; ``race_start``: the start it trained, while a race is undecided."""
        text = iteration_text(record, race_start)
        if self.verbosity < 0:
            if self.log_file is not None:
                self.log_file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
            return
        race = {} if race_start is None else {"race_start": race_start}
        self._emit(text, {"event": "iteration", **race, **iteration_fields(record), "loss_units": LOSS_UNITS})

    def event(self, name: str, text: str, **fields: Any) -> None:
        """A structured event (``done``, ``interrupted``) with a human-readable form."""
        if self.verbosity < 0 and name != "interrupted":
            return
        payload = {"event": name, "message": text, **{k: _finite_or_none(v) for k, v in fields.items()}}
        self._emit(text, payload)

    # -- per-pass bar ----------------------------------------------------------------
    def start_pass(self, label: str, rows: int) -> None:
        """Announce the next pass; the bar appears with its first finished block."""
        self.close_bar()
        self.pass_label, self.pass_rows, self._rows_done = label, rows, 0

    def advance(self, rows: int) -> None:
        """Rows of one finished block (the local backend's progress hook)."""
        self._rows_done += rows
        if not self.bar_enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.pass_rows, desc=self.pass_label, unit="rows", unit_scale=True,
                file=self.stream, leave=False, dynamic_ncols=True,
            )
        self._bar.update(rows)
        if self._rows_done >= self.pass_rows:
            self.close_bar()

    def close_bar(self) -> None:
        """Close the current pass's progress bar, if one is shown."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class ReporterHandler(logging.Handler):
    """Routes the library's log records through a :class:`Reporter` (one format for all lines)."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__()
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        """Pass ``record`` to :meth:`Reporter.message`, with the logger's name as a field.

        DEBUG and INFO records are shown at level ``"debug"``; others keep their level name.
        """
        level = {logging.DEBUG: "debug", logging.INFO: "debug"}.get(record.levelno, record.levelname.lower())
        self.reporter.message(record.getMessage().rstrip(), level=level, logger=record.name)
