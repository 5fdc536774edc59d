"""``streamls train``: a fresh or resumed job trained into its run directory.

A checkpoint is written after every iteration's solves (the state a resumed run starts
from) and once after the moments pass (iteration 0); the last ``--keep-checkpoints`` are
kept. SIGINT and SIGTERM stop the run at the next safe point (:mod:`.signals`), keeping the
last checkpoint, and it exits with 128 + the signal number. The pieces live beside this
module: the run directory (:mod:`.rundir`), the data and memory plan (:mod:`.planning`),
the backend (:mod:`.backend`), thread caps (:mod:`.threads`) and checkpoints
(:mod:`.checkpoint`).
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..backends import Backend
from ..errors import ConfigError, OutputExistsError, SourceFormatError
from ..hyperparameters import TrainConfig
from ..sources import Dataset
from ..training import IterationRecord, Trainer, TrainResult, TrainState
from . import checkpoint
from .backend import build_backend
from .config import RUNTIME_KEYS, JobConfig, absolute_spec, changed_keys, check_values, merged, read_toml, to_toml
from .lock import RunLock
from .planning import block_size_note, check_fits, open_dataset, planned_dataset, pool_budget
from .progress import LOSS_UNITS, Reporter, number_text, target_units
from .report import REPORT_MD
from .rundir import CONFIG, LOG, MODEL, clear_run, run_files, write_outputs
from .signals import Interrupted, StopFlag
from .threads import limited_threads


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
    The iterations of a race of starts are logged with their start and not saved: the
    state to resume from is the kept start's, reported once more when the race is decided.
    """

    def on_iteration(current: TrainState, record: IterationRecord) -> None:
        if save is not None and current.race_start is None:
            save(current)
        reporter.iteration(record, current.race_start)
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
        random_state=job.random_state if job.random_state is not None else secrets.randbelow(2**31),
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
            dataset = open_dataset(job, job.block_rows)
            try:
                check_fits(job, dataset)
                return _train_in(run_dir, job, dataset, reporter, resuming=True)
            finally:
                dataset.close()
    job = fresh_job(flags, config_file)
    assert job.out_dir is not None
    run_dir = job.out_dir
    if os.path.isdir(run_dir) and run_files(run_dir) and not overwrite:
        raise OutputExistsError(
            f"{run_dir} holds a previous run ({', '.join(run_files(run_dir))}); continue it with "
            f"`streamls train --resume {run_dir}`, pass --overwrite to replace it, or choose another --out-dir"
        )
    requested_rows = job.block_rows
    job, dataset = planned_dataset(job)  # refuses before any row is read, and before RUN is touched
    try:
        os.makedirs(run_dir, exist_ok=True)
        with RunLock(run_dir):
            if overwrite:
                clear_run(run_dir)
            with open(os.path.join(run_dir, CONFIG), "w") as handle:
                handle.write(to_toml(job, header="streamls effective configuration; `streamls train --resume` reads it"))
            return _train_in(run_dir, job, dataset, reporter, resuming=False, requested_rows=requested_rows)
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


def _train_in(
    run_dir: str, job: JobConfig, dataset: Dataset, reporter: Reporter, resuming: bool, requested_rows: int | None = None
) -> int:
    """Train into a locked run directory, logging to its ``train.log``; returns the exit code.

    ``requested_rows`` is the ``--block-rows`` of a fresh run, before rounding to stored chunks.
    """
    with open(os.path.join(run_dir, LOG), "a") as log:
        reporter.log_file = log
        try:
            return _train_logged(run_dir, job, dataset, reporter, resuming, requested_rows)
        finally:
            reporter.log_file = None


def _train_logged(
    run_dir: str, job: JobConfig, dataset: Dataset, reporter: Reporter, resuming: bool, requested_rows: int | None
) -> int:
    config = TrainConfig(**job.train_options())
    state = _resume_state(run_dir, dataset, job, reporter) if resuming else None
    note = block_size_note(requested_rows, dataset.block_rows, dataset.x_source)
    if note is not None:
        reporter.message(note, "warning")
    reporter.message(
        f"training on {dataset.name}: {dataset.n_rows} rows, {dataset.n_features} inputs, {dataset.n_targets} "
        f"outputs; hidden_units={job.hidden_units}, blocks of {dataset.block_rows} rows; run directory {run_dir}"
    )
    meta = _checkpoint_meta(job, dataset)
    stop = StopFlag()

    def save(state: TrainState) -> None:
        checkpoint.save_checkpoint(state, checkpoint.checkpoint_path(run_dir, state.iteration), meta)
        checkpoint.prune_checkpoints(run_dir, state.iteration, job.keep_checkpoints)

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
    _report_done(run_dir, result, reporter)
    return 0


def _report_done(run_dir: str, result: TrainResult, reporter: Reporter) -> None:
    """The ``done`` event: the best iteration's losses, standardised and, for one target, in target units."""
    best = result.history[result.best_iteration]
    y_scale = result.model.standardizer.y_scale
    train_mse, val_mse = target_units(best.train_loss, y_scale), target_units(best.val_loss, y_scale)
    in_target = (
        "" if train_mse is None else f"; train MSE {train_mse:.6g}, val MSE {number_text(val_mse, '.6g')} (target units)"
    )
    model = os.path.join(run_dir, MODEL)
    reporter.event(
        "done",
        f"done: {result.stop_reason}; best iteration {result.best_iteration} (train {best.train_loss:.6g}, "
        f"val {number_text(best.val_loss, '.6g')} ({LOSS_UNITS}){in_target}); model {model}; "
        f"report {os.path.join(run_dir, REPORT_MD)}",
        best_iteration=result.best_iteration,
        stop_reason=result.stop_reason,
        train_loss=best.train_loss,
        val_loss=best.val_loss,
        loss_units=LOSS_UNITS,
        train_mse=train_mse,
        val_mse=val_mse,
        model=model,
    )


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
