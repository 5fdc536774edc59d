"""The ``--threads`` cap: BLAS, OpenMP and streamls's own threads, without touching the environment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Cap BLAS/OpenMP threads with threadpoolctl while inside (``None``: no cap).

    streamls's block threads follow the same limit (:func:`streamls.concurrency.available_threads`
    reads it), so one cap covers both; environment variables stay untouched.
    """
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield
