"""``streamls train``: a run directory with checkpoints, resume, signal handling and limits.

Run directory layout::

    RUN/config.toml          effective configuration (what --resume reads back)
    RUN/checkpoints/ckpt-NNNNNN.h5   state after the solves that produced model NNNNNN
    RUN/train.log            plain log lines with timestamps
    RUN/model.h5             the best model, written when training ends
    RUN/history.csv, RUN/history.json, RUN/report.png, RUN/report.md
    RUN/.lock                held while a job runs

A checkpoint is written after every iteration's solves (the state a resumed run starts
from) and once after the moments pass (iteration 0). SIGINT and SIGTERM only set a flag;
the run stops at the next safe point (after a block or after a checkpoint), keeping the
last checkpoint, and exits with 128 + the signal number.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from types import FrameType
from typing import Any

from ..backends import Backend, make_backend
from ..concurrency import available_threads
from ..errors import ConfigError, OutputExistsError, SourceFormatError
from ..hyperparameters import TrainConfig
from ..sizes import parse_size
from ..sources import Dataset
from ..training import IterationRecord, Trainer, TrainResult, TrainState
from . import checkpoint
from .config import RUNTIME_KEYS, JobConfig, absolute_spec, changed_keys, check_values, merged, read_toml, to_toml
from .lock import RunLock
from .progress import Reporter, number_text
from .report import write_report
from .resources import MemoryEstimate, limit_error, plan_block_rows, resident_bytes

CONFIG = "config.toml"
MODEL = "model.h5"
LOG = "train.log"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
#: Files of a previous run that ``--overwrite`` removes (and whose presence needs it).
RUN_FILES = (CONFIG, MODEL, LOG, HISTORY_CSV, HISTORY_JSON, "report.png", "report.md", checkpoint.DIRECTORY)
DEFAULT_BLOCK_ROWS = 65536


class Interrupted(Exception):
    """Raised at a safe point after SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopFlag:
    """Signal handlers that only record the signal; :meth:`check` raises at safe points.

    A second signal raises at once: checkpoints are atomic, so stopping anywhere is safe,
    only slower to resume.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def check(self) -> None:
        """Raise :class:`Interrupted` if SIGINT or SIGTERM has arrived; else do nothing."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Context manager: record SIGINT and SIGTERM while inside, then restore the previous handlers.

        Yields this flag. Must be entered from the main thread (a :mod:`signal` rule).
        """
        previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Cap BLAS/OpenMP threads with threadpoolctl (environment variables stay untouched)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def build_backend(job: JobConfig, dataset: Dataset, on_rows: Callable[[int], None]) -> Backend:
    """The backend a job asks for; the local one reports every finished block to ``on_rows``."""
    if job.uses_dask:
        options = {"scheduler_address": job.scheduler, "n_workers": job.dask_workers}
        return make_backend("dask", progress=on_rows, **{k: v for k, v in options.items() if v is not None})
    # One thread means no prefetch thread either: --threads caps streamls's own threads too.
    return make_backend("local", prefetch=job.threads != 1, progress=on_rows, workers=local_workers(job, dataset))


def local_workers(job: JobConfig, dataset: Dataset) -> int | None:
    """Block-computing threads of a local run: ``--threads`` (``None``: automatic), fewer
    when more would not fit under ``--memory-limit`` with the planned block size."""
    if job.memory_limit is None:
        return job.threads
    limit, most = parse_size(job.memory_limit), job.threads or available_threads()
    fitting = [w for w in range(1, most + 1) if memory_estimate(job, dataset, w).peak_bytes(dataset.block_rows) <= limit]
    return max(fitting, default=1)


def pool_budget(job: JobConfig, dataset: Dataset) -> int | None:
    """Bytes the sample pool may take: what ``--memory-limit`` leaves beside a pass's estimated peak.

    ``None`` without a limit (the library's default share of available memory); 0 when
    nothing is left, so the run streams every stage from storage. On Dask the limit is the
    pool's share per run, held across the workers.
    """
    if job.memory_limit is None:
        return None
    limit = parse_size(job.memory_limit)
    if job.uses_dask:
        return limit
    peak = memory_estimate(job, dataset, local_workers(job, dataset) or available_threads()).peak_bytes(dataset.block_rows)
    return max(limit - peak, 0)


def open_dataset(job: JobConfig, block_rows: int | None) -> Dataset:
    """The job's data (opening files reads metadata only)."""
    if job.data is None:
        raise ConfigError("train needs DATA (the positional argument, or 'data' in the --config file)")
    target_cols = job.target_col if job.target_col is None or len(job.target_col) > 1 else job.target_col[0]
    return Dataset(job.data, job.y, target_cols=target_cols if job.y is None else None, nan_policy=job.nan_policy, block_rows=block_rows)


def memory_estimate(job: JobConfig, dataset: Dataset, workers: int = 1) -> MemoryEstimate:
    """The memory model of the job's network on ``dataset`` with ``workers`` block threads, with this
    process's current resident bytes as baseline."""
    return MemoryEstimate(job.hidden_units, dataset.n_features, dataset.n_targets, resident_bytes(), workers)


def planned_dataset(job: JobConfig) -> tuple[JobConfig, Dataset]:
    """Open the data, choose the block size under ``--memory-limit``, record it in the job.

    Raises :class:`MemoryLimitError` before any row is read when the run cannot fit.
    """
    dataset = open_dataset(job, job.chunk_rows)
    if job.memory_limit is not None and not job.uses_dask:
        chunk = dataset.x_source.chunk_rows
        rows = plan_block_rows(memory_estimate(job, dataset), parse_size(job.memory_limit), dataset.block_rows, chunk)
        if rows != dataset.block_rows:
            dataset.close()
            dataset = open_dataset(job, rows)
    return replace(job, chunk_rows=dataset.block_rows), dataset


def check_fits(job: JobConfig, dataset: Dataset) -> None:
    """On resume the block size is fixed (it decides the sums' order); refuse if it does not fit."""
    if job.memory_limit is None or job.uses_dask:
        return
    limit, estimate = parse_size(job.memory_limit), memory_estimate(job, dataset)
    if estimate.peak_bytes(dataset.block_rows) > limit:
        raise limit_error(estimate, limit, dataset.block_rows)


def _jsonable(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_history(run_dir: str, history: list[IterationRecord]) -> None:
    """``history.csv`` (one row per iteration) and ``history.json`` (NaN as null)."""
    rows = [asdict(r) for r in history]
    with open(os.path.join(run_dir, HISTORY_CSV), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(run_dir, HISTORY_JSON), "w") as handle:
        json.dump([{k: _jsonable(v) for k, v in row.items()} for row in rows], handle, indent=1)


def write_outputs(run_dir: str, result: TrainResult) -> None:
    """The model, the history and the report of a finished run."""
    result.model.save(os.path.join(run_dir, MODEL))
    write_history(run_dir, result.history)
    write_report(run_dir, result.model.history, result.model.hyperparameters, result.model.info)


def train_loop(
    dataset: Dataset,
    config: TrainConfig,
    backend: Backend,
    reporter: Reporter,
    stop: StopFlag,
    state: TrainState | None = None,
    save: Callable[[TrainState], None] | None = None,
    pool_budget: int | None = None,
) -> TrainResult:
    """Train from ``state`` (or from scratch), reporting every pass and iteration.

    ``pool_budget`` bounds the in-memory sample pool (``None``: the library's default share).

    ``save(state)`` runs after the moments pass and after every iteration's solves,
    before the stop flag is checked, so a stopped run always has a checkpoint to resume.
    """

    def on_iteration(current: TrainState, record: IterationRecord) -> None:
        if save is not None:
            save(current)
        reporter.iteration(record)
        stop.check()

    trainer = Trainer(dataset, config, backend, on_iteration, memory_limit=pool_budget, on_pass=reporter.start_pass)
    if state is None:
        state = trainer.initial_state()
        if save is not None:
            save(state)
        stop.check()
    result = trainer.run(state)
    reporter.iteration(result.history[-1])
    return result


def _run_has_files(run_dir: str) -> list[str]:
    return [name for name in RUN_FILES if os.path.lexists(os.path.join(run_dir, name))]


def _clear_run(run_dir: str) -> None:
    for name in _run_has_files(run_dir):
        path = os.path.join(run_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def fresh_job(flags: dict[str, Any], config_file: str | None) -> JobConfig:
    """The job of a new run: defaults, then the config file, then flags; paths made absolute."""
    layers = [read_toml(config_file)] if config_file else []
    job = merged(*layers, check_values(flags, "command line"))
    if job.out_dir is None:
        raise ConfigError("train needs --out-dir (or 'out_dir' in the --config file), or --resume RUN_DIR")
    if job.data is None:
        raise ConfigError("train needs DATA (the positional argument, or 'data' in the --config file)")
    TrainConfig(**job.train_options())  # validate the hyperparameters before touching anything
    return replace(
        job,
        data=absolute_spec(job.data),
        y=absolute_spec(job.y) if job.y is not None else None,
        out_dir=os.path.abspath(job.out_dir),
        # A drawn seed is recorded, so every run can be repeated and resumed identically.
        seed=job.seed if job.seed is not None else secrets.randbelow(2**31),
        backend="dask" if job.uses_dask else job.backend,
    )


def resumed_job(run_dir: str, flags: dict[str, Any], config_file: str | None) -> JobConfig:
    """The stored job of ``run_dir`` with the runtime options (threads, backend, limits) given now."""
    config_path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(config_path):
        raise ConfigError(f"{run_dir}: not a streamls run directory (no {CONFIG}); start a run with --out-dir")
    stored = merged(read_toml(config_path))
    given = check_values(flags, "command line")
    if config_file:
        given = {**read_toml(config_file), **given}
    for key in ("data", "y"):
        if given.get(key) is not None:
            given[key] = absolute_spec(given[key])
    conflicts = changed_keys(stored, given)
    if conflicts:
        detail = ", ".join(f"{k} (stored {getattr(stored, k)!r}, given {given[k]!r})" for k in conflicts)
        raise ConfigError(
            f"--resume continues {run_dir} with its stored configuration ({config_path}); these settings "
            f"differ: {detail}. Drop them, or start a new run with --out-dir"
        )
    return replace(stored, **{k: v for k, v in given.items() if k in RUNTIME_KEYS and k != "out_dir"})


def run_train(flags: dict[str, Any], config_file: str | None, resume: str | None, overwrite: bool, reporter: Reporter) -> int:
    """Run ``streamls train``; returns the exit code (errors raise StreamLSError)."""
    if resume is not None:
        run_dir = os.path.abspath(resume)
        if not os.path.isdir(run_dir):
            raise ConfigError(f"--resume {resume}: no such run directory")
        with RunLock(run_dir):
            job = resumed_job(run_dir, flags, config_file)
            if os.path.exists(os.path.join(run_dir, MODEL)):
                reporter.event("done", f"{run_dir} has finished already ({MODEL} exists); nothing to do", run_dir=run_dir)
                return 0
            dataset = open_dataset(job, job.chunk_rows)
            try:
                check_fits(job, dataset)
                return _train_in(run_dir, job, dataset, reporter, resuming=True)
            finally:
                dataset.close()
    job = fresh_job(flags, config_file)
    assert job.out_dir is not None
    run_dir = job.out_dir
    if os.path.isdir(run_dir) and _run_has_files(run_dir) and not overwrite:
        raise OutputExistsError(
            f"{run_dir} holds a previous run ({', '.join(_run_has_files(run_dir))}); continue it with "
            f"`streamls train --resume {run_dir}`, pass --overwrite to replace it, or choose another --out-dir"
        )
    job, dataset = planned_dataset(job)  # refuses before any row is read, and before RUN is touched
    try:
        os.makedirs(run_dir, exist_ok=True)
        with RunLock(run_dir):
            if overwrite:
                _clear_run(run_dir)
            with open(os.path.join(run_dir, CONFIG), "w") as handle:
                handle.write(to_toml(job, header="streamls effective configuration; `streamls train --resume` reads it"))
            return _train_in(run_dir, job, dataset, reporter, resuming=False)
    finally:
        dataset.close()


def _resume_state(run_dir: str, dataset: Dataset, job: JobConfig, reporter: Reporter) -> TrainState | None:
    leftovers = checkpoint.remove_leftovers(run_dir)
    if leftovers:
        reporter.message(f"removed {len(leftovers)} partial checkpoint file(s) of an interrupted write", "warning")
    latest = checkpoint.latest_checkpoint(run_dir)
    if latest is None:
        reporter.message(f"{run_dir}: no checkpoint yet; starting from the beginning")
        return None
    state, meta, path = latest
    expected = _checkpoint_meta(job, dataset)
    if meta != expected:
        raise SourceFormatError(
            f"{path}: the checkpoint was written for {meta}, but the data and configuration now give {expected}; "
            f"the data changed since the run started"
        )
    reporter.message(f"resuming from {path} (iteration {state.iteration})")
    return state


def _checkpoint_meta(job: JobConfig, dataset: Dataset) -> dict[str, Any]:
    return {
        "n_rows": dataset.n_rows,
        "n_features": dataset.n_features,
        "n_targets": dataset.n_targets,
        "hidden_units": job.hidden_units,
        "block_rows": dataset.block_rows,
    }


def _train_in(run_dir: str, job: JobConfig, dataset: Dataset, reporter: Reporter, resuming: bool) -> int:
    """Train into a locked run directory; returns the exit code."""
    with open(os.path.join(run_dir, LOG), "a") as log:
        reporter.log_file = log
        try:
            return _train_logged(run_dir, job, dataset, reporter, resuming)
        finally:
            reporter.log_file = None


def _train_logged(run_dir: str, job: JobConfig, dataset: Dataset, reporter: Reporter, resuming: bool) -> int:
    config = TrainConfig(**job.train_options())
    state = _resume_state(run_dir, dataset, job, reporter) if resuming else None
    reporter.message(
        f"training on {dataset.name}: {dataset.n_rows} rows, {dataset.n_features} inputs, {dataset.n_targets} "
        f"outputs; hidden_units={job.hidden_units}, blocks of {dataset.block_rows} rows; run directory {run_dir}"
    )
    meta = _checkpoint_meta(job, dataset)
    stop = StopFlag()

    def save(state: TrainState) -> None:
        checkpoint.save_checkpoint(state, checkpoint.checkpoint_path(run_dir, state.iteration), meta)

    def on_rows(rows: int) -> None:
        reporter.advance(rows)
        stop.check()

    backend = build_backend(job, dataset, on_rows)
    try:
        with stop.installed(), limited_threads(job.threads):
            result = train_loop(dataset, config, backend, reporter, stop, state, save, pool_budget(job, dataset))
    except Interrupted as exc:
        return _interrupted(run_dir, exc, reporter)
    finally:
        reporter.close_bar()
        backend.close()
    write_outputs(run_dir, result)
    best = result.history[result.best_iteration]
    reporter.event(
        "done",
        f"done: {result.stop_reason}; best iteration {result.best_iteration} (train {best.train_loss:.6g}, "
        f"val {number_text(best.val_loss, '.6g')}); model {os.path.join(run_dir, MODEL)}; report {os.path.join(run_dir, 'report.md')}",
        best_iteration=result.best_iteration,
        stop_reason=result.stop_reason,
        train_loss=best.train_loss,
        val_loss=best.val_loss,
        model=os.path.join(run_dir, MODEL),
    )
    return 0


def _interrupted(run_dir: str, exc: Interrupted, reporter: Reporter) -> int:
    files = checkpoint.checkpoint_files(run_dir)
    where = f"the last checkpoint is {files[-1][1]} (iteration {files[-1][0]})" if files else "no checkpoint was written yet"
    reporter.event(
        "interrupted",
        f"interrupted by {signal.Signals(exc.signum).name}; {where}; resume with: streamls train --resume {run_dir}",
        signal=signal.Signals(exc.signum).name,
        checkpoint=files[-1][1] if files else None,
        resume=f"streamls train --resume {run_dir}",
    )
    return 128 + exc.signum
