"""Threads for the in-process work: an ordered, bounded parallel map and the thread budget."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_info

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
    blas = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(1, min([cpus, *blas]))
