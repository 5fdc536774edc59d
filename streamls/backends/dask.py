"""Passes as map-reduce on a ``dask.distributed`` cluster.

A pass maps storage-aligned row partitions to tasks that each run
:func:`streamls.stats.accumulate` on a worker, which opens and reads its own rows (a
:class:`~streamls.sources.Dataset` pickles as file paths and array names), then sums the
partial statistics by a pairwise tree of ``+`` tasks on the cluster. The client sends
the dataset and the request (holding the current model) once per pass, broadcast to
every worker, and receives one sum: it holds O(statistics) memory, never data.

Tasks are pure functions of (dataset, request, rows), so when a worker dies Dask
recomputes its lost tasks elsewhere with the same result.

The sample pool stays where it was read: the moments pass's task per partition also keeps
that partition's pooled rows, the backend holds that task's future (only its moments,
without the rows, are summed), and later passes over the pool run one task per held part,
on the worker that has it. A part lost with its worker is recomputed from storage, since
the client still wants it (its task holds the dataset and request by value, so nothing it
needs can be lost with a worker). Each partition is one task key
and the tree is fixed before any task runs, so no partition can be counted twice or
lost, and the sum does not depend on which task finishes first: a pass is bitwise
reproducible for a given partitioning.
"""

from __future__ import annotations

import logging
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import dask.config
import numpy as np
from distributed import Client, Future, LocalCluster, as_completed, default_client
from distributed.diagnostics.plugin import WorkerPlugin
from threadpoolctl import threadpool_limits

from ..errors import ConfigError, StreamLSError, parameter_error
from ..sources import Dataset
from ..stats import DataMoments, MomentsRequest, PassRequest, PassStatistics, accumulate
from ..stats.passes import PatternRequest, ProductRequest, accumulate_blocks
from ..stats.products import HiddenProducts, PatternBlocks
from ..stats.sample import banded, in_sample

logger = logging.getLogger(__name__)

S = TypeVar("S", DataMoments, PassStatistics, HiddenProducts, PatternBlocks)

#: Partitions per worker thread: enough to balance load and to make recomputing a
#: lost worker's share cheap, few enough that per-task overhead stays negligible.
PARTITIONS_PER_THREAD = 4


@dataclass(frozen=True)
class Partial(Generic[S]):
    """Statistics of the contiguous rows ``[start, stop)``.

    Adding two partials checks that they are adjacent, so a sum covering
    ``[0, n_rows)`` has counted every row exactly once.
    """

    start: int
    stop: int
    stats: S | None

    def __add__(self, other: Partial[S]) -> Partial[S]:
        if self.stop != other.start:
            raise StreamLSError(
                f"partial statistics of rows [{self.start}, {self.stop}) and [{other.start}, {other.stop}) "
                "are not adjacent; the reduction tree is inconsistent"
            )
        # None: a partition without pooled rows, which adds nothing.
        if self.stats is None or other.stats is None:
            return Partial(self.start, other.stop, self.stats if other.stats is None else other.stats)
        return Partial(self.start, other.stop, self.stats + other.stats)


def partition_statistics(dataset: Dataset, request: PassRequest[S], start: int, stop: int) -> Partial[S]:
    """The task run on a worker: statistics of rows ``[start, stop)``, read there."""
    return Partial(start, stop, accumulate(dataset, request, start, stop, prefetch=False))


def partition_pool(dataset: Dataset, request: MomentsRequest, start: int, stop: int) -> Partial[DataMoments]:
    """The moments task of a pooling pass: the partition's moments and its pooled rows, in rank bands."""
    part = partition_statistics(dataset, request, start, stop)
    assert part.stats is not None
    blocks = banded(list(part.stats.pooled), request.bands, dataset.block_rows)
    return Partial(start, stop, replace(part.stats, pooled=tuple(blocks)))


def without_pool(part: Partial[DataMoments]) -> Partial[DataMoments]:
    """A partition's moments without the pooled rows (they stay on the worker)."""
    assert part.stats is not None
    return Partial(part.start, part.stop, replace(part.stats, pooled=()))


def pooled_statistics(part: Partial[DataMoments], request: PassRequest[S]) -> Partial[S]:
    """The task of a pass over the pool: statistics of one partition's pooled rows in the sample, where they are held."""
    assert part.stats is not None
    blocks = in_sample(part.stats.pooled, request.sample)  # type: ignore[attr-defined]  (every pooled request has one)
    return Partial(part.start, part.stop, accumulate_blocks(blocks, request) if blocks else None)


def fixed_products(part: Partial[PatternBlocks], request: ProductRequest) -> Partial[HiddenProducts]:
    """The task of a product pass over pattern rows: one partition's, where they are held."""
    blocks = part.stats.blocks if part.stats is not None else ()
    return Partial(part.start, part.stop, accumulate_blocks(blocks, request) if blocks else None)


@dataclass
class DaskPool:
    """The pooling pass's partition futures, held so their rows stay in worker memory.

    Attributes
    ----------
    parts : list of Future
        One :func:`partition_pool` result per partition; a part lost with its worker is
        recomputed from storage, since the client still wants it.
    rows : list of int
        Pooled rows per part (for progress).
    n_rows : int
        Rows of the dataset.
    """

    parts: list[Future]
    rows: list[int]
    n_rows: int


def partition_ranges(
    dataset: Dataset, n_partitions: int, partition_rows: int | None = None
) -> list[tuple[int, int]]:
    """Split the dataset's blocks into contiguous partitions of whole blocks.

    Partition edges are block edges (themselves whole storage chunks), so a partition
    reads the same blocks as the local backend and no chunk is read by two tasks.

    Parameters
    ----------
    dataset : Dataset
    n_partitions : int
        Wanted partition count (at most one partition per block); ignored when
        ``partition_rows`` is given.
    partition_rows : int, optional
        Rows per partition, rounded up to whole blocks.

    Returns
    -------
    list of (start, stop)
        Covering ``[0, dataset.n_rows)`` in order.
    """
    blocks = dataset.block_ranges()
    if partition_rows is not None:
        per = -(-partition_rows // dataset.block_rows)
        groups = [range(i, min(i + per, len(blocks))) for i in range(0, len(blocks), per)]
    else:
        groups = list(np.array_split(np.arange(len(blocks)), min(n_partitions, len(blocks))))
    return [(blocks[g[0]][0], blocks[g[-1]][1]) for g in groups]


def tree_sum(client: Client, parts: list[Future], name: str) -> Future:
    """Sum futures by a pairwise tree of ``+`` tasks, in a fixed order; return the root.

    Neighbours are added left to right, level by level (an odd last one moves up), so
    the result is independent of task completion order. Futures of consumed levels are
    dropped here, letting workers free partials once their sum exists.
    """
    level = 0
    while len(parts) > 1:
        sums = [
            client.submit(operator.add, parts[i], parts[i + 1], key=f"{name}-sum-{level}-{i // 2}")
            for i in range(0, len(parts) - 1, 2)
        ]
        parts = sums + parts[2 * len(sums) :]
        level += 1
    return parts[0]


class LimitBLASThreads(WorkerPlugin):
    """Limit BLAS and OpenMP pools of each worker process to one thread.

    Installed on clusters the backend starts itself (single-threaded workers, one per
    core): without it every worker's BLAS would start a thread per core.
    """

    name = "streamls-limit-blas-threads"

    def setup(self, worker: Any) -> None:
        """Called by Dask on each worker at start: cap its BLAS and OpenMP pools at one thread for the worker's life."""
        self._limits = threadpool_limits(limits=1)


class DaskBackend:
    """Evaluate passes as map-reduce tasks on a Dask cluster.

    Give at most one of ``client``, ``scheduler_address`` and ``n_workers``; with none,
    the current default client (the last ``Client`` created) is used.

    Parameters
    ----------
    client : distributed.Client, optional
        A connected client; left open by :meth:`close`.
    scheduler_address : str, optional
        Address of a running scheduler, such as ``"tcp://10.0.0.5:8786"``.
    n_workers : int, optional
        Start a ``LocalCluster`` of this many single-threaded worker processes (BLAS
        limited to one thread each), closed by :meth:`close`.
    partition_rows : int, optional
        Rows per task, rounded up to whole blocks. Default: about
        ``PARTITIONS_PER_THREAD`` partitions per worker thread (counted at the first pass
        and kept, so that every pass, and a rerun, uses the same partitions).
    progress : callable, optional
        Called with the row count of every finished partition (the CLI's progress bar).
    """

    def __init__(
        self,
        client: Client | None = None,
        scheduler_address: str | None = None,
        n_workers: int | None = None,
        partition_rows: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        chosen = [k for k, v in {"client": client, "scheduler_address": scheduler_address, "n_workers": n_workers}.items() if v is not None]
        if len(chosen) > 1:
            raise ConfigError(f"DaskBackend takes one of client, scheduler_address or n_workers; got {' and '.join(chosen)}")
        for key, value in (("n_workers", n_workers), ("partition_rows", partition_rows)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise parameter_error("DaskBackend", key, "an int >= 1 or None", value)
        self.partition_rows = None if partition_rows is None else int(partition_rows)
        self.progress = progress
        self._cluster: LocalCluster | None = None
        self._owns_client = scheduler_address is not None or n_workers is not None
        self.client = client if client is not None else self._connect(scheduler_address, n_workers)
        self._threads: int | None = None

    def _connect(self, scheduler_address: str | None, n_workers: int | None) -> Client:
        if n_workers is not None:
            # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off
            # glibc's adaptive mmap threshold: every block's large temporaries are then mapped
            # and page-faulted afresh, halving pass throughput (benchmarks/dask_scaling.py).
            # The HTTP server takes a free port: a fixed one clashes with other clusters.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                self._cluster = LocalCluster(
                    n_workers=int(n_workers), threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=":0",
                )
            client = Client(self._cluster)
            client.register_plugin(LimitBLASThreads())
            logger.info("started a LocalCluster of %d workers; dashboard: %s", n_workers, client.dashboard_link)
            return client
        if scheduler_address is not None:
            return Client(scheduler_address)
        try:
            return default_client()
        except ValueError as exc:
            raise ConfigError(
                "DaskBackend needs a cluster: pass client=Client(...), scheduler_address='tcp://host:port' "
                "or n_workers=N (starts a LocalCluster); no default Dask client exists"
            ) from exc

    @property
    def threads(self) -> int:
        """Worker threads of the cluster, counted once so partitions stay the same across passes."""
        if self._threads is None:
            self._threads = max(1, sum(self.client.nthreads().values()))
        return self._threads

    def partitions(self, dataset: Dataset) -> list[tuple[int, int]]:
        """The row ranges of one task each, shared by every pass over ``dataset``.

        Raises
        ------
        SourceFormatError
            For sources no worker can read a row range of on its own (CSV files).
        """
        dataset.check_partitionable("the Dask backend")
        return partition_ranges(dataset, PARTITIONS_PER_THREAD * self.threads, self.partition_rows)

    def run(self, dataset: Dataset, request: PassRequest[S]) -> S:
        """Sum ``request``'s statistics over all rows of ``dataset`` on the cluster.

        Sends ``dataset`` and ``request`` to every worker, runs one task per partition (see
        :meth:`partitions`) and adds the results by :func:`tree_sum`, so the result does not
        depend on task completion order. ``progress`` gets each finished partition's row count.

        Raises
        ------
        StreamLSError
            If the summed partitions do not cover rows ``[0, n_rows)`` exactly.
        """
        name, parts, rows = self._partition_tasks(dataset, request)
        return self._reduced(parts, rows, name, dataset.n_rows, dataset.name)

    def pool(self, dataset: Dataset, request: MomentsRequest) -> tuple[DataMoments, DaskPool]:
        """The moments pass, each partition's pooled rows kept on its worker (see the module docstring).

        The dataset and request go by value in each task, so that a part lost with its
        worker can be recomputed for as long as the pool lives: Dask's active memory manager
        drops the extra replicas of scattered data once no task waits on them, and a
        scattered input that was left only on the lost worker cannot be recomputed (a test
        run under load lost the whole pass that way).
        """
        name, parts, rows = self._partition_tasks(dataset, request, partition_pool, by_value=True)
        moments = [self.client.submit(without_pool, part, key=f"{part.key}-moments") for part in parts]
        counts = [self.client.submit(_pooled_rows, m, key=f"{m.key}-count") for m in moments]
        total = self._reduced(moments, dict(zip([m.key for m in moments], rows.values())), name, dataset.n_rows, dataset.name)
        return total, DaskPool(parts, self.client.gather(counts), dataset.n_rows)

    def run_pooled(self, pool: DaskPool, request: PassRequest[S]) -> S:
        """Sum ``request``'s statistics over the pooled rows, each partition's where it is held."""
        name, parts = self._pooled_tasks(pool, request, pooled_statistics)
        return self._reduced(parts, dict(zip([p.key for p in parts], pool.rows)), name, pool.n_rows, "the pool")

    def fix_pattern(self, pool: DaskPool, request: PatternRequest) -> DaskPool:
        """The pooled rows of ``request.sample`` under its pattern, each partition's kept on its worker (for :meth:`run_fixed`).

        A part lost with its worker is recomputed from the pool's part, itself recomputed from storage.
        """
        _, parts = self._pooled_tasks(pool, request, pooled_statistics)
        return DaskPool(parts, pool.rows, pool.n_rows)

    def run_fixed(self, fixed: DaskPool, request: ProductRequest) -> HiddenProducts:
        """Sum ``request``'s products over the pattern rows of :meth:`fix_pattern`, each partition's where it is held."""
        name, parts = self._pooled_tasks(fixed, request, fixed_products)
        result: HiddenProducts = self._reduced(parts, dict(zip([p.key for p in parts], fixed.rows)), name, fixed.n_rows, "the pattern rows")
        return result

    def _pooled_tasks(self, pool: DaskPool, request: Any, task: Callable[..., Partial[Any]]) -> tuple[str, list[Future]]:
        """One ``task(part, request)`` per part of ``pool``, where the part is held: the name and the futures."""
        name = f"streamls-pooled-{type(request).__name__}-{uuid.uuid4().hex[:12]}"
        # The request (the model's weights, kilobytes) goes by value in each task: a broadcast
        # scatter would fail outright while a dead worker is still listed.
        parts = [self.client.submit(task, part, request, key=f"{name}-part-{i}") for i, part in enumerate(pool.parts)]
        return name, parts

    def _partition_tasks(
        self,
        dataset: Dataset,
        request: PassRequest[S],
        task: Callable[..., Partial[Any]] = partition_statistics,
        by_value: bool = False,
    ) -> tuple[str, list[Future], dict[str, int]]:
        """One ``task(dataset, request, start, stop)`` per partition: the name, futures and rows per key.

        ``by_value``: embed ``dataset`` and ``request`` in every task instead of scattering
        them once to every worker, for results that must stay recomputable after the pass.
        """
        ranges = self.partitions(dataset)
        name = f"streamls-{type(request).__name__}-{uuid.uuid4().hex[:12]}"
        logger.debug("%s: %d partitions over %d worker threads", name, len(ranges), self.threads)
        # Otherwise sent once per pass to every worker; tasks refer to them by key.
        inputs = (dataset, request) if by_value else self.client.scatter([dataset, request], broadcast=True, hash=False)
        parts = [
            self.client.submit(task, *inputs, a, b, key=f"{name}-part-{i}")
            for i, (a, b) in enumerate(ranges)
        ]
        return name, parts, {part.key: b - a for part, (a, b) in zip(parts, ranges)}

    def _reduced(self, parts: list[Future], rows: dict[str, int], name: str, n_rows: int, what: str) -> Any:
        """The tree sum of partials covering rows ``[0, n_rows)``, reporting each finished part's rows."""
        progress = self.progress
        finished = as_completed(parts) if progress is not None else None
        root = tree_sum(self.client, parts, name)
        del parts  # the tree holds them now; dropping ours lets workers free summed partials
        if progress is not None and finished is not None:
            for future in finished:
                progress(rows[future.key])
        total: Partial[Any] = root.result()
        if (total.start, total.stop) != (0, n_rows) or total.stats is None:
            raise StreamLSError(f"{what}: a pass covered rows [{total.start}, {total.stop}) of {n_rows}")
        return total.stats

    def close(self) -> None:
        """Close the client and cluster this backend started; a given client stays open."""
        if self._owns_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _pooled_rows(part: Partial[DataMoments]) -> int:
    assert part.stats is not None
    return part.stats.pooled_rows
