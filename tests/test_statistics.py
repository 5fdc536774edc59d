"""One pass of per-block statistics equals a direct numpy formula on the whole array.

The reference builds the rows ``z_i = a_i kron x~_i`` explicitly for every row at once
and sums with plain numpy; streamls accumulates the same sums block by block (in tiles,
from pair products) through :func:`streamls.stats.accumulate`.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamls.errors import NonFiniteDataError
from streamls.sources import Dataset
from streamls.split import row_uniforms
from streamls.stats import (
    ColumnMoments,
    DataMoments,
    Holdout,
    MomentsRequest,
    PassStatistics,
    Standardizer,
    StatisticsRequest,
    accumulate,
    pass_stats,
)
from streamls.stats.moments import safe_scale
from streamls.stats.pass_stats import augment, block_statistics
from streamls.stats.passes import CandidateRequest

N_ROWS = 2500
D = 3
H = 4
VAL_FRACTION = 0.2
SEED = 5
NAN_ROWS = (3, 999, 1000, 1777, 2499)


def rel_err(found: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference relative to the largest reference entry."""
    found, expected = np.asarray(found, dtype=float), np.asarray(expected, dtype=float)
    assert found.shape == expected.shape
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    return float(np.abs(found - expected).max(initial=0.0)) / scale


def make_problem(k: int, alpha: float, seed: int = 0):
    """Raw data with NaN rows, a standardizer, and a random model (W, B, W_prev)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N_ROWS, D)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -3.0]
    Y = np.column_stack([X[:, 0] * X[:, 1], np.abs(X[:, 2]), X.sum(axis=1)])[:, :k] + rng.standard_normal((N_ROWS, k))
    X[NAN_ROWS[0], 1] = np.nan
    X[NAN_ROWS[1], 0] = np.inf
    Y[NAN_ROWS[2], 0] = np.nan
    X[NAN_ROWS[3], 2] = -np.inf
    Y[NAN_ROWS[4], k - 1] = np.nan
    standardizer = Standardizer(
        rng.standard_normal(D), rng.uniform(0.5, 2.0, D), rng.standard_normal(k), rng.uniform(0.5, 2.0, k)
    )
    W = rng.standard_normal((H, D + 1))
    W_prev = W + 0.3 * rng.standard_normal((H, D + 1))
    B = rng.standard_normal((H + 1, k))
    return X, Y, standardizer, W, W_prev, B


def reference(X, Y, standardizer, W, W_prev, B, alpha, fraction, seed) -> dict[str, object]:
    """Every statistic of the pass, by numpy on the whole array with explicit Z rows."""
    finite = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
    val = row_uniforms(np.arange(len(X)), seed) < fraction
    train, held = finite & ~val, finite & val
    # Dropped rows are zeroed so that no NaN arithmetic happens; masks exclude them.
    X, Y = np.where(finite[:, None], X, 0.0), np.where(finite[:, None], Y, 0.0)
    xs = (X - standardizer.x_mean) / standardizer.x_scale
    ys = (Y - standardizer.y_mean) / standardizer.y_scale
    xt = np.hstack([xs, np.ones((len(xs), 1))])
    u = xt @ W.T
    a = np.where(u > 0, 1.0, alpha)
    phi = np.hstack([a * u, np.ones((len(u), 1))])
    resid = ys - phi @ B
    Z = np.stack([np.kron(a[i], xt[i]) for i in range(len(xt))])
    t = train
    return {
        "n": int(t.sum()),
        "sum_y": ys[t].sum(axis=0),
        "sum_yy": (ys[t] ** 2).sum(axis=0),
        "G": phi[t].T @ phi[t],
        "C": phi[t].T @ ys[t],
        "P": Z[t].T @ Z[t],
        "Q": Z[t].T @ ys[t],
        "s": Z[t].sum(axis=0),
        "sse": (resid[t] ** 2).sum(axis=0),
        "active": (u[t] > 0).sum(axis=0),
        "flips": int(((xt[t] @ W_prev.T > 0) != (u[t] > 0)).sum()),
        "n_val": int(held.sum()),
        "val_sse": (resid[held] ** 2).sum(axis=0),
        "dropped": int((~finite).sum()),
    }


def pass_statistics(X, Y, standardizer, W, W_prev, B, alpha, fraction, seed, block_rows, **kwargs) -> PassStatistics:
    dataset = Dataset(X, Y, nan_policy="drop", block_rows=block_rows)
    request = StatisticsRequest(standardizer, W, B, alpha, Holdout(fraction, seed), W_prev)
    return accumulate(dataset, request, **kwargs)


def assert_matches(stats: PassStatistics, ref: dict[str, object], tol: float = 1e-10) -> None:
    for key, expected in ref.items():
        found = getattr(stats, key)
        if expected is None:
            assert found is None, key
        elif isinstance(expected, int):
            assert found == expected, key
        elif key == "active":
            np.testing.assert_array_equal(found, expected, err_msg=key)
        else:
            assert rel_err(found, expected) <= tol, (key, rel_err(found, expected))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_pass_statistics_equal_whole_array_formula(k: int, alpha: float) -> None:
    X, Y, standardizer, W, W_prev, B = make_problem(k, alpha)
    ref = reference(X, Y, standardizer, W, W_prev, B, alpha, VAL_FRACTION, SEED)
    assert ref["dropped"] == len(NAN_ROWS) and 0 < ref["n_val"] < N_ROWS
    # Block sizes 1, 7, 1000 (blocks of unequal size) and n (one block).
    for block_rows in (1, 7, 1000, N_ROWS):
        stats = pass_statistics(X, Y, standardizer, W, W_prev, B, alpha, VAL_FRACTION, SEED, block_rows)
        assert_matches(stats, ref)
        assert stats.G.shape == (H + 1, H + 1) and stats.P.shape == (H * (D + 1),) * 2


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("k, alpha", [(1, 0.0), (3, 0.1)])
def test_candidate_sums_equal_the_whole_array_formula_under_each_candidate(
    k: int, alpha: float, tiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, Y, standardizer, W, W_prev, B = make_problem(k, alpha)
    if tiled:  # tiles of 256 rows, so that blocks of 1000 rows span several
        monkeypatch.setattr(pass_stats, "TILE_BYTES", 8 * 3 * H * 256)
    candidates = np.stack([W, W_prev, 2 * W_prev - W])
    request = CandidateRequest(standardizer, candidates, alpha, Holdout(VAL_FRACTION, SEED))
    for block_rows in (7, 1000):
        sums = accumulate(Dataset(X, Y, nan_policy="drop", block_rows=block_rows), request)
        assert sums.G.shape == (3, H + 1, H + 1) and sums.C.shape == (3, H + 1, k)
        for i, candidate in enumerate(candidates):
            ref = reference(X, Y, standardizer, candidate, W_prev, B, alpha, VAL_FRACTION, SEED)
            assert rel_err(sums.G[i], ref["G"]) <= 1e-10 and rel_err(sums.C[i], ref["C"]) <= 1e-10


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_blocks_equal_the_whole_array_formula_and_the_serial_sum(workers: int) -> None:
    X, Y, standardizer, W, W_prev, B = make_problem(3, 0.1)
    ref = reference(X, Y, standardizer, W, W_prev, B, 0.1, VAL_FRACTION, SEED)
    serial = pass_statistics(X, Y, standardizer, W, W_prev, B, 0.1, VAL_FRACTION, SEED, 97)
    rows: list[int] = []
    parallel = pass_statistics(
        X, Y, standardizer, W, W_prev, B, 0.1, VAL_FRACTION, SEED, 97, workers=workers, progress=rows.append
    )
    assert_matches(parallel, ref)
    # Parts are summed in block order whichever thread finishes first: the same sum as one thread.
    assert_matches(parallel, vars(serial), tol=1e-14)
    assert rows == [min(97, N_ROWS - a) for a in range(0, N_ROWS, 97)]


def test_parallel_blocks_propagate_a_bad_block() -> None:
    X, Y, standardizer, W, _, B = make_problem(1, 0.0)
    dataset = Dataset(X, Y, nan_policy="error", block_rows=100)
    with pytest.raises(NonFiniteDataError, match=r"rows 900-999: row 999"):
        accumulate(dataset, StatisticsRequest(standardizer, W, B, 0.0, Holdout()), 500, workers=3)


def test_pass_statistics_without_holdout_or_flips_or_nan() -> None:
    X, Y, standardizer, W, _, B = make_problem(1, 0.0)
    keep = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
    X, Y = X[keep], Y[keep]
    dataset = Dataset(X, Y[:, 0], block_rows=333)
    stats = accumulate(dataset, StatisticsRequest(standardizer, W, B, 0.0, Holdout()))
    ref = reference(X, Y, standardizer, W, W, B, 0.0, 0.0, 0)
    assert stats.flips == 0 and stats.n_val == 0 and stats.dropped == 0
    assert stats.n == len(X)
    for key in ("G", "C", "P", "Q", "s", "sse", "sum_y", "sum_yy"):
        assert rel_err(getattr(stats, key), ref[key]) <= 1e-10, key


def test_evaluation_only_pass_skips_hidden_statistics() -> None:
    X, Y, standardizer, W, W_prev, B = make_problem(3, 0.1)
    dataset = Dataset(X, Y, nan_policy="drop", block_rows=500)
    request = StatisticsRequest(standardizer, W, B, 0.1, Holdout(VAL_FRACTION, SEED), W_prev, hidden=False)
    stats = accumulate(dataset, request)
    assert stats.P is None and stats.Q is None and stats.s is None and not stats.has_hidden
    ref = reference(X, Y, standardizer, W, W_prev, B, 0.1, VAL_FRACTION, SEED)
    assert rel_err(stats.sse, ref["sse"]) <= 1e-10 and rel_err(stats.val_sse, ref["val_sse"]) <= 1e-10
    full = pass_statistics(X, Y, standardizer, W, W_prev, B, 0.1, VAL_FRACTION, SEED, 500)
    with pytest.raises(ValueError, match="evaluation-only"):
        stats + full


def test_float32_storage_is_accumulated_in_float64() -> None:
    X, Y, standardizer, W, W_prev, B = make_problem(1, 0.0)
    keep = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
    X32, Y32 = X[keep].astype(np.float32), Y[keep].astype(np.float32)
    stats = accumulate(Dataset(X32, Y32, block_rows=64), StatisticsRequest(standardizer, W, B, 0.0, Holdout(), W_prev))
    # The reference sees the same float32 values, widened once.
    ref = reference(X32.astype(np.float64), Y32.astype(np.float64), standardizer, W, W_prev, B, 0.0, 0.0, 0)
    assert stats.P.dtype == np.float64 and stats.G.dtype == np.float64
    for key in ("G", "C", "P", "Q", "s", "sse"):
        assert rel_err(getattr(stats, key), ref[key]) <= 1e-10, key


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, N_ROWS - 1), min_size=2, max_size=2, unique=True), block_rows=st.integers(1, 900))
def test_merge_is_associative_and_order_free(cuts: list[int], block_rows: int) -> None:
    X, Y, standardizer, W, W_prev, B = PROBLEM
    a, b = sorted(cuts)
    dataset = Dataset(X, Y, nan_policy="drop", block_rows=block_rows)
    request = StatisticsRequest(standardizer, W, B, 0.1, Holdout(VAL_FRACTION, SEED), W_prev)
    s1, s2, s3 = (accumulate(dataset, request, lo, hi) for lo, hi in ((0, a), (a, b), (b, N_ROWS)))
    left, right, swapped = (s1 + s2) + s3, s1 + (s2 + s3), s3 + (s1 + s2)
    for merged in (right, swapped):
        assert_matches(merged, vars(left), tol=1e-12)
    assert_matches(left, REFERENCE)


PROBLEM = make_problem(3, 0.1, seed=3)
REFERENCE = reference(*PROBLEM, 0.1, VAL_FRACTION, SEED)


# --- the first pass: moments -------------------------------------------------------------


def moments_pass(X, Y, fraction, seed, block_rows) -> DataMoments:
    candidates = np.arange(0, N_ROWS, 97)
    dataset = Dataset(X, Y, nan_policy="drop", block_rows=block_rows)
    return accumulate(dataset, MomentsRequest(Holdout(fraction, seed), np.asarray(candidates, dtype=np.int64)))


@pytest.mark.parametrize("block_rows", [1, 7, 1000, N_ROWS])
def test_moments_equal_numpy_mean_and_var(block_rows: int) -> None:
    X, Y, *_ = make_problem(3, 0.0)
    moments = moments_pass(X, Y, VAL_FRACTION, SEED, block_rows)
    finite = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
    val = row_uniforms(np.arange(N_ROWS), SEED) < VAL_FRACTION
    train = finite & ~val
    assert moments.x.n == moments.y.n == train.sum()
    assert moments.n_validation == (finite & val).sum() and moments.dropped == (~finite).sum()
    for found, rows in ((moments.x, X[train]), (moments.y, Y[train])):
        assert rel_err(found.mean, rows.mean(axis=0)) <= 1e-10
        assert rel_err(found.std**2, rows.var(axis=0)) <= 1e-10
    # Anchors: the candidate rows that are training rows, in row order.
    candidates = np.arange(0, N_ROWS, 97)
    expected = candidates[train[candidates]]
    np.testing.assert_array_equal(np.sort(moments.anchor_rows), expected)
    np.testing.assert_array_equal(moments.anchors(), X[expected])


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=8),
    offset=st.sampled_from([0.0, 1e4, -3e6]),
    seed=st.integers(0, 2**16),
)
def test_chan_merge_equals_numpy_in_any_grouping(sizes: list[int], offset: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = offset + rng.standard_normal((sum(sizes), 2)) * [1.0, 1e-3]
    if len(rows) == 0:
        return
    bounds = np.cumsum([0, *sizes])
    parts = [ColumnMoments.of(rows[lo:hi]) for lo, hi in pairwise(bounds)]
    left = parts[0]
    for part in parts[1:]:
        left = left + part
    right = parts[-1]
    for part in reversed(parts[:-1]):
        right = part + right
    for merged in (left, right):
        assert merged.n == len(rows)
        np.testing.assert_allclose(merged.mean, rows.mean(axis=0), rtol=1e-12, atol=1e-12 * abs(offset))
        # Large offsets cost digits in the mean of each part; the spread must still survive.
        np.testing.assert_allclose(merged.std**2, rows.var(axis=0), rtol=1e-6 if offset else 1e-10, atol=1e-300)


def test_constant_columns_keep_scale_one() -> None:
    rng = np.random.default_rng(0)
    X = np.column_stack([np.full(500, 7.25), rng.standard_normal(500), np.full(500, -1e6), np.full(500, 0.1)])
    X32 = X.astype(np.float32)
    y = np.full(500, 3.0)
    for data in (X, X32):
        moments = accumulate(Dataset(data, y, block_rows=37), MomentsRequest(Holdout(), np.arange(4)))
        standardizer = Standardizer.from_moments(moments)
        np.testing.assert_array_equal(standardizer.x_scale[[0, 2, 3]], 1.0)
        np.testing.assert_array_equal(standardizer.y_scale, 1.0)
        np.testing.assert_allclose(standardizer.x_mean, data.astype(np.float64).mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(standardizer.x_scale[1], X[:, 1].std(), rtol=1e-6)
        standardized = standardizer.inputs(data)
        np.testing.assert_allclose(standardized[:, [0, 2, 3]], 0.0, atol=1e-12)
    assert safe_scale(ColumnMoments.of(np.ones((3, 1)))).tolist() == [1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_design_rows_are_the_standardised_inputs_with_a_bias_column(dtype: type) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((50, 3)) * [1.0, 1e3, 1e-3] + [5.0, -2e4, 0.0]).astype(dtype)
    standardizer = Standardizer(np.array([5.0, -2e4, 0.0]), np.array([1.0, 1e3, 1e-3]), np.zeros(1), np.ones(1))
    reference = np.column_stack([(x.astype(np.float64) - standardizer.x_mean) / standardizer.x_scale, np.ones(50)])
    design = standardizer.design(x)
    assert design.dtype == np.float64
    np.testing.assert_allclose(design, reference, rtol=1e-15, atol=0)


@pytest.mark.parametrize(("h", "d", "m"), [(4, 3, 9000), (40, 30, 1000)])
def test_block_statistics_over_many_tiles(h: int, d: int, m: int) -> None:
    """Blocks of thousands of rows: the kernel sums several cache-sized tiles (4 MiB at most each)."""
    rng = np.random.default_rng(h)
    x, y = rng.standard_normal((m, d)), rng.standard_normal((m, 2))
    W, B = rng.standard_normal((h, d + 1)), rng.standard_normal((h + 1, 2))
    hp = h * (d + 1)
    stats = block_statistics(augment(x), y, W, B, 0.1)
    xt = np.hstack([x, np.ones((m, 1))])
    a = np.where(xt @ W.T > 0, 1.0, 0.1)
    Z = (a[:, :, None] * xt[:, None, :]).reshape(m, hp)  # row i is kron(a_i, x~_i)
    np.testing.assert_array_equal(Z[5], np.kron(a[5], xt[5]))
    assert rel_err(stats.P, Z.T @ Z) <= 1e-10
    assert rel_err(stats.Q, Z.T @ y) <= 1e-10
    assert rel_err(stats.s, Z.sum(axis=0)) <= 1e-10
    np.testing.assert_array_equal(stats.P, stats.P.T)
