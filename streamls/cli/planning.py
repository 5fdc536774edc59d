"""What a training job runs on: its data opened in blocks, sized to ``--block-rows`` and ``--memory-limit``.

Blocks are whole stored chunks of the inputs (see :func:`streamls.sources.dataset.round_block_rows`);
under ``--memory-limit`` the block size and the number of block threads are the largest that
keep the estimate of :mod:`.resources` under the limit, and the sample pool gets what is left.
"""

from __future__ import annotations

from dataclasses import replace

from ..concurrency import available_threads
from ..errors import ConfigError
from ..sizes import parse_size
from ..sources import Dataset
from ..sources.base import Source
from .config import JobConfig
from .messages import rechunk_command
from .resources import MemoryEstimate, limit_error, plan_block_rows, resident_bytes


def open_dataset(job: JobConfig, block_rows: int | None) -> Dataset:
    """The job's data (opening files reads metadata only)."""
    if job.data is None:
        raise ConfigError("train needs DATA (the positional argument, or 'data' in the --config file)")
    target_cols = job.target_cols if job.target_cols is None or len(job.target_cols) > 1 else job.target_cols[0]
    return Dataset(job.data, job.y, target_cols=target_cols if job.y is None else None, nan_policy=job.nan_policy, block_rows=block_rows)


def memory_estimate(job: JobConfig, dataset: Dataset, workers: int = 1) -> MemoryEstimate:
    """The memory model of the job's network on ``dataset`` with ``workers`` block threads, with this
    process's current resident bytes as baseline."""
    return MemoryEstimate(job.hidden_units, dataset.n_features, dataset.n_targets, resident_bytes(), workers)


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


def planned_dataset(job: JobConfig) -> tuple[JobConfig, Dataset]:
    """Open the data, choose the block size under ``--memory-limit``, record it in the job.

    Raises :class:`~.resources.MemoryLimitError` before any row is read when the run cannot fit.
    """
    dataset = open_dataset(job, job.block_rows)
    if job.memory_limit is not None and not job.uses_dask:
        chunk = dataset.x_source.chunk_rows
        estimate = memory_estimate(job, dataset)
        rows = plan_block_rows(estimate, parse_size(job.memory_limit), dataset.block_rows, chunk, dataset.x_source.name)
        if rows != dataset.block_rows:
            dataset.close()
            dataset = open_dataset(job, rows)
    return replace(job, block_rows=dataset.block_rows), dataset


def check_fits(job: JobConfig, dataset: Dataset) -> None:
    """On resume the block size is fixed (it decides the sums' order); refuse if it does not fit."""
    if job.memory_limit is None or job.uses_dask:
        return
    limit, estimate = parse_size(job.memory_limit), memory_estimate(job, dataset)
    if estimate.peak_bytes(dataset.block_rows) > limit:
        raise limit_error(estimate, limit, dataset.block_rows, dataset.x_source.name)


def block_size_note(requested: int | None, block_rows: int, source: Source) -> str | None:
    """Why blocks of ``block_rows`` rows are read where ``--block-rows`` asked for fewer; ``None`` otherwise.

    Blocks are whole stored chunks of ``source`` (a block that split a chunk would have it
    read and decompressed twice), so a request below the stored chunk is rounded up.
    """
    if requested is None or block_rows <= requested:
        return None
    return (
        f"--block-rows {requested}: reading blocks of {block_rows} rows instead, because blocks are whole stored "
        f"chunks of {source.name} ({source.chunk_rows} rows each), so that no chunk is read twice; for smaller "
        f"blocks, re-chunk the data: {rechunk_command(source.name, requested)}"
    )
