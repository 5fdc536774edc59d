"""``l2="auto"``: the ridge chosen per layer and iteration, checked against explicit numpy.

References are built from explicit design matrices (the output features ``[a * u, 1]``
and the hidden layer's Kronecker rows ``(V[:, c] * a_i) kron x~_i``, one per row and
output) and solved with ``np.linalg.solve``, independently of the Gram-matrix code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import streamls
from streamls.schedule import run_stop_reason, stop_reason, validation_rising
from streamls.solvers import L2_GRID, best_score, choose_hidden_layer, choose_output_layer
from streamls.state import IterationRecord
from streamls.stats.pass_stats import HeldOutSums

REFERENCE = Path(__file__).parent / "data" / "fixed_l2_reference.npz"


def relu_problem(n: int, d: int, h: int, k: int, seed: int):
    """Standardised-looking rows, hidden weights with bias, and their pattern and features."""
    rng = np.random.default_rng(seed)
    x_aug = np.hstack([rng.normal(size=(n, d)), np.ones((n, 1))])
    W = rng.normal(size=(h, d + 1))
    teacher = rng.normal(size=(h, k))
    u = x_aug @ W.T
    a = (u > 0).astype(float)
    phi = np.hstack([a * u, np.ones((n, 1))])
    y = phi[:, :-1] @ teacher + 0.5 * rng.normal(size=(n, k))
    return x_aug, W, a, phi, y


def held_out_sums(a, x_aug, phi, y) -> HeldOutSums:
    """The sums built explicitly: ``P = sum (a kron x~)(a kron x~)^T`` row by row."""
    kron = np.stack([np.kron(a_i, x_i) for a_i, x_i in zip(a, x_aug)])
    return HeldOutSums(len(y), y.sum(0), (y**2).sum(0), phi.T @ phi, phi.T @ y, kron.T @ kron, kron.T @ y, kron.sum(0))


def output_reference(phi, y, l2):
    """``(Phi^T Phi + l2 m D) B = Phi^T Y`` with D the identity but for the unpenalised bias."""
    G = phi.T @ phi
    penalty = np.ones(len(G))
    penalty[-1] = 0.0
    m = np.diag(G)[:-1].mean()
    return np.linalg.solve(G + l2 * m * np.diag(penalty), phi.T @ y), G + l2 * m * np.diag(penalty)


def hidden_design(a, x_aug, y, B):
    """The hidden layer's design matrix (n k, h p) and targets (n k,): rows (V[:, c] * a_i) kron x~_i."""
    V, b0 = B[:-1], B[-1]
    rows = [np.kron(V[:, c] * a_i, x_i) for a_i, x_i in zip(a, x_aug) for c in range(B.shape[1])]
    targets = (y - b0).reshape(-1)
    return np.array(rows), targets


@pytest.mark.parametrize("k", [1, 3])
def test_output_ridge_minimises_the_validation_loss_over_the_grid(k: int) -> None:
    x_aug, _W, a, phi, y = relu_problem(400, 4, 6, k, seed=k)
    train, val = slice(0, 300), slice(300, 400)
    held = held_out_sums(a[val], x_aug[val], phi[val], y[val])
    G, C = phi[train].T @ phi[train], phi[train].T @ y[train]
    B, _, choice = choose_output_layer(G, C, (y[train] ** 2).sum(0), held)
    losses = [np.mean((phi[val] @ output_reference(phi[train], y[train], l2)[0] - y[val]) ** 2) for l2 in L2_GRID]
    np.testing.assert_allclose(choice.scores, losses, rtol=1e-8)
    assert choice.criterion == "validation" and choice.l2 == L2_GRID[int(np.argmin(losses))]
    np.testing.assert_allclose(B, output_reference(phi[train], y[train], choice.l2)[0], rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("k, damping", [(1, 0.0), (3, 0.1)])
def test_hidden_ridge_minimises_the_validation_loss_over_the_grid(k: int, damping: float) -> None:
    x_aug, W, a, phi, y = relu_problem(300, 3, 4, k, seed=10 + k)
    train, val = slice(0, 220), slice(220, 300)
    B = np.random.default_rng(0).normal(size=(5, k))
    sums = held_out_sums(a[train], x_aug[train], phi[train], y[train])
    held = held_out_sums(a[val], x_aug[val], phi[val], y[val])
    found, _, _, _, choice = choose_hidden_layer(
        sums.P, sums.Q, sums.s, B, (sums.sum_y, sums.sum_yy, sums.n), held, damping, W
    )
    Z, t = hidden_design(a[train], x_aug[train], y[train], B)
    Z_val, t_val = hidden_design(a[val], x_aug[val], y[val], B)
    M = Z.T @ Z
    m = np.diag(M).mean()
    eye = np.eye(len(M))
    losses = [np.mean((Z_val @ np.linalg.solve(M + l2 * m * eye, Z.T @ t) - t_val) ** 2) for l2 in L2_GRID]
    np.testing.assert_allclose(choice.scores, losses, rtol=1e-7)
    assert choice.l2 == L2_GRID[int(np.argmin(losses))]
    # The step taken is the damped solve with the chosen ridge.
    expected = np.linalg.solve(M + (choice.l2 + damping) * m * eye, Z.T @ t + damping * m * W.ravel())
    np.testing.assert_allclose(found.ravel(), expected, rtol=1e-7, atol=1e-10)


def gcv_reference(Z, t, penalty, n_residuals, outputs=1):
    """GCV from the explicit hat matrix: ``N ||(I - H) t||^2 / (N - outputs tr H)^2``."""
    H = Z @ np.linalg.solve(Z.T @ Z + penalty, Z.T)
    residual = t - H @ t
    return n_residuals * float((residual**2).sum()) / (n_residuals - outputs * np.trace(H)) ** 2


@pytest.mark.parametrize("k", [1, 2])
def test_output_gcv_equals_its_closed_form_on_the_design_matrix(k: int) -> None:
    _x_aug, _W, _a, phi, y = relu_problem(150, 3, 5, k, seed=20 + k)
    G, C = phi.T @ phi, phi.T @ y
    _, _, choice = choose_output_layer(G, C, (y**2).sum(0), None)
    assert choice.criterion == "gcv"
    expected = [gcv_reference(phi, y, output_reference(phi, y, l2)[1] - G, len(y) * k, outputs=k) for l2 in L2_GRID]
    np.testing.assert_allclose(choice.scores, expected, rtol=1e-7)


@pytest.mark.parametrize("k", [1, 3])
def test_hidden_gcv_equals_its_closed_form_on_the_design_matrix(k: int) -> None:
    x_aug, W, a, phi, y = relu_problem(120, 2, 3, k, seed=30 + k)
    B = np.random.default_rng(1).normal(size=(4, k))
    sums = held_out_sums(a, x_aug, phi, y)
    _, _, _, _, choice = choose_hidden_layer(sums.P, sums.Q, sums.s, B, (sums.sum_y, sums.sum_yy, sums.n), None, 0.1, W)
    Z, t = hidden_design(a, x_aug, y, B)
    m = np.diag(Z.T @ Z).mean()
    expected = [gcv_reference(Z, t, l2 * m * np.eye(Z.shape[1]), len(t)) for l2 in L2_GRID]
    np.testing.assert_allclose(choice.scores, expected, rtol=1e-7)


def test_gcv_takes_the_largest_ridge_when_too_few_rows_leave_no_score_finite() -> None:
    # 12 rows, 10 inputs and the bias: finite scores. One row: the bias alone leaves df = N at
    # every grid point, no score is finite, and the most shrunk fit is the safe one.
    rng = np.random.default_rng(3)
    for n, finite in ((12, True), (1, False)):
        phi = np.column_stack([rng.normal(size=(n, 10)), np.ones(n)])
        y = rng.normal(size=(n, 1))
        _, _, choice = choose_output_layer(phi.T @ phi, phi.T @ y, (y**2).sum(0), None)
        assert np.isfinite(choice.scores).any() == finite
        assert choice.l2 == (L2_GRID[int(np.argmin(choice.scores))] if finite else L2_GRID[-1])
    assert best_score(np.array([3.0, 1.0, 2.0])) == 1 and best_score(np.full(3, np.inf)) == 2


def reference_data():
    """The rows tests/data/fixed_l2_reference.npz was trained on (by the code before l2="auto")."""
    rng = np.random.default_rng(12)
    n, d, h = 3000, 5, 8
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(h, d))
    v = rng.normal(size=h)
    return X, np.maximum(X @ W.T, 0) @ v + 0.3 * rng.normal(size=n)


@pytest.mark.parametrize("name, options", [("plain", {}), ("validation", {"validation_fraction": 0.2})])
def test_a_number_for_l2_reproduces_the_model_before_auto(name: str, options: dict) -> None:
    X, y = reference_data()
    reference = np.load(REFERENCE)
    result = streamls.fit(X, y, hidden_units=8, max_iter=15, random_state=3, l2=1e-6, **options)
    np.testing.assert_allclose(result.model.W, reference[f"{name}_W"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.model.B, reference[f"{name}_B"], rtol=1e-10, atol=1e-12)
    assert all(r.l2_hidden == 1e-6 for r in result.history[1:])


@pytest.mark.parametrize("validation_fraction", [0.0, 0.2])
def test_auto_ridge_is_the_default_and_records_its_choices(validation_fraction: float) -> None:
    X, y = reference_data()
    result = streamls.fit(X, y, hidden_units=8, max_iter=6, random_state=3, validation_fraction=validation_fraction)
    assert result.model.hyperparameters["l2"] == "auto"
    for record in result.history[1:]:
        assert record.l2_output in L2_GRID and record.l2_hidden in L2_GRID
    assert result.n_validation == (0 if validation_fraction == 0 else pytest.approx(600, rel=0.15))


@pytest.mark.parametrize("block_rows", [257, 1000])
def test_auto_ridge_does_not_depend_on_chunking(block_rows: int) -> None:
    X, y = reference_data()
    options = {"hidden_units": 8, "max_iter": 6, "random_state": 3, "validation_fraction": 0.2}
    whole = streamls.fit(X, y, **options)
    chunked = streamls.fit(X, y, block_rows=block_rows, **options)
    np.testing.assert_allclose(chunked.model.W, whole.model.W, rtol=1e-8, atol=1e-10)
    assert [r.l2_hidden for r in chunked.history] == pytest.approx([r.l2_hidden for r in whole.history], nan_ok=True)


def records(train: list[float], val: list[float], se: float) -> list[IterationRecord]:
    nan = float("nan")
    return [IterationRecord(i, t, v, nan, nan, nan, nan, 0, nan, 0.0, 0.0, loss_se=se) for i, (t, v) in enumerate(zip(train, val))]


def test_a_stalled_validation_loss_does_not_stop_training() -> None:
    train = [1.0 - 0.05 * i for i in range(15)]  # still improving
    val = [0.5, 0.3, *[0.31, 0.3005, 0.302] * 4, 0.3, 0.301]  # hovers near its best
    assert stop_reason(val, 1e-4, 10) is not None  # the rule before: stops on noise
    assert run_stop_reason(records(train, val, se=0.01), 1e-4, 10) is None


def test_a_validation_loss_risen_beyond_its_standard_error_stops_training() -> None:
    train = [1.0 - 0.05 * i for i in range(14)]
    val = [0.5, 0.3, 0.29, 0.28, *[0.3 + 0.001 * i for i in range(10)]]
    assert validation_rising(records(train, val, se=0.01), 10)
    assert "validation loss above its best" in run_stop_reason(records(train, val, se=0.01), 1e-4, 10)
    assert run_stop_reason(records(train, val, se=0.05), 1e-4, 10) is None  # within noise


def test_a_converged_training_loss_stops_a_run_with_validation_rows() -> None:
    train = [1.0, 0.5, *[0.4] * 11]
    reason = run_stop_reason(records(train, [0.5] * 13, se=0.01), 1e-4, 10)
    assert reason is not None and reason.startswith("training loss")
