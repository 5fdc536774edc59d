"""The backend a job runs its passes on, with the CLI's progress hook and thread plan."""

from __future__ import annotations

from collections.abc import Callable

from ..backends import Backend, make_backend
from ..sources import Dataset
from .config import JobConfig
from .planning import local_workers


def build_backend(job: JobConfig, dataset: Dataset, on_rows: Callable[[int], None]) -> Backend:
    """The backend a job asks for; the local one reports every finished block to ``on_rows``."""
    if job.uses_dask:
        options = {"scheduler_address": job.scheduler, "n_workers": job.dask_workers}
        return make_backend("dask", progress=on_rows, **{k: v for k, v in options.items() if v is not None})
    # One thread means no prefetch thread either: --threads caps streamls's own threads too.
    return make_backend("local", prefetch=job.threads != 1, progress=on_rows, workers=local_workers(job, dataset))
