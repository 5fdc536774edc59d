"""Throughput of one training pass: local backend against 1 and 2 single-threaded Dask workers.

Every configuration runs the same pass (a ``StatisticsRequest`` with hidden-layer
statistics) over the same HDF5 file with one BLAS thread per process: the local backend
under ``threadpoolctl``, the Dask workers through the backend's BLAS-limit plugin. Both
Dask runs use the same partitions. Repeats are interleaved (local, 1 worker, 2 workers,
local, ...) so that load from other processes hits each alike. Prints one JSON object per
result; ratios are taken against the local backend and the one-worker cluster measured in
the same run.

On a shared machine wall-clock figures measure the CPU share the processes got as much as
the code, so CPU time is recorded too: ``worker_cpu_seconds`` (all workers, per pass),
``worker_cpu_vs_local_cpu`` (Dask's CPU cost against the local pass's), ``busy_workers``
(task compute time over wall time: how many workers computed at once, 2 when both are kept
busy) and ``cpu_bound_speedup_vs_1_worker`` (the one-worker pass's CPU over the busiest
worker's CPU in the two-worker pass: the speedup with a free core per worker).

Usage::

    python benchmarks/dask_scaling.py [--rows 300000] [--features 24] [--hidden 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import operator
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from distributed import get_task_stream
from threadpoolctl import threadpool_info, threadpool_limits

from streamls.backends import LocalBackend
from streamls.backends.dask import DaskBackend, tree_sum
from streamls.initialization import initial_weights
from streamls.sources import Dataset
from streamls.stats import Holdout, MomentsRequest, Standardizer, StatisticsRequest

TARGET_SPEEDUP = 1.6


def make_data(directory: Path, rows: int, features: int, chunk_rows: int) -> str:
    """Write X (rows, features) and y (rows,) to an HDF5 file; return its path."""
    path = str(directory / "scaling.h5")
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        X = handle.create_dataset("X", shape=(rows, features), dtype="f8", chunks=(chunk_rows, features))
        y = handle.create_dataset("y", shape=(rows,), dtype="f8", chunks=(chunk_rows,))
        w = rng.normal(size=features)
        for start in range(0, rows, 100_000):
            x = rng.normal(size=(min(100_000, rows - start), features))
            X[start : start + len(x)] = x
            y[start : start + len(x)] = np.maximum(x @ w, 0) + 0.1 * rng.normal(size=len(x))
    return path


def seconds(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@dataclass
class Sample:
    """One timed pass: wall seconds, CPU seconds of this process and of each worker, busy workers."""

    wall: float
    driver_cpu: float
    worker_cpu: list[float] = field(default_factory=list)
    busy_workers: float = math.nan


def measure(backend: LocalBackend | DaskBackend, dataset: Dataset, request: StatisticsRequest) -> Sample:
    """Time one pass; for Dask also the CPU each worker spent and how many computed at once."""
    if isinstance(backend, LocalBackend):
        cpu = time.process_time()
        wall = seconds(lambda: backend.run(dataset, request))
        return Sample(wall, time.process_time() - cpu)
    before = backend.client.run(time.process_time)
    cpu = time.process_time()
    with get_task_stream(backend.client) as stream:
        wall = seconds(lambda: backend.run(dataset, request))
    driver_cpu = time.process_time() - cpu
    after = backend.client.run(time.process_time)
    worker_cpu = sorted(after[w] - before[w] for w in after)
    return Sample(wall, driver_cpu, worker_cpu, compute_seconds(stream.data) / wall)


def compute_seconds(stream: list[dict[str, Any]]) -> float:
    """Seconds spent computing in the tasks of a Dask task stream, summed over tasks."""
    return sum(s["stop"] - s["start"] for task in stream for s in task["startstops"] if s["action"] == "compute")


def task_overhead_ms(backend: DaskBackend, n_tasks: int = 200) -> float:
    """Milliseconds per task of trivial tasks reduced by the backend's own tree (2n - 1 tasks)."""
    client = backend.client

    def once() -> None:
        parts = [client.submit(operator.pos, i, pure=False) for i in range(n_tasks)]
        assert tree_sum(client, parts, f"overhead-{time.perf_counter_ns()}").result() == n_tasks * (n_tasks - 1) // 2

    once()
    return 1e3 * statistics.median(seconds(once) for _ in range(3)) / (2 * n_tasks - 1)


def blas_threads(backend: DaskBackend) -> list[int]:
    """Largest BLAS/OpenMP pool size on each worker."""
    return sorted(backend.client.run(lambda: max((p["num_threads"] for p in threadpool_info()), default=0)).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--chunk-rows", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1), contextlib.ExitStack() as stack:
        path = make_data(Path(tmp), args.rows, args.features, args.chunk_rows)
        dataset = Dataset(f"{path}:/X", f"{path}:/y", block_rows=args.chunk_rows)
        stack.callback(dataset.close)
        local = LocalBackend()
        moments = local.run(dataset, MomentsRequest(Holdout(), np.arange(args.hidden, dtype=np.int64)))
        standardizer = Standardizer.from_moments(moments)
        W = initial_weights(standardizer.inputs(moments.anchors()), args.hidden, np.random.default_rng(1))
        request = StatisticsRequest(standardizer, W, np.zeros((args.hidden + 1, 1)), 0.0, Holdout(), W_prev=W)

        # The same partitions for both clusters: the default plan of the two-worker one.
        partition_rows = -(-args.rows // (2 * 4))
        clusters = {}
        for workers in (1, 2):
            clusters[workers] = DaskBackend(n_workers=workers, partition_rows=partition_rows)
            stack.callback(clusters[workers].close)
        backends: dict[int, Any] = {0: local, **clusters}
        for backend in backends.values():
            backend.run(dataset, request)  # warm-up: imports, file handles, worker caches
        # Interleaved repeats, so that load from other processes hits every configuration alike.
        samples: dict[int, list[Sample]] = {workers: [] for workers in backends}
        load_before = os.getloadavg()[0]
        for _ in range(args.repeats):
            for workers, backend in backends.items():
                samples[workers].append(measure(backend, dataset, request))
        load_after = os.getloadavg()[0]

        def median(workers: int, value: Callable[[Sample], float]) -> float:
            return statistics.median(value(sample) for sample in samples[workers])

        rates = {workers: args.rows / median(workers, lambda s: s.wall) for workers in backends}
        worker_cpu = {workers: median(workers, lambda s: sum(s.worker_cpu)) for workers in clusters}
        common = {
            "benchmark": "dask_scaling", "rows": args.rows, "features": args.features, "hidden": args.hidden,
            "block_rows": dataset.block_rows, "repeats": args.repeats, "cpu_count": os.cpu_count(),
            "load_average_1min": [load_before, load_after],
        }
        for workers, backend in backends.items():
            result: dict[str, Any] = {
                **common, "backend": "local" if workers == 0 else "dask", "workers": workers,
                "seconds": median(workers, lambda s: s.wall), "seconds_all": [s.wall for s in samples[workers]],
                "rows_per_s": rates[workers], "ratio_vs_local": rates[workers] / rates[0],
                "client_cpu_seconds": median(workers, lambda s: s.driver_cpu),
            }
            if workers:
                n_partitions = len(backend.partitions(dataset))
                overhead = task_overhead_ms(backend)
                result.update(
                    threads_per_worker=1, blas_threads=blas_threads(backend), partitions=n_partitions,
                    tasks_per_pass=2 * n_partitions - 1, task_overhead_ms=overhead,
                    overhead_share_of_pass=(2 * n_partitions - 1) * overhead / 1e3 / result["seconds"],
                    busy_workers=median(workers, lambda s: s.busy_workers),
                    worker_cpu_seconds=median(workers, lambda s: sum(s.worker_cpu)),
                    max_worker_cpu_seconds=median(workers, lambda s: max(s.worker_cpu)),
                    worker_cpu_vs_local_cpu=worker_cpu[workers] / median(0, lambda s: s.driver_cpu),
                )
            else:
                result.update(blas_threads=1)
            if workers == 2:
                speedup = rates[2] / rates[1]
                result.update(
                    speedup_vs_1_worker=speedup, target=TARGET_SPEEDUP, meets_target=speedup >= TARGET_SPEEDUP,
                    # What the wall-clock speedup would be with a free core per worker: the
                    # one-worker pass's CPU over the busiest of the two workers' CPU.
                    cpu_bound_speedup_vs_1_worker=worker_cpu[1] / result["max_worker_cpu_seconds"],
                )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
