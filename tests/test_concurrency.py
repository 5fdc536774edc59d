"""Threads: the ordered map keeps order and its bound, the thread budget follows the limits
in force, and a local run computing blocks in parallel trains the same model as one thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import streamls
import streamls.sources
from streamls.backends import LocalBackend
from streamls.concurrency import available_threads, ordered_map
from streamls.stats import Holdout, MomentsRequest, Standardizer, StatisticsRequest, accumulate


def test_ordered_map_keeps_order_and_never_runs_ahead_of_its_bound() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.001 * (i % 3))  # later items often finish first
        return i * i

    consumed = 0
    for value in ordered_map(work, range(40), workers=3, ahead=4):
        assert value == consumed**2
        with lock:
            # Items submitted but not yet consumed never exceed the bound.
            assert len(started) - consumed <= 4
        consumed += 1
    assert consumed == 40


def test_ordered_map_raises_the_first_failure_in_order() -> None:
    def work(i: int) -> int:
        if i == 5:
            raise KeyError(i)
        return i

    seen: list[int] = []
    with pytest.raises(KeyError):
        seen.extend(ordered_map(work, range(10), workers=2, ahead=3))
    assert seen == [0, 1, 2, 3, 4]


def test_available_threads_follow_the_blas_limit_in_force() -> None:
    with threadpool_limits(limits=1, user_api="blas"):
        assert available_threads() == 1
    assert available_threads() >= 1


def test_local_backend_runs_large_statistics_one_block_at_a_time() -> None:
    rng = np.random.default_rng(0)
    d, k = 40, 1
    standardizer = Standardizer(np.zeros(d), np.ones(d), np.zeros(k), np.ones(k))
    small = StatisticsRequest(standardizer, rng.standard_normal((4, d + 1)), np.zeros((5, k)), 0.0, Holdout())
    large = StatisticsRequest(standardizer, rng.standard_normal((24, d + 1)), np.zeros((25, k)), 0.0, Holdout())
    backend = LocalBackend(workers=2)
    with threadpool_limits(limits=2, user_api="blas"):
        assert backend.workers_for(MomentsRequest(Holdout(), np.arange(3))) == min(2, available_threads())
        assert backend.workers_for(small) == min(2, available_threads())
        # 24 * 41 = 984 unknowns: a 7.8 MB Gram matrix per block; BLAS threads share that one.
        assert backend.workers_for(large) == 1


def test_training_with_parallel_blocks_equals_one_thread() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6000, 5))
    y = np.maximum(X @ rng.standard_normal(5), 0) + 0.1 * rng.standard_normal(6000)
    options = {"hidden_units": 6, "max_iter": 4, "tol": 0.0, "random_state": 0, "block_rows": 500}
    serial = streamls.fit(X, y, workers=1, **options)
    parallel = streamls.fit(X, y, workers=3, **options)
    assert parallel.summary.rows_read == serial.summary.rows_read
    np.testing.assert_allclose(parallel.model.W, serial.model.W, rtol=0, atol=1e-10)
    np.testing.assert_allclose(parallel.model.predict(X), serial.model.predict(X), rtol=0, atol=1e-10)


def test_an_interrupt_from_progress_stops_the_block_threads() -> None:
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((5000, 3)), rng.standard_normal(5000)
    dataset = streamls.sources.Dataset(X, y, block_rows=100)
    standardizer = Standardizer(np.zeros(3), np.ones(3), np.zeros(1), np.ones(1))
    request = StatisticsRequest(standardizer, rng.standard_normal((4, 4)), np.zeros((5, 1)), 0.0, Holdout())
    before = threading.active_count()

    def interrupt(rows: int) -> None:
        raise InterruptedError("stop")  # what the CLI's stop flag raises on SIGTERM

    with pytest.raises(InterruptedError) as caught:
        accumulate(dataset, request, progress=interrupt, workers=2)
    # Even while the traceback (and with it the pass's frame) is still held, the pool and the
    # reader are shut down, not left computing blocks nobody will sum.
    assert caught.traceback and threading.active_count() == before
