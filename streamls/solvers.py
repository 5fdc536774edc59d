"""Ridge-regularised least-squares solves for both half-steps, and neuron rebalancing.

These functions take Gram matrices and right-hand sides and know nothing about files,
chunks or backends. Shapes: ``h`` hidden units, ``p = d + 1`` inputs with bias,
``k`` outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

from .errors import NumericalError
from .stats.pass_stats import HeldOutSums


@dataclass(frozen=True)
class SolveReport:
    """How a ridge system ``(A + ridge I) x = b`` was solved.

    Attributes
    ----------
    method : {"cholesky", "eigh"}
    ridge : float
        The absolute ridge term added to the diagonal (``l2`` times the mean diagonal).
    logdet : float
        ``log det(A + ridge I)`` (after the eigenvalue floor, for ``"eigh"``).
    condition : float
        Estimated 1-norm condition number (exact 2-norm one for ``"eigh"``).
    warning : str or None
        Set when the matrix was not positive definite and the fallback ran.
    """

    method: str
    ridge: float
    logdet: float
    condition: float
    warning: str | None = None


def scaled_ridge(A: np.ndarray, l2: float, penalized: np.ndarray | None = None) -> float:
    """The ridge term ``l2 * trace / size`` over the penalised diagonal of ``A``.

    Scaling by the mean diagonal makes ``l2`` mean the same for every layer and dataset.
    """
    diagonal = np.diag(A) if penalized is None else np.diag(A)[penalized]
    mean = float(diagonal.mean()) if diagonal.size else 0.0
    return l2 * (mean if mean > 0 else 1.0)


def solve_ridge(
    A: np.ndarray, b: np.ndarray, ridge: float, penalized: np.ndarray | None = None, what: str = "system"
) -> tuple[np.ndarray, SolveReport]:
    """Solve ``(A + ridge D) x = b`` with ``D`` the diagonal indicator of ``penalized``.

    Cholesky first; when the matrix is not positive definite, a symmetric
    eigen-decomposition with eigenvalues floored at ``n * eps * max|eigenvalue|``.

    Parameters
    ----------
    A : numpy.ndarray, shape (n, n)
        Symmetric positive semi-definite.
    b : numpy.ndarray, shape (n,) or (n, k)
    ridge : float
    penalized : numpy.ndarray of bool, shape (n,), optional
        Entries that get the ridge term; default all.
    what : str
        Name of the system, for messages.

    Returns
    -------
    x : numpy.ndarray, shape of ``b``
    report : SolveReport

    Raises
    ------
    NumericalError
        When the statistics are not finite, or the solution is not.
    """
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        raise NumericalError(f"{what}: the accumulated statistics hold NaN or Inf; check the data scale")
    A_reg = A.copy()
    A_reg[np.diag_indices_from(A_reg)] += ridge if penalized is None else ridge * penalized
    try:
        factor, lower = scipy.linalg.cho_factor(A_reg, lower=True, check_finite=False)
        x = scipy.linalg.cho_solve((factor, lower), b, check_finite=False)
        diag = np.diag(factor)
        anorm = float(np.abs(A_reg).sum(axis=0).max())
        rcond, _ = lapack.dpocon(factor, anorm, uplo="L")
        report = SolveReport("cholesky", ridge, float(2 * np.log(diag).sum()), 1.0 / max(float(rcond), 1e-300))
        if not np.isfinite(x).all():
            raise np.linalg.LinAlgError("non-finite Cholesky solution")
    except np.linalg.LinAlgError:
        x, report = _solve_eigh(A_reg, b, ridge, what)
    if not np.isfinite(x).all():
        raise NumericalError(f"{what}: the solution is not finite even after the eigenvalue floor")
    return x, report


def _solve_eigh(A_reg: np.ndarray, b: np.ndarray, ridge: float, what: str) -> tuple[np.ndarray, SolveReport]:
    values, vectors = scipy.linalg.eigh(A_reg, check_finite=False)
    floor = max(len(values) * np.finfo(float).eps * float(np.abs(values).max()), np.finfo(float).tiny)
    floored = np.maximum(values, floor)
    coef = vectors.T @ b
    x = vectors @ (coef / (floored if b.ndim == 1 else floored[:, None]))
    warning = (
        f"{what}: matrix not positive definite (smallest eigenvalue {values.min():.3g}); "
        f"solved by eigen-decomposition with eigenvalue floor {floor:.3g}; consider a larger l2"
    )
    return x, SolveReport("eigh", ridge, float(np.log(floored).sum()), float(floored.max() / floored.min()), warning)


def solve_output_layer(G: np.ndarray, C: np.ndarray, l2: float) -> tuple[np.ndarray, SolveReport]:
    """Output weights ``B = [V; b0]`` for fixed hidden weights.

    The bias row is not penalised: targets are standardised, so it only has to carry the
    mean of the training targets, and shrinking it would bias every prediction.

    Parameters
    ----------
    G : numpy.ndarray, shape (h + 1, h + 1)
    C : numpy.ndarray, shape (h + 1, k)
    l2 : float

    Returns
    -------
    B : numpy.ndarray, shape (h + 1, k)
    report : SolveReport
    """
    penalized = np.ones(len(G), dtype=bool)
    penalized[-1] = False
    ridge = scaled_ridge(G, l2, penalized)
    return solve_ridge(G, C, ridge, penalized, what="output layer")


def hidden_system(P: np.ndarray, Q: np.ndarray, s: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations ``M vec(W) = r`` of the hidden layer for output weights ``B``.

    ``M = P o ((V V^T) kron 1_p 1_p^T)`` and
    ``r = sum_c (V[:, c] kron 1_p) o (Q[:, c] - b0_c s)`` (METHOD.md).

    Parameters
    ----------
    P : numpy.ndarray, shape (h p, h p)
    Q : numpy.ndarray, shape (h p, k)
    s : numpy.ndarray, shape (h p,)
    B : numpy.ndarray, shape (h + 1, k)

    Returns
    -------
    M : numpy.ndarray, shape (h p, h p)
    r : numpy.ndarray, shape (h p,)
    """
    V = B[:-1]
    h, p = V.shape[0], len(s) // V.shape[0]
    M = (P.reshape(h, p, h, p) * (V @ V.T)[:, None, :, None]).reshape(h * p, h * p)
    return M, hidden_rhs(Q, s, B)


def hidden_rhs(Q: np.ndarray, s: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Right-hand side ``r = sum_c (V[:, c] kron 1_p) o (Q[:, c] - b0_c s)`` of the hidden layer, shape (h p,)."""
    V, b0 = B[:-1], B[-1]
    h, k = V.shape
    centred = Q.reshape(h, -1, k) - s.reshape(h, -1, 1) * b0
    return (V[:, None, :] * centred).sum(axis=2).ravel()


def centred_target_sum(sum_y: np.ndarray, sum_yy: np.ndarray, n: int, b0: np.ndarray) -> float:
    """``sum_ic (y_ic - b0_c)^2`` from the target sums: the constant of :func:`hidden_loss`."""
    return float(sum_yy.sum() - 2 * b0 @ sum_y + n * b0 @ b0)


def solve_hidden_layer(
    P: np.ndarray,
    Q: np.ndarray,
    s: np.ndarray,
    B: np.ndarray,
    l2: float,
    damping: float = 0.0,
    W_current: np.ndarray | None = None,
) -> tuple[np.ndarray, SolveReport, np.ndarray, np.ndarray]:
    """Hidden weights for fixed output weights and a fixed activation pattern.

    Minimises the fixed-pattern loss plus ``lambda ||w||^2 + mu ||w - w_current||^2``
    with ``lambda = l2 * m`` and ``mu = damping * m`` (``m`` the mean diagonal of ``M``).
    The proximal term keeps the step inside the region where the pattern it was solved
    for still holds; without it the exact fixed-pattern optimum can flip a third of the
    pattern and the realised loss jumps (seen on concrete: 0.03 predicted, 0.8 realised).

    Parameters
    ----------
    P, Q, s : the pass statistics, shapes (h p, h p), (h p, k), (h p,)
    B : numpy.ndarray, shape (h + 1, k)
    l2 : float
    damping : float
        Relative weight of the proximal term; 0 gives the plain ridge solve.
    W_current : numpy.ndarray, shape (h, p), optional
        Centre of the proximal term (required when ``damping > 0``).

    Returns
    -------
    W : numpy.ndarray, shape (h, p)
    report : SolveReport
    M : numpy.ndarray, shape (h p, h p)
    r : numpy.ndarray, shape (h p,)
        The undamped system, for :func:`hidden_loss`.
    """
    M, r = hidden_system(P, Q, s, B)
    ridge = scaled_ridge(M, l2)
    prox = scaled_ridge(M, damping)
    rhs = r if damping == 0 else r + prox * np.ravel(W_current)
    w, report = solve_ridge(M, rhs, ridge + prox, what="hidden layer")
    return w.reshape(B.shape[0] - 1, -1), report, M, r


def output_loss(G: np.ndarray, C: np.ndarray, sum_yy: np.ndarray, B: np.ndarray) -> float:
    """Squared error ``tr(Y^T Y) - 2 tr(B^T C) + tr(B^T G B)`` of output weights ``B``."""
    return float(sum_yy.sum() - 2 * np.sum(B * C) + np.sum(B * (G @ B)))


def hidden_loss(
    M: np.ndarray, r: np.ndarray, w: np.ndarray, sum_y: np.ndarray, sum_yy: np.ndarray, n: int, b0: np.ndarray
) -> float:
    """Squared error the fixed-pattern model predicts for hidden weights ``w`` (flattened).

    ``sum (y - b0)^2 - 2 w^T r + w^T M w``.
    """
    centred = centred_target_sum(sum_y, sum_yy, n, b0)
    return centred - 2 * float(w @ r) + float(w @ (M @ w))


#: The ridge terms ``l2="auto"`` tries, relative to each system's mean diagonal as a fixed
#: ``l2`` is: four a decade from 1e-7 (no shrinkage to speak of; the paper's protocol uses
#: 1e-6) to 10 (weights shrunk to a fraction of their least-squares size). The end points
#: bracket every choice measured on the real data sets of benchmarks/compare.py.
L2_GRID = np.logspace(-7, 1, 33)


@dataclass(frozen=True)
class RidgeChoice:
    """How ``l2="auto"`` chose one layer's ridge term.

    Attributes
    ----------
    l2 : float
        The chosen relative ridge (an entry of the grid).
    criterion : {"validation", "gcv"}
        Validation loss of the held-out rows, or generalised cross-validation.
    scores : numpy.ndarray, shape (len(grid),)
        The criterion at every grid point (validation: mean squared error per row and output).
    """

    l2: float
    criterion: str
    scores: np.ndarray


@dataclass(frozen=True)
class RidgePath:
    """Solutions of ``(A + c I) x = b`` for any ridge ``c``, from one eigendecomposition of ``A``.

    Attributes
    ----------
    values : numpy.ndarray, shape (n,)
        Eigenvalues of ``A``, rounding-level negatives raised to 0.
    vectors : numpy.ndarray, shape (n, n)
    coef : numpy.ndarray, shape (n, k)
        ``vectors.T @ b`` for the ``k`` right-hand sides.
    """

    values: np.ndarray
    vectors: np.ndarray
    coef: np.ndarray

    @classmethod
    def of(cls, A: np.ndarray, b: np.ndarray, what: str = "system") -> RidgePath:
        """The path of ``A`` (n, n), symmetric positive semi-definite, and ``b`` (n, k)."""
        if not (np.isfinite(A).all() and np.isfinite(b).all()):
            raise NumericalError(f"{what}: the accumulated statistics hold NaN or Inf; check the data scale")
        # Divide and conquer: a third faster than the default driver for every eigenvector.
        values, vectors = scipy.linalg.eigh(A, driver="evd", check_finite=False)
        return cls(np.maximum(values, 0.0), vectors, vectors.T @ b)

    def solutions(self, ridges: np.ndarray, column: int = 0) -> np.ndarray:
        """``x`` for right-hand side ``column`` and each ridge: shape (n, len(ridges))."""
        return self.vectors @ (self.coef[:, column, None] / self._floored(ridges))

    def dof(self, ridges: np.ndarray) -> np.ndarray:
        """Effective degrees of freedom ``sum_i e_i / (e_i + c)`` for each ridge, shape (len(ridges),)."""
        return (self.values[:, None] / self._floored(ridges)).sum(axis=0)

    def report(self, ridge: float) -> SolveReport:
        """The :class:`SolveReport` of the solve with ``ridge``."""
        shifted = self._floored(np.array([ridge]))[:, 0]
        return SolveReport("eigh", ridge, float(np.log(shifted).sum()), float(shifted.max() / shifted.min()))

    def _floored(self, ridges: np.ndarray) -> np.ndarray:
        """``e_i + c`` for each eigenvalue and ridge, floored as :func:`solve_ridge`'s fallback floors them."""
        shifted = self.values[:, None] + np.asarray(ridges, dtype=float)[None, :]
        floor = len(self.values) * np.finfo(float).eps * np.abs(shifted).max(axis=0, initial=0.0)
        return np.maximum(shifted, np.maximum(floor, np.finfo(float).tiny))


def gcv_score(rss: np.ndarray, dof: np.ndarray, n_residuals: int) -> np.ndarray:
    """Generalised cross-validation ``(rss / N) / (1 - dof / N)^2`` (Golub, Heath and Wahba 1979).

    Parameters
    ----------
    rss : numpy.ndarray, shape (r,)
        Residual sums of squares of the fits.
    dof : numpy.ndarray, shape (r,)
        Their effective degrees of freedom (traces of the hat matrices).
    n_residuals : int
        ``N``, the residuals summed (rows times outputs).

    Returns
    -------
    numpy.ndarray, shape (r,)
        ``inf`` where ``dof >= N``.
    """
    slack = 1.0 - dof / max(n_residuals, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(slack > 0, (rss / max(n_residuals, 1)) / slack**2, np.inf)


def best_score(scores: np.ndarray) -> int:
    """Index of the lowest score; the last (the largest ridge) when none is finite (too few rows for any)."""
    return int(np.argmin(scores)) if np.isfinite(scores).any() else len(scores) - 1


def output_layer_path(G: np.ndarray, C: np.ndarray) -> tuple[RidgePath, float]:
    """The ridge path of the output layer, with its unpenalised bias eliminated, and the ridge scale.

    With ``G = [[S, g], [g^T, n]]`` and ``C = [[C_v], [c^T]]`` the bias is
    ``b0 = (c - V^T g) / n`` for any ``V``, and ``V`` solves
    ``(S - g g^T / n + ridge I) V = C_v - g c^T / n``: the path of that centred system.

    Returns
    -------
    path : RidgePath
    scale : float
        The mean penalised diagonal of ``G``, which relative ridges multiply (as :func:`solve_output_layer`).
    """
    S, g, n = G[:-1, :-1], G[:-1, -1], max(float(G[-1, -1]), 1.0)
    centred = S - np.outer(g, g) / n
    rhs = C[:-1] - np.outer(g, C[-1]) / n
    penalized = np.ones(len(G), dtype=bool)
    penalized[-1] = False
    return RidgePath.of(centred, rhs, what="output layer"), scaled_ridge(G, 1.0, penalized)


def output_layers(path: RidgePath, G: np.ndarray, C: np.ndarray, ridges: np.ndarray) -> np.ndarray:
    """Output weights ``B`` for each absolute ridge of ``ridges``: shape (len(ridges), h + 1, k)."""
    V = np.stack([path.solutions(ridges, c) for c in range(C.shape[1])], axis=2)  # (h, r, k)
    V = V.transpose(1, 0, 2)
    n = max(float(G[-1, -1]), 1.0)
    b0 = (C[-1][None, :] - np.einsum("h,rhk->rk", G[:-1, -1], V)) / n
    return np.concatenate([V, b0[:, None, :]], axis=1)


def choose_output_layer(
    G: np.ndarray, C: np.ndarray, sum_yy: np.ndarray, held_out: HeldOutSums | None, grid: np.ndarray = L2_GRID
) -> tuple[np.ndarray, SolveReport, RidgeChoice]:
    """Output weights with the ridge of ``grid`` that scores best: on the held-out rows, else by GCV.

    Parameters
    ----------
    G, C, sum_yy : training sums, shapes (h + 1, h + 1), (h + 1, k), (k,)
    held_out : HeldOutSums or None
        The validation rows' sums; ``None`` or empty: generalised cross-validation.
    grid : numpy.ndarray, shape (r,)
        Relative ridges.

    Returns
    -------
    B : numpy.ndarray, shape (h + 1, k)
    report : SolveReport
    choice : RidgeChoice
    """
    path, scale = output_layer_path(G, C)
    candidates = output_layers(path, G, C, grid * scale)
    k = C.shape[1]
    if held_out is not None and held_out.n > 0:
        scores = np.array([output_loss(held_out.G, held_out.C, held_out.sum_yy, B) for B in candidates]) / (held_out.n * k)
        criterion = "validation"
    else:
        rss = np.array([output_loss(G, C, sum_yy, B) for B in candidates])
        # Each output fits the h penalised weights' effective freedom plus its bias.
        scores = gcv_score(rss, k * (path.dof(grid * scale) + 1.0), int(round(G[-1, -1])) * k)
        criterion = "gcv"
    best = best_score(scores)
    B = candidates[best]
    if not np.isfinite(B).all():
        raise NumericalError("output layer: the solution is not finite even after the eigenvalue floor")
    return B, path.report(grid[best] * scale), RidgeChoice(float(grid[best]), criterion, scores)


def choose_hidden_layer(
    P: np.ndarray,
    Q: np.ndarray,
    s: np.ndarray,
    B: np.ndarray,
    train: tuple[np.ndarray, np.ndarray, int],
    held_out: HeldOutSums | None,
    damping: float = 0.0,
    W_current: np.ndarray | None = None,
    grid: np.ndarray = L2_GRID,
) -> tuple[np.ndarray, SolveReport, np.ndarray, np.ndarray, RidgeChoice]:
    """Hidden weights with the ridge of ``grid`` that scores best under the fixed pattern.

    Each ``lambda = l2 * m`` of the grid is scored by its ridge solution
    ``(M + lambda I)^-1 r``: by the validation rows' fixed-pattern loss (:func:`hidden_loss`
    on their ``P``, ``Q``, ``s``), or without them by GCV with the hat matrix's trace
    ``sum e_i / (e_i + lambda)``. The step taken is the damped solve of
    :func:`solve_hidden_layer` with the chosen ``lambda``; one eigendecomposition of ``M``
    gives all of them.

    Parameters
    ----------
    P, Q, s : the training pass's sums, shapes (h p, h p), (h p, k), (h p,)
    B : numpy.ndarray, shape (h + 1, k)
    train : (sum_y, sum_yy, n)
        The training rows' target sums, shapes (k,), (k,), and count.
    held_out : HeldOutSums or None
    damping : float
    W_current : numpy.ndarray, shape (h, p), optional
        Required when ``damping > 0``.
    grid : numpy.ndarray, shape (r,)

    Returns
    -------
    W : numpy.ndarray, shape (h, p)
    report : SolveReport
    M, r : the undamped training system, for :func:`hidden_loss`
    choice : RidgeChoice
    """
    M, r = hidden_system(P, Q, s, B)
    scale = scaled_ridge(M, 1.0)
    prox = damping * scale
    rhs = r if damping == 0 else r + prox * np.ravel(W_current)
    path = RidgePath.of(M, np.column_stack([r, rhs]), what="hidden layer")
    ridges = grid * scale
    # The criteria score each ridge's undamped solution, the point the damped steps converge
    # to: the proximal term only shortens the step, it does not make the model simpler.
    candidates = path.solutions(ridges)  # (h p, r)
    sum_y, sum_yy, n = train
    k, b0 = B.shape[1], B[-1]
    if held_out is not None and held_out.n > 0:
        M_val, r_val = hidden_system(held_out.P, held_out.Q, held_out.s, B)
        scores = fixed_pattern_losses(M_val, r_val, candidates, held_out.sum_y, held_out.sum_yy, held_out.n, b0)
        scores /= held_out.n * k
        criterion = "validation"
    else:
        rss = fixed_pattern_losses(M, r, candidates, sum_y, sum_yy, n, b0)
        scores = gcv_score(rss, path.dof(ridges), n * k)
        criterion = "gcv"
    best = best_score(scores)
    step = ridges[best] + prox
    w = path.solutions(np.array([step]), column=1)[:, 0]
    if not np.isfinite(w).all():
        raise NumericalError("hidden layer: the solution is not finite even after the eigenvalue floor")
    return w.reshape(B.shape[0] - 1, -1), path.report(step), M, r, RidgeChoice(float(grid[best]), criterion, scores)


def fixed_pattern_losses(
    M: np.ndarray, r: np.ndarray, w: np.ndarray, sum_y: np.ndarray, sum_yy: np.ndarray, n: int, b0: np.ndarray
) -> np.ndarray:
    """:func:`hidden_loss` of each column of ``w`` (h p, r) at once: shape (r,)."""
    centred = centred_target_sum(sum_y, sum_yy, n, b0)
    return centred - 2 * (r @ w) + np.einsum("ir,ir->r", w, M @ w)


def rebalance(W: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescale each neuron so that ``||w_j|| = ||V[j]||``; predictions do not change.

    ReLU-like units are positively homogeneous, so ``w_j -> c w_j``, ``V[j] -> V[j] / c``
    leaves the network unchanged while stopping the scale drift that ruins conditioning.

    Parameters
    ----------
    W : numpy.ndarray, shape (h, p)
    V : numpy.ndarray, shape (h, k)

    Returns
    -------
    W, V : rescaled copies
    """
    norm_w = np.linalg.norm(W, axis=1)
    norm_v = np.linalg.norm(V, axis=1)
    ok = (norm_w > 0) & (norm_v > 0)
    c = np.ones(len(W))
    c[ok] = np.sqrt(norm_v[ok] / norm_w[ok])
    return W * c[:, None], V / c[:, None]


#: Lengths tried along the hidden solve's step ``W* - W``. The fixed-pattern solve is exact
#: for the pattern it assumed, but alternating steps shrink as they go (each layer's solve
#: undoes part of the other's progress), so a longer step often fits better once the pattern
#: is re-evaluated. Measured on 74k teacher rows of benchmarks/big_data.py (seed 0, 40
#: iterations of this loop in memory): the training loss ended at 0.0411 with the plain step
#: and at 0.0400 with these lengths. After a dense solve it lowers the training loss more than
#: the test loss, for the price of a pass, so by default it runs only after the matrix-free
#: solve, where that pass is cheap beside the products (docs/method.md, "The step search").
STEP_LENGTHS = (1.0, 1.5, 2.0, 3.0)


def step_candidates(W: np.ndarray, W_solved: np.ndarray, lengths: tuple[float, ...] = STEP_LENGTHS) -> np.ndarray:
    """Hidden layers ``W + t (W_solved - W)`` for each length ``t``: shape (len(lengths), h, p)."""
    return W[None] + np.asarray(lengths)[:, None, None] * (W_solved - W)[None]


def best_candidate(G: np.ndarray, C: np.ndarray, sum_yy: np.ndarray, l2: float) -> tuple[int, np.ndarray, np.ndarray]:
    """The candidate hidden layer whose ridge output layer leaves the least squared error.

    Parameters
    ----------
    G, C : numpy.ndarray, shapes (r, h + 1, h + 1), (r, h + 1, k)
        Each candidate's output sums over the training rows.
    sum_yy : numpy.ndarray, shape (k,)
    l2 : float
        The output layer's relative ridge.

    Returns
    -------
    index : int
    B : numpy.ndarray, shape (h + 1, k)
        The chosen candidate's output layer.
    losses : numpy.ndarray, shape (r,)
        Each candidate's squared error (infinite where its solve failed).
    """
    layers: list[np.ndarray | None] = []
    losses = np.full(len(G), np.inf)
    for i in range(len(G)):
        try:
            B, _ = solve_output_layer(G[i], C[i], l2)
        except NumericalError:
            B = None
        layers.append(B)
        loss = output_loss(G[i], C[i], sum_yy, B) if B is not None else np.inf
        losses[i] = loss if np.isfinite(loss) else np.inf
    best = int(np.argmin(losses))  # the first, the plain step, on ties
    if not np.isfinite(losses[best]):
        raise NumericalError("output layer: no candidate step has a finite solution")
    chosen = layers[best]
    assert chosen is not None
    return best, chosen, losses
