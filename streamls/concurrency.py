"""Threads for the in-process work: an ordered, bounded parallel map and the thread budget."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any, TypeVar

from threadpoolctl import ThreadpoolController

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(function: Callable[[T], R], items: Iterable[T], workers: int, ahead: int, name: str = "streamls") -> Generator[R, None, None]:
    """``map(function, items)`` on a pool of ``workers`` threads, in order, with at most ``ahead`` results pending.

    The bound keeps memory constant: a slow consumer stalls the producers instead of
    letting finished results pile up. Results come back in the order of ``items``, so a
    sum over them does not depend on which thread finished first.
    """
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def available_threads() -> int:
    """Threads this process may use: the CPUs it may run on, capped by the BLAS thread limit in force.

    The BLAS limit is what ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` or an enclosing
    :func:`threadpoolctl.threadpool_limits` set, so one knob caps BLAS and streamls alike.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    blas = [info["num_threads"] for info in thread_pools().info() if info.get("user_api") == "blas"]
    return max(1, min([cpus, *blas]))


@cache
def thread_pools() -> ThreadpoolController:
    """The thread pools of the libraries loaded now (numpy's BLAS among them), found once.

    Finding them scans every loaded library, about 2 ms: twice per pass, that was 3 % of a
    matrix-free iteration, whose 30 product passes take about 0.1 s each. Their thread
    counts are read afresh on every call.
    """
    return ThreadpoolController()


def single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread while inside (for threads that each compute their own block)."""
    return thread_pools().limit(limits=1, user_api="blas")
