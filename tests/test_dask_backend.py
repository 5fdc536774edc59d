"""The Dask backend on a real LocalCluster of two worker processes on loopback.

One cluster serves the whole module (starting one costs seconds). References are the
local backend's results on the same files, computed with one BLAS thread like the workers.

Dask-versus-local training comparisons start both runs from the same initial model. Fresh
initial hyperplanes pass exactly through data rows (streamls.initialization), so those
rows' activation signs are decided by rounding, and the first pass's moments, summed in
a different order on Dask, differ from the local ones in the last bits: from scratch the
two backends can pick different signs for such a row and end O(1e-2) apart. Dask against
Dask (same partitions, fixed tree) is bitwise reproducible, from scratch included.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import dask.array as da
import h5py
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster, get_worker
from distributed.diagnostics.plugin import SchedulerPlugin
from threadpoolctl import threadpool_limits

import streamls
from streamls.backends import make_backend
from streamls.backends.dask import DaskBackend, Partial
from streamls.errors import ConfigError, NonFiniteDataError
from streamls.sources import Dataset, HDF5Source
from streamls.stats import Holdout, MomentsRequest, PassStatistics, Standardizer, StatisticsRequest

N_ROWS, N_FEATURES, CHUNK = 6000, 5, 1000
FIT = {"hidden_units": 6, "max_iter": 2, "tol": 0.0, "random_state": 3, "validation_fraction": 0.2, "block_rows": CHUNK}


@pytest.fixture(scope="module")
def cluster() -> Any:
    # dashboard_address=":0": the scheduler's HTTP server takes a free port, never a fixed one.
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster, Client(cluster) as client:
        yield cluster, client


@pytest.fixture(scope="module")
def client(cluster: Any) -> Client:
    return cluster[1]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    y = np.maximum(X @ rng.normal(size=N_FEATURES), 0) + 0.1 * rng.normal(size=N_ROWS)
    return X, y


@pytest.fixture(scope="module")
def h5_path(tmp_path_factory: pytest.TempPathFactory, data: tuple[np.ndarray, np.ndarray]) -> str:
    path = str(tmp_path_factory.mktemp("h5") / "data.h5")
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=data[0], chunks=(CHUNK, N_FEATURES))
        handle.create_dataset("y", data=data[1], chunks=(CHUNK,))
    return path


@pytest.fixture(scope="module")
def zarr_path(tmp_path_factory: pytest.TempPathFactory, data: tuple[np.ndarray, np.ndarray]) -> str:
    path = str(tmp_path_factory.mktemp("zarr") / "data.zarr")
    group = zarr.open_group(path, mode="w")
    group.create_array("X", data=data[0], chunks=(CHUNK, N_FEATURES))
    group.create_array("y", data=data[1], chunks=(CHUNK,))
    return path


def assert_same_model(found: streamls.TrainResult, expected: streamls.TrainResult, rtol: float) -> None:
    """Weights agree to ``rtol`` relative to their largest entry; histories alike."""
    for a, b in ((found.model.W, expected.model.W), (found.model.B, expected.model.B)):
        assert np.max(np.abs(a - b)) <= rtol * np.max(np.abs(b))
    losses = [(r.train_loss, r.val_loss) for r in found.history]
    np.testing.assert_allclose(losses, [(r.train_loss, r.val_loss) for r in expected.history], rtol=rtol)
    assert (found.n_train, found.n_validation) == (expected.n_train, expected.n_validation)


def specs(kind: str, h5_path: str, zarr_path: str) -> tuple[Any, Any]:
    if kind == "hdf5":
        return f"{h5_path}:/X", f"{h5_path}:/y"
    if kind == "zarr":
        return f"{zarr_path}:X", f"{zarr_path}:y"
    return da.from_zarr(zarr_path, component="X"), da.from_zarr(zarr_path, component="y")


def local_and_dask(client: Client, X: Any, y: Any, backend: Any = "dask", **kwargs: Any) -> tuple[Any, Any]:
    """Train locally (one BLAS thread) and on Dask from the same initial model."""
    with threadpool_limits(limits=1):
        start = streamls.fit(X, y, **dict(kwargs, max_iter=0)).model
        local = streamls.fit(X, y, init=start, **kwargs)
    options = {"client": client} if backend == "dask" else {}
    return local, streamls.fit(X, y, init=start, backend=backend, **options, **kwargs)


@pytest.mark.parametrize("kind", ["hdf5", "zarr", "dask-array"])
def test_dask_training_equals_local(client: Client, h5_path: str, zarr_path: str, kind: str) -> None:
    local, distributed = local_and_dask(client, *specs(kind, h5_path, zarr_path), **FIT)
    assert_same_model(distributed, local, rtol=1e-9)
    assert client.status == "running"  # a client the user passed stays open


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dask_training_from_scratch_equals_local(client: Client, h5_path: str, seed: int) -> None:
    """Including the moments pass, whose merge order differs from the local one."""
    settings = dict(FIT, random_state=seed, max_iter=8)
    with threadpool_limits(limits=1):
        local = streamls.fit(f"{h5_path}:/X", f"{h5_path}:/y", **settings)
    distributed = streamls.fit(f"{h5_path}:/X", f"{h5_path}:/y", backend="dask", client=client, **settings)
    assert_same_model(distributed, local, rtol=1e-9)


def test_table_with_dropped_rows_equals_local(client: Client, tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    table = np.column_stack(data)
    table[[5, 2500, 5999], [0, 3, N_FEATURES]] = np.nan
    path = str(tmp_path / "table.h5")
    with h5py.File(path, "w") as handle:
        handle.create_dataset("T", data=table, chunks=(CHUNK, N_FEATURES + 1))
    backend = DaskBackend(client=client, partition_rows=1200)
    local, distributed = local_and_dask(client, path, None, backend, nan_policy="drop", **FIT)
    assert_same_model(distributed, local, rtol=1e-9)
    assert distributed.dropped_rows == 3


class KillingSource(HDF5Source):
    """An HDF5 source whose worker process dies the ``kill_on``-th time block ``kill_row`` is read.

    Reads of that block are counted across processes as files in ``counter_dir``, so the
    kill happens exactly once: when Dask reruns the task elsewhere the count has moved on.
    """

    def __init__(self, path: str, dataset: str, kill_row: int, kill_on: int, counter_dir: str) -> None:
        super().__init__(path, dataset)
        self.kill_row, self.kill_on, self.counter_dir = kill_row, kill_on, counter_dir

    def read(self, start: int, stop: int) -> np.ndarray:
        if start == self.kill_row and _in_worker():
            count = len(os.listdir(self.counter_dir))
            Path(self.counter_dir, str(count)).touch(exist_ok=False)
            if count == self.kill_on:
                os._exit(1)  # die like a crashed or OOM-killed worker
        return super().read(start, stop)


def _in_worker() -> bool:
    try:
        get_worker()
    except ValueError:
        return False
    return True


def test_worker_killed_mid_pass_gives_the_fault_free_model(client: Client, h5_path: str, tmp_path: Path) -> None:
    backend = DaskBackend(client=client)
    streaming = dict(FIT, schedule="full")  # every pass reads storage (the pool is tested below)
    fault_free = streamls.fit(f"{h5_path}:/X", f"{h5_path}:/y", backend=backend, **streaming)
    pids_before = set(client.run(os.getpid).values())
    # Third read of block 3000: the statistics pass of iteration 1 (after the moments pass and iteration 0's).
    killing = KillingSource(h5_path, "/X", kill_row=3000, kill_on=2, counter_dir=str(tmp_path))
    try:
        faulty = streamls.fit(killing, f"{h5_path}:/y", backend=backend, **streaming)
    finally:
        client.wait_for_workers(2, timeout=120)  # the nanny's restart, for the next tests
    reads = sorted(int(name) for name in os.listdir(tmp_path))
    passes = 1 + FIT["max_iter"] + 1  # moments, one per solve, the final evaluation
    assert reads == list(range(passes + 1))  # every pass read the block once, plus the killed read
    assert set(client.run(os.getpid).values()) != pids_before  # a worker process really died
    np.testing.assert_array_equal(faulty.model.W, fault_free.model.W)
    np.testing.assert_array_equal(faulty.model.B, fault_free.model.B)
    assert [r.train_loss for r in faulty.history] == [r.train_loss for r in fault_free.history]


class ResultRecorder(SchedulerPlugin):
    """Records type name and size of every streamls task result held on the cluster."""

    name = "streamls-result-recorder"

    def __init__(self) -> None:
        self.results: list[tuple[str, str, int]] = []

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "memory" and str(key).startswith("streamls-"):
            task = self.scheduler.tasks[key]
            self.results.append((str(key), task.type, task.nbytes))


def _recorded(dask_scheduler: Any) -> list[tuple[str, str, int]]:
    return dask_scheduler.plugins[ResultRecorder.name].results


def test_client_never_materialises_the_data(client: Client, tmp_path: Path) -> None:
    rows, cols, hidden = 200_000, 15, 4
    path = str(tmp_path / "big.h5")
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=np.random.default_rng(0).normal(size=(rows, cols)), chunks=(4096, cols))
    dataset = Dataset(path, block_rows=8192)
    data_bytes = rows * cols * 8
    d = cols - 1
    request = StatisticsRequest(
        Standardizer(np.zeros(d), np.ones(d), np.zeros(1), np.ones(1)),
        np.random.default_rng(1).normal(size=(hidden, d + 1)), np.zeros((hidden + 1, 1)), 0.0, Holdout(),
    )
    client.register_plugin(ResultRecorder())
    backend = DaskBackend(client=client)
    tracemalloc.start()
    try:
        stats = backend.run(dataset, request)
        _, driver_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    results = client.run_on_scheduler(_recorded)
    assert isinstance(stats, PassStatistics) and stats.n == rows
    # The driver (client and in-process scheduler) allocated a fixed ~1 MB of bookkeeping, no data.
    assert driver_peak < data_bytes / 10
    # Every task returned a partial sum of statistics, each far smaller than the data it summed.
    parts = [r for r in results if "-part-" in r[0]]
    assert len(parts) == len(backend.partitions(dataset)) == 4 * backend.threads
    assert {r[1] for r in results} == {f"{Partial.__module__}.{Partial.__qualname__}"}
    assert max(r[2] for r in results) < data_bytes / len(parts) / 20


def test_moments_pass_and_progress(client: Client, h5_path: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    dataset = Dataset(f"{h5_path}:/X", f"{h5_path}:/y", block_rows=CHUNK)
    seen: list[int] = []
    backend = DaskBackend(client=client, progress=seen.append)
    request = MomentsRequest(Holdout(), np.array([0, 2999, 5999]))
    moments = backend.run(dataset, request)
    assert sorted(seen) == sorted(b - a for a, b in backend.partitions(dataset)) and sum(seen) == N_ROWS
    np.testing.assert_allclose(moments.x.mean, data[0].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.x.m2 / N_ROWS, data[0].var(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(moments.anchors(), data[0][[0, 2999, 5999]])


def test_worker_errors_reach_the_caller(client: Client, tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X = data[0].copy()
    X[4321, 2] = np.inf
    path = str(tmp_path / "bad.h5")
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=X, chunks=(CHUNK, N_FEATURES))
        handle.create_dataset("y", data=data[1])
    with pytest.raises(NonFiniteDataError, match=r"bad.h5:/X: rows 4000-4999: row 4321, column 2"):
        streamls.fit(f"{path}:/X", f"{path}:/y", backend="dask", client=client, **FIT)


def test_backend_options_are_checked(client: Client) -> None:
    with pytest.raises(ConfigError, match="one of client, scheduler_address or n_workers; got client and n_workers"):
        DaskBackend(client=client, n_workers=2)
    with pytest.raises(ConfigError, match="'partition_rows' parameter of DaskBackend must be an int >= 1"):
        DaskBackend(client=client, partition_rows=0)
    assert make_backend("dask").client is client  # the default client


def test_backend_starts_and_closes_its_own_cluster(h5_path: str) -> None:
    backend = DaskBackend(n_workers=1)
    try:
        dataset = Dataset(f"{h5_path}:/X", f"{h5_path}:/y", block_rows=CHUNK)
        moments = backend.run(dataset, MomentsRequest(Holdout(), np.array([], dtype=np.int64)))
        assert moments.x.n == N_ROWS
        assert set(backend.client.run(_blas_threads).values()) == {1}
    finally:
        backend.close()
    assert backend.client.status == "closed"


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max(pool["num_threads"] for pool in threadpool_info())


SAMPLED_ROWS = 60000
#: Stages 0.068, 0.137, 0.273, 0.546, 1 of 60000 rows; with this pool only stage 0 stays in memory.
SAMPLED_FIT = {"hidden_units": 4, "max_iter": 24, "random_state": 5, "validation_fraction": 0.2, "block_rows": 2000}


@pytest.fixture(scope="module")
def sampled_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(SAMPLED_ROWS, N_FEATURES))
    y = np.maximum(X @ rng.normal(size=(N_FEATURES, 3)), 0).sum(axis=1) + 0.1 * rng.normal(size=SAMPLED_ROWS)
    path = str(tmp_path_factory.mktemp("sampled") / "data.h5")
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=X, chunks=(1000, N_FEATURES))
        handle.create_dataset("y", data=y, chunks=(1000,))
    return path


@pytest.mark.parametrize("memory_limit", [None, 700_000], ids=["all-pooled", "stage-0-pooled"])
def test_sampled_schedule_on_dask_equals_local(client: Client, sampled_path: str, memory_limit: int | None) -> None:
    X, y = f"{sampled_path}:/X", f"{sampled_path}:/y"
    local, distributed = local_and_dask(client, X, y, memory_limit=memory_limit, **SAMPLED_FIT)
    assert_same_model(distributed, local, rtol=1e-9)
    assert [r.stage for r in distributed.history] == [r.stage for r in local.history]
    assert max(r.stage for r in local.history) >= 1
    assert [r.rows_read for r in distributed.history] == [r.rows_read for r in local.history]


@pytest.mark.parametrize("memory_limit", [None, 700_000], ids=["all-pooled", "stage-0-pooled"])
def test_step_search_on_dask_equals_local(client: Client, sampled_path: str, memory_limit: int | None) -> None:
    """The search's candidate passes run over the pool where it is held, or over storage, like every pass."""
    X, y = f"{sampled_path}:/X", f"{sampled_path}:/y"
    settings = dict(SAMPLED_FIT, max_iter=8, line_search="on")
    local, distributed = local_and_dask(client, X, y, memory_limit=memory_limit, **settings)
    assert_same_model(distributed, local, rtol=1e-9)
    assert [r.step_length for r in distributed.history[1:]] == [r.step_length for r in local.history[1:]]
    assert max(r.step_length for r in local.history[1:]) > 1
    assert [r.rows_read for r in distributed.history] == [r.rows_read for r in local.history]


@pytest.mark.parametrize("memory_limit", [None, 700_000], ids=["all-pooled", "stage-0-pooled"])
def test_matrix_free_training_on_dask_equals_local(client: Client, sampled_path: str, memory_limit: int | None) -> None:
    """The product passes run over the rows kept under the pattern where the pool is held, or over storage."""
    X, y = f"{sampled_path}:/X", f"{sampled_path}:/y"
    settings = dict(SAMPLED_FIT, max_iter=8, hidden_solver="cg", l2=1e-3)
    local, distributed = local_and_dask(client, X, y, memory_limit=memory_limit, **settings)
    assert_same_model(distributed, local, rtol=1e-8)
    assert {r.hidden_solver for r in distributed.history[1:]} == {"cg"}
    assert [r.cg_iterations for r in distributed.history] == [r.cg_iterations for r in local.history]
    assert [r.rows_read for r in distributed.history] == [r.rows_read for r in local.history]


def test_worker_killed_while_holding_the_pool_changes_nothing(client: Client, sampled_path: str) -> None:
    X, y = f"{sampled_path}:/X", f"{sampled_path}:/y"
    backend = DaskBackend(client=client)
    fault_free = streamls.fit(X, y, backend=backend, **SAMPLED_FIT)
    pids = list(client.run(os.getpid).values())

    def kill_one_worker(state: Any, record: Any) -> None:
        if state.iteration == 2:  # between two passes over the pool, each worker holding pieces of it
            os.kill(pids[0], 9)

    try:
        faulty = streamls.fit(X, y, backend=backend, callback=kill_one_worker, **SAMPLED_FIT)
    finally:
        client.wait_for_workers(2, timeout=120)
    assert pids[0] not in client.run(os.getpid).values()  # the worker really died
    np.testing.assert_array_equal(faulty.model.W, fault_free.model.W)
    np.testing.assert_array_equal(faulty.model.B, fault_free.model.B)
    assert [r.train_loss for r in faulty.history] == [r.train_loss for r in fault_free.history]
