"""Both half-step solves equal np.linalg.lstsq on explicitly built design matrices.

The statistics come from a real streamed pass (blocks of 7 rows); the references build
the rows of METHOD.md directly: ``phi_i = [a_i * u_i; 1]`` for the output layer and
``z_ic = (V[:, c] * a_i) kron x~_i`` with target ``y_ic - b0_c`` for the hidden layer,
with the ridge term appended as extra rows ``sqrt(lambda) I``.
"""

from __future__ import annotations

import numpy as np
import pytest

import streamls
from streamls.errors import NumericalError
from streamls.solvers import (
    STEP_LENGTHS,
    best_candidate,
    hidden_loss,
    hidden_system,
    output_loss,
    rebalance,
    scaled_ridge,
    solve_hidden_layer,
    solve_output_layer,
    solve_ridge,
    step_candidates,
)
from streamls.sources import Dataset
from streamls.stats import Holdout, Standardizer, StatisticsRequest, accumulate
from streamls.stats.passes import CandidateRequest

N, D, H = 400, 3, 5


def problem(k: int, alpha: float, seed: int = 0):
    """Standardised-scale data, a random model, and the streamed pass statistics for it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    Y = np.column_stack([np.sin(X[:, 0]) + X[:, 1] ** 2, X[:, 2] * X[:, 0], np.abs(X).sum(axis=1)])[:, :k]
    Y = Y + 0.1 * rng.standard_normal((N, k))
    W = rng.standard_normal((H, D + 1))
    B = rng.standard_normal((H + 1, k))
    identity = Standardizer(np.zeros(D), np.ones(D), np.zeros(k), np.ones(k))
    stats = accumulate(Dataset(X, Y, block_rows=7), StatisticsRequest(identity, W, B, alpha, Holdout()))
    return X, Y, W, B, stats


def explicit_rows(X: np.ndarray, W: np.ndarray, alpha: float):
    """``x~`` (n, p), pattern ``a`` (n, h) and output features ``phi`` (n, h + 1)."""
    xt = np.hstack([X, np.ones((len(X), 1))])
    u = xt @ W.T
    a = np.where(u > 0, 1.0, alpha)
    return xt, a, np.hstack([a * u, np.ones((len(X), 1))])


def hidden_design(X, Y, W, B, alpha):
    """Rows ``z_ic`` (n k, h p) and targets ``y_ic - b0_c`` (n k,), row order (i, c)."""
    xt, a, _ = explicit_rows(X, W, alpha)
    V, b0 = B[:-1], B[-1]
    Z = np.array([np.kron(V[:, c] * a[i], xt[i]) for i in range(len(X)) for c in range(V.shape[1])])
    t = (Y - b0).reshape(-1)
    return Z, t


def ridge_lstsq(Z: np.ndarray, t: np.ndarray, lam: float, penalized: np.ndarray) -> np.ndarray:
    """``argmin ||Z w - t||^2 + lam ||w[penalized]||^2`` by lstsq on stacked rows."""
    extra = np.sqrt(lam) * np.eye(Z.shape[1])[penalized]
    zeros = np.zeros((len(extra), *t.shape[1:]))
    return np.linalg.lstsq(np.vstack([Z, extra]), np.concatenate([t, zeros]), rcond=None)[0]


@pytest.mark.parametrize("l2", [1e-3, 0.0])
@pytest.mark.parametrize("alpha", [0.0, 0.2])
@pytest.mark.parametrize("k", [1, 3])
def test_hidden_solve_equals_lstsq_on_explicit_design(k: int, alpha: float, l2: float) -> None:
    X, Y, W, B, stats = problem(k, alpha)
    Z, t = hidden_design(X, Y, W, B, alpha)
    lam = l2 * np.trace(Z.T @ Z) / Z.shape[1]
    expected = ridge_lstsq(Z, t, lam, np.ones(Z.shape[1], dtype=bool))
    W_new, report, _, _ = solve_hidden_layer(stats.P, stats.Q, stats.s, B, l2)
    assert W_new.shape == (H, D + 1)
    assert report.method == "cholesky" and report.warning is None
    np.testing.assert_allclose(report.ridge, lam, rtol=1e-12)
    np.testing.assert_allclose(W_new.ravel(), expected, rtol=1e-8, atol=1e-8 * np.abs(expected).max())


@pytest.mark.parametrize("l2", [1e-3, 0.0])
@pytest.mark.parametrize("alpha", [0.0, 0.2])
@pytest.mark.parametrize("k", [1, 3])
def test_output_solve_equals_lstsq_with_unpenalised_bias(k: int, alpha: float, l2: float) -> None:
    X, Y, W, _, stats = problem(k, alpha)
    _, _, phi = explicit_rows(X, W, alpha)
    penalized = np.arange(H + 1) < H
    lam = l2 * np.mean((phi[:, :H] ** 2).sum(axis=0))
    expected = ridge_lstsq(phi, Y, lam, penalized)
    B_new, report = solve_output_layer(stats.G, stats.C, l2)
    assert B_new.shape == (H + 1, k) and report.method == "cholesky"
    np.testing.assert_allclose(B_new, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    if l2 > 0:
        # The bias is unpenalised: it is the plain least-squares intercept given V.
        np.testing.assert_allclose(B_new[-1], (Y - phi[:, :H] @ B_new[:-1]).mean(axis=0), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3])
def test_step_search_takes_the_length_whose_output_lstsq_fits_best(k: int, seed: int) -> None:
    X, Y, W, _, _ = problem(k, 0.1, seed)
    W_solved = W + 0.3 * np.random.default_rng(seed).standard_normal(W.shape)
    candidates = step_candidates(W, W_solved)
    identity = Standardizer(np.zeros(D), np.ones(D), np.zeros(k), np.ones(k))
    sums = accumulate(Dataset(X, Y, block_rows=7), CandidateRequest(identity, candidates, 0.1, Holdout()))
    l2, penalized = 1e-3, np.arange(H + 1) < H
    layers, errors = [], []
    for length, candidate in zip(STEP_LENGTHS, candidates):
        np.testing.assert_allclose(candidate, W + length * (W_solved - W), rtol=1e-12, atol=1e-12)
        _, _, phi = explicit_rows(X, candidate, 0.1)
        B = ridge_lstsq(phi, Y, l2 * np.mean((phi[:, :H] ** 2).sum(axis=0)), penalized)
        layers.append(B)
        errors.append(float(((Y - phi @ B) ** 2).sum()))
    chosen, B, found = best_candidate(sums.G, sums.C, (Y**2).sum(axis=0), l2)
    assert chosen == int(np.argmin(errors))
    np.testing.assert_allclose(found, errors, rtol=1e-8)
    np.testing.assert_allclose(B, layers[chosen], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("k", [1, 3])
def test_hidden_system_identity_equals_explicit_sums(k: int) -> None:
    X, Y, W, B, stats = problem(k, 0.1)
    Z, t = hidden_design(X, Y, W, B, 0.1)
    M, r = hidden_system(stats.P, stats.Q, stats.s, B)
    scale = np.abs(Z.T @ Z).max()
    np.testing.assert_allclose(M, Z.T @ Z, rtol=1e-11, atol=1e-12 * scale)
    np.testing.assert_allclose(r, Z.T @ t, rtol=1e-11, atol=1e-12 * np.abs(Z.T @ t).max())


@pytest.mark.parametrize("k", [1, 3])
def test_loss_formulas_equal_explicit_squared_errors(k: int) -> None:
    alpha = 0.1
    X, Y, W, B, stats = problem(k, alpha)
    rng = np.random.default_rng(1)
    # Output layer: any B.
    _, _, phi = explicit_rows(X, W, alpha)
    other_B = rng.standard_normal(B.shape)
    for candidate in (B, other_B):
        expected = ((Y - phi @ candidate) ** 2).sum()
        assert output_loss(stats.G, stats.C, stats.sum_yy, candidate) == pytest.approx(expected, rel=1e-10)
    # The pass's realised loss is that of the current model.
    assert stats.sse.sum() == pytest.approx(((Y - phi @ B) ** 2).sum(), rel=1e-10)
    # Hidden layer: the fixed-pattern loss of any w.
    Z, t = hidden_design(X, Y, W, B, alpha)
    M, r = hidden_system(stats.P, stats.Q, stats.s, B)
    for w in (W.ravel(), rng.standard_normal(W.size)):
        predicted = hidden_loss(M, r, w, stats.sum_y, stats.sum_yy, stats.n, B[-1])
        assert predicted == pytest.approx(((Z @ w - t) ** 2).sum(), rel=1e-9)
    # With its own pattern, the current W's predicted loss is its realised loss.
    own = hidden_loss(M, r, W.ravel(), stats.sum_y, stats.sum_yy, stats.n, B[-1])
    assert own == pytest.approx(stats.sse.sum(), rel=1e-9)


def test_cholesky_report_logdet_and_condition() -> None:
    rng = np.random.default_rng(2)
    F = rng.standard_normal((50, 6))
    A = F.T @ F
    b = rng.standard_normal(6)
    ridge = scaled_ridge(A, 0.01)
    assert ridge == pytest.approx(0.01 * np.trace(A) / 6)
    x, report = solve_ridge(A, b, ridge)
    A_reg = A + ridge * np.eye(6)
    np.testing.assert_allclose(x, np.linalg.solve(A_reg, b), rtol=1e-12)
    assert report.logdet == pytest.approx(np.linalg.slogdet(A_reg)[1], rel=1e-12)
    exact = np.linalg.cond(A_reg, 1)
    assert exact / 3 <= report.condition <= exact * 1.0001


def test_eigh_fallback_on_singular_matrix_gives_finite_weights_and_warning() -> None:
    A = np.ones((3, 3))  # rank 1: Cholesky meets a zero pivot
    b = np.array([1.0, 1.0, 1.0])
    x, report = solve_ridge(A, b, 0.0, what="test system")
    assert report.method == "eigh"
    assert report.warning is not None and "test system" in report.warning and "not positive definite" in report.warning
    assert np.isfinite(x).all() and np.isfinite(report.logdet) and np.isfinite(report.condition)
    # A consistent system is still solved; the floor keeps the rounding-level components
    # along the null space bounded (of the order of the minimum-norm solution).
    np.testing.assert_allclose(A @ x, b, rtol=1e-10)
    assert np.linalg.norm(x) <= 10 * np.linalg.norm(np.linalg.pinv(A) @ b)
    # An indefinite matrix is floored too, and a rhs outside the range stays finite.
    indefinite = np.diag([2.0, -1.0, 0.0])
    x, report = solve_ridge(indefinite, np.array([1.0, 1.0, 1.0]), 0.0)
    assert report.method == "eigh" and np.isfinite(x).all()


def test_non_finite_statistics_raise_numerical_error() -> None:
    A = np.eye(2)
    A[0, 1] = np.nan
    with pytest.raises(NumericalError, match="NaN or Inf"):
        solve_ridge(A, np.ones(2), 0.1, what="output layer")
    with pytest.raises(streamls.StreamLSError):
        solve_ridge(np.eye(2), np.array([np.inf, 0.0]), 0.1)


def test_singular_hidden_system_in_training_is_reported_in_history() -> None:
    """A constant input column makes M exactly singular; with l2 = damping = 0 the fallback runs."""
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.standard_normal((600, 2)), np.full(600, 4.0)])
    y = np.maximum(X[:, 0], 0) - X[:, 1] + 0.1 * rng.standard_normal(600)
    result = streamls.fit(X, y, hidden_units=4, l2=0.0, damping=0.0, max_iter=3, tol=0, random_state=0)
    warnings = [r.warning for r in result.history if r.warning]
    assert warnings and all("eigen" in w for w in warnings)
    assert np.isfinite(result.model.W).all() and np.isfinite(result.model.B).all()
    assert np.isfinite(result.model.predict(X)).all()


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_rebalance_keeps_predictions_and_equalises_norms(alpha: float) -> None:
    rng = np.random.default_rng(4)
    W = rng.standard_normal((6, 4)) * np.array([[1e3], [1e-2], [1.0], [5.0], [0.0], [2.0]])
    V = rng.standard_normal((6, 2)) * np.array([[1e-3], [10.0], [1.0], [0.0], [1.0], [3.0]])
    x = np.hstack([rng.standard_normal((200, 3)), np.ones((200, 1))])

    def outputs(W_: np.ndarray, V_: np.ndarray) -> np.ndarray:
        u = x @ W_.T
        return np.where(u > 0, u, alpha * u) @ V_

    W2, V2 = rebalance(W, V)
    np.testing.assert_allclose(outputs(W2, V2), outputs(W, V), rtol=1e-12, atol=1e-12)
    live = [0, 1, 2, 5]
    np.testing.assert_allclose(np.linalg.norm(W2[live], axis=1), np.linalg.norm(V2[live], axis=1), rtol=1e-12)
    # Neurons with a zero weight vector on either side are left alone.
    np.testing.assert_array_equal(W2[[3, 4]], W[[3, 4]])
    np.testing.assert_array_equal(V2[[3, 4]], V[[3, 4]])
