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
    V, b0 = B[:-1], B[-1]
    h, k = V.shape
    p = len(s) // h
    M = (P.reshape(h, p, h, p) * (V @ V.T)[:, None, :, None]).reshape(h * p, h * p)
    centred = Q.reshape(h, p, k) - s.reshape(h, p, 1) * b0
    r = (V[:, None, :] * centred).sum(axis=2).reshape(h * p)
    return M, r


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
    centred = float(sum_yy.sum() - 2 * b0 @ sum_y + n * b0 @ b0)
    return centred - 2 * float(w @ r) + float(w @ (M @ w))


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
