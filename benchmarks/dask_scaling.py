"""Throughput of one training pass: local backend against 1 and 2 single-threaded Dask workers.

Every configuration runs the same pass (a ``StatisticsRequest`` with hidden-layer
statistics) over the same HDF5 file with one BLAS thread per process: the local backend
under ``threadpoolctl``, the Dask workers through the backend's BLAS-limit plugin. Both
Dask runs use the same partitions. Prints one JSON object per result; ratios are taken
against the local backend and the one-worker cluster measured in the same run.

Usage::

    python benchmarks/dask_scaling.py [--rows 300000] [--features 24] [--hidden 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import operator
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
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


def timed(run: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls, after one untimed warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def task_overhead_ms(backend: DaskBackend, n_tasks: int = 200) -> float:
    """Milliseconds per task of trivial tasks reduced by the backend's own tree (2n - 1 tasks)."""
    client = backend.client

    def once() -> None:
        parts = [client.submit(operator.pos, i, pure=False) for i in range(n_tasks)]
        assert tree_sum(client, parts, f"overhead-{time.perf_counter_ns()}").result() == n_tasks * (n_tasks - 1) // 2

    return 1e3 * statistics.median(timed(once, 3)) / (2 * n_tasks - 1)


def blas_threads(backend: DaskBackend) -> list[int]:
    """Largest BLAS/OpenMP pool size on each worker."""
    return sorted(backend.client.run(lambda: max((p["num_threads"] for p in threadpool_info()), default=0)).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--features", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--chunk-rows", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = make_data(Path(tmp), args.rows, args.features, args.chunk_rows)
        dataset = Dataset(f"{path}:/X", f"{path}:/y", block_rows=args.chunk_rows)
        with threadpool_limits(limits=1):
            local = LocalBackend()
            moments = local.run(dataset, MomentsRequest(Holdout(), np.arange(args.hidden, dtype=np.int64)))
            standardizer = Standardizer.from_moments(moments)
            W = initial_weights(standardizer.inputs(moments.anchors()), args.hidden, np.random.default_rng(1))
            request = StatisticsRequest(
                standardizer, W, np.zeros((args.hidden + 1, 1)), 0.0, Holdout(), W_prev=W, hidden=True
            )
            local_times = timed(lambda: local.run(dataset, request), args.repeats)
        common = {
            "benchmark": "dask_scaling", "rows": args.rows, "features": args.features, "hidden": args.hidden,
            "block_rows": dataset.block_rows, "repeats": args.repeats,
        }
        local_rate = args.rows / statistics.median(local_times)
        print(json.dumps({
            **common, "backend": "local", "workers": 0, "blas_threads": 1,
            "seconds": statistics.median(local_times), "seconds_all": local_times,
            "rows_per_s": local_rate, "ratio_vs_local": 1.0,
        }), flush=True)

        # The same partitions for both clusters: the default plan of the two-worker one.
        partition_rows = -(-args.rows // (2 * 4))
        rates: dict[int, float] = {}
        for workers in (1, 2):
            backend = DaskBackend(n_workers=workers, partition_rows=partition_rows)
            try:
                times = timed(lambda backend=backend: backend.run(dataset, request), args.repeats)
                rates[workers] = args.rows / statistics.median(times)
                n_partitions = len(backend.partitions(dataset))
                overhead = task_overhead_ms(backend)
                result = {
                    **common, "backend": "dask", "workers": workers, "threads_per_worker": 1,
                    "blas_threads": blas_threads(backend), "partitions": n_partitions,
                    "tasks_per_pass": 2 * n_partitions - 1,
                    "seconds": statistics.median(times), "seconds_all": times,
                    "rows_per_s": rates[workers], "ratio_vs_local": rates[workers] / local_rate,
                    "task_overhead_ms": overhead,
                    "overhead_share_of_pass": (2 * n_partitions - 1) * overhead / 1e3 / statistics.median(times),
                }
                if workers == 2:
                    speedup = rates[2] / rates[1]
                    result.update(speedup_vs_1_worker=speedup, target=TARGET_SPEEDUP, meets_target=speedup >= TARGET_SPEEDUP)
                print(json.dumps(result), flush=True)
            finally:
                backend.close()
        dataset.close()


if __name__ == "__main__":
    main()
