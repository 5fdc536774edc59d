"""The hidden-layer solve without forming ``M``: preconditioned conjugate gradients (METHOD.md, wide data).

The dense solve needs ``P``, ``(h p)^2`` numbers and about ``(h p)^2 / 4`` multiply-adds per row.
Here ``M`` is only applied, by product passes over the rows (:mod:`streamls.stats.products`,
``2 h (p + k)`` multiply-adds per row and product), and preconditioned by its diagonal
blocks ``||V_j||^2 D_j``, which the statistics pass sums in the block form at ``h p^2 / 4``
per row. Memory is ``O(h p^2)``.

Like :mod:`streamls.solvers` these functions know nothing about files or backends: they
receive a ``products`` function that returns ``M v`` (and the validation rows' ``M_v v``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import NumericalError
from .solvers import L2_GRID, RidgeChoice, best_score, centred_target_sum, gcv_score, hidden_rhs
from .stats.pass_stats import HeldOutSums, pair_counts
from .stats.products import HiddenProducts

#: Conjugate gradients stop when the residual of the damped system falls below this share
#: of the start's residual, or after :data:`CG_MAX_ITER` products: the step from the start
#: (the current weights) is then accurate to about that share. An alternating step does not
#: need the exact fixed-pattern optimum (the next pass moves the pattern anyway), but a loose
#: one changes the path: on 3000 teacher rows (d = 6, h = 6, l2 = 1e-4) a tolerance of 3e-2
#: ended 47 % above the dense solve's training loss (another local optimum), 1e-2 within 0.7 %.
#: On 500k teacher rows (d = 128, h = 32) the held-out loss after about 115 s was 0.068 with
#: 3e-2 and 30 products, 0.071 with 1e-2 and 50.
CG_TOL = 1e-2
CG_MAX_ITER = 30

#: The preconditioner's blocks ``D_j`` are summed over a uniform share of a pass's rows: about
#: this many rows per input, and at least :data:`PRECONDITIONER_MIN_ROWS` (every row below
#: that). A block Jacobi preconditioner need only be near the diagonal blocks (conjugate
#: gradients converge to the same solution with any), and ``64 p`` active rows estimate a
#: ``p x p`` Gram within about ``2 / sqrt(64)`` of its spectrum; summing the blocks over every
#: row cost ``h p^2 / 4`` multiply-adds per row, as much as about 20 product passes at d = 128,
#: h = 32 and 40 at d = 256, h = 64. The ridges stay relative to the exact mean diagonal
#: (:meth:`streamls.stats.PassStatistics.block_diagonal`).
PRECONDITIONER_ROWS_PER_INPUT = 128
PRECONDITIONER_MIN_ROWS = 16_384


def span_tolerance(roundoff: float) -> float:
    """Singular values of the unit search directions below this share of the largest are cut
    from the search space of :func:`subspace_solutions`, for products of unit roundoff ``roundoff``.

    A basis vector along a singular value ``sigma`` gets its product from the directions'
    products divided by ``sigma``, and their rounding with it: a cut at the square root of
    the roundoff (1.5e-8 for float64 products, 3.5e-4 for float32 ones) bounds that error at
    about the square root too.
    """
    return math.sqrt(roundoff)


#: Products of the fixed-pattern ``M`` of output weights ``V`` (h, k) with directions
#: ``(r, h, p)``: the training and validation rows' sums.
Products = Callable[[np.ndarray, np.ndarray], HiddenProducts]
#: The same for one ``V``.
Apply = Callable[[np.ndarray], HiddenProducts]


def preconditioner_share(rows: int, p: int) -> float:
    """The share of a pass's ``rows`` rows whose Grams make the preconditioner's blocks, for ``p`` inputs."""
    wanted = max(PRECONDITIONER_ROWS_PER_INPUT * p, PRECONDITIONER_MIN_ROWS)
    return min(1.0, wanted / max(rows, 1))


@dataclass(frozen=True)
class BlockJacobi:
    """The preconditioner ``(||V_j||^2 D_j + c I)^-1`` per neuron ``j``.

    Attributes
    ----------
    inverses : numpy.ndarray, shape (h, p, p)
    """

    inverses: np.ndarray

    @classmethod
    def of(cls, D: np.ndarray, weights: np.ndarray, shift: float) -> BlockJacobi:
        """From the neuron Grams ``D`` (h, p, p), the weights ``||V_j||^2`` (h,) and the shift ``c``.

        A singular block (a dead neuron without ridge) is inverted on its range instead.
        """
        blocks = weights[:, None, None] * D + shift * np.eye(D.shape[1])
        try:
            inverses = np.linalg.inv(blocks)
        except np.linalg.LinAlgError:
            values, vectors = np.linalg.eigh(blocks)
            floor = D.shape[1] * np.finfo(float).eps * np.abs(values).max(axis=1, keepdims=True)
            inverse_values = np.where(values > floor, 1.0 / np.where(values > floor, values, 1.0), 0.0)
            inverses = (vectors * inverse_values[:, None, :]) @ vectors.transpose(0, 2, 1)
        return cls(inverses)

    def apply(self, residual: np.ndarray) -> np.ndarray:
        """The preconditioned residual, shape (h, p) like ``residual``."""
        return (self.inverses @ residual[:, :, None])[:, :, 0]


@dataclass(frozen=True)
class KrylovSolve:
    """A conjugate-gradient solve of ``(M + c I) w = b`` from ``start``, with what it learnt about ``M``.

    Attributes
    ----------
    w : numpy.ndarray, shape (h, p)
    products : HiddenProducts
        ``M w`` (one direction), tracked without another product pass.
    iterations : int
        Product passes after the start's.
    residual : float
        ``||b - (M + c I) w|| / ||b||``, the relative residual of the solution.
    target : float
        The residual norm it aimed at.
    start : numpy.ndarray, shape (h, p)
    start_products : HiddenProducts
        ``M start``.
    directions : numpy.ndarray, shape (n, h, p)
        The search directions, which span the Krylov space ``w - start`` lies in.
    direction_products : HiddenProducts
        ``M`` times each direction, shape (n, h, p).
    """

    w: np.ndarray
    products: HiddenProducts
    iterations: int
    residual: float
    target: float
    start: np.ndarray
    start_products: HiddenProducts
    directions: np.ndarray
    direction_products: HiddenProducts


def conjugate_gradients(
    products: Apply,
    rhs: np.ndarray,
    shift: float,
    preconditioner: BlockJacobi,
    start: np.ndarray,
    start_products: HiddenProducts | None = None,
    tol: float = CG_TOL,
    max_iter: int = CG_MAX_ITER,
    target: float | None = None,
) -> KrylovSolve:
    """Preconditioned conjugate gradients for ``(M + shift I) w = rhs``, one product pass per iteration.

    Parameters
    ----------
    products : callable
        ``M`` applied to directions (r, h, p).
    rhs, start : numpy.ndarray, shape (h, p)
    shift : float
    preconditioner : BlockJacobi
    start_products : HiddenProducts, optional
        ``M start`` when already known (saves a pass).
    tol, max_iter : float, int
        Stop once the residual is ``tol`` times the start's, or after ``max_iter`` iterations.
    target : float, optional
        The residual norm to reach instead (a second run aims at the first run's target).
    """
    known = start_products if start_products is not None else products(start[None])
    w, Mw, Mw_val = start.copy(), known.train[0].copy(), known.validation[0].copy()
    residual = rhs - Mw - shift * w
    target = tol * float(np.linalg.norm(residual)) if target is None else target
    z = preconditioner.apply(residual)
    direction, rz = z, float(np.vdot(residual, z))
    directions, direction_products, direction_val = [], [], []
    roundoff = known.roundoff
    while float(np.linalg.norm(residual)) > target and len(directions) < max_iter and rz > 0:
        applied = products(direction[None])
        Mp, Mp_val = applied.train[0], applied.validation[0]
        roundoff = max(roundoff, applied.roundoff)
        curvature = float(np.vdot(direction, Mp)) + shift * float(np.vdot(direction, direction))
        if not curvature > 0:
            break  # the system is singular along this direction: the iterate so far is kept
        directions.append(direction)
        direction_products.append(Mp)
        direction_val.append(Mp_val)
        step = rz / curvature
        w += step * direction
        Mw += step * Mp
        Mw_val += step * Mp_val
        residual = residual - step * (Mp + shift * direction)
        z = preconditioner.apply(residual)
        rz, previous = float(np.vdot(residual, z)), rz
        direction = z + (rz / previous) * direction
    if not np.isfinite(w).all():
        raise NumericalError("hidden layer (conjugate gradients): the solution is not finite; check the data scale")
    stacked = np.array(directions) if directions else np.zeros((0, *start.shape))
    return KrylovSolve(
        w=w,
        products=HiddenProducts(Mw[None], Mw_val[None], roundoff),
        iterations=len(directions),
        residual=float(np.linalg.norm(residual)) / max(float(np.linalg.norm(rhs)), np.finfo(float).tiny),
        target=target,
        start=start,
        start_products=known,
        directions=stacked,
        direction_products=HiddenProducts(
            np.array(direction_products).reshape(stacked.shape), np.array(direction_val).reshape(stacked.shape), roundoff
        ),
    )


def subspace_solutions(solve: KrylovSolve, rhs: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, HiddenProducts]:
    """Galerkin solutions of ``(M + c I) w = rhs`` on the span of ``solve``'s start and directions, for each shift ``c``.

    ``w = c_0 start + sum_i c_i d_i`` over the search directions ``d_i``, with the coefficients
    that minimise ``w^T (M + c I) w / 2 - w^T rhs`` there. The products with ``M`` of the
    directions are known, so no pass is needed. Exact when the space holds the solution; for
    shifts near the one the space was built for it is close (the Krylov space of one shift is
    that of every shift, up to the preconditioner).

    Returns
    -------
    w : numpy.ndarray, shape (len(shifts), h, p)
    products : HiddenProducts
        ``M w`` for each, shape (len(shifts), h, p).
    """
    shape = solve.start.shape
    # The span of the start and the directions: with the start in it, large ridges can shrink
    # the weights towards zero, far from the start.
    directions = np.concatenate([solve.start[None], solve.directions]).reshape(len(solve.directions) + 1, -1)
    products = np.concatenate([solve.start_products.train, solve.direction_products.train]).reshape(directions.shape)
    products_val = np.concatenate([solve.start_products.validation, solve.direction_products.validation]).reshape(directions.shape)
    # An orthonormal basis of that span: conjugate-gradient directions lose their conjugacy in
    # floating point, and near-parallel ones would make the projected system singular. The
    # directions shrink as the solve converges, so they are first scaled to unit length.
    norms = np.linalg.norm(directions, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    directions, products, products_val = directions / norms, products / norms, products_val / norms
    U, sigma, Vt = np.linalg.svd(directions, full_matrices=False)
    # Directions close to the span of the others add mostly rounding; a cut far above the
    # rounding level is the same whatever the order of the sums.
    roundoff = max(solve.start_products.roundoff, solve.direction_products.roundoff)
    rank = int((sigma > sigma.max(initial=0.0) * span_tolerance(roundoff)).sum())
    to_basis = U[:, :rank].T / sigma[:rank, None]
    basis = Vt[:rank]
    applied, applied_val = to_basis @ products, to_basis @ products_val
    curvature = basis @ applied.T
    curvature = (curvature + curvature.T) / 2
    gradient = basis @ rhs.ravel()
    ws, Mws, Mws_val = [], [], []
    for shift in np.asarray(shifts, dtype=float):
        coef = np.linalg.solve(curvature + shift * np.eye(rank), gradient) if rank else np.zeros(0)
        ws.append(coef @ basis)
        Mws.append(coef @ applied)
        Mws_val.append(coef @ applied_val)
    out = (len(ws), *shape)
    found = HiddenProducts(np.array(Mws).reshape(out), np.array(Mws_val).reshape(out), roundoff)
    return np.array(ws).reshape(out), found


def block_dof(block_values: np.ndarray, weights: np.ndarray, ridges: np.ndarray) -> np.ndarray:
    """Degrees of freedom of the block-diagonal part of ``M``: ``sum_j sum_i e_ji / (e_ji + lambda)``.

    ``e_ji = ||V_j||^2 eig_i(D_j)`` are the eigenvalues of ``M``'s diagonal blocks. The function
    ``x / (x + lambda)`` is operator concave, so by Jensen's operator inequality for the
    pinching onto the diagonal blocks this bounds the true ``tr(M (M + lambda I)^-1)`` from
    above: GCV with it penalises at least as much as exact GCV (equal for one neuron).

    Parameters
    ----------
    block_values : numpy.ndarray, shape (h, p)
        Eigenvalues of each ``D_j``.
    weights : numpy.ndarray, shape (h,)
    ridges : numpy.ndarray, shape (r,)

    Returns
    -------
    numpy.ndarray, shape (r,)
    """
    values = (weights[:, None] * np.maximum(block_values, 0.0)).ravel()
    return (values[:, None] / (values[:, None] + np.maximum(ridges, np.finfo(float).tiny)[None, :])).sum(axis=0)


@dataclass(frozen=True)
class MatrixFreeStep:
    """The matrix-free hidden solve's result.

    Attributes
    ----------
    W : numpy.ndarray, shape (h, p)
    l2 : float
        The relative ridge used (chosen, with ``l2="auto"``).
    iterations : int
        Product passes of every conjugate-gradient run, the start's included.
    residual : float
        Relative residual of the last run.
    predicted : float
        Fixed-pattern squared error of ``W`` on the training rows (:func:`streamls.solvers.hidden_loss`).
    choice : RidgeChoice or None
        How ``l2="auto"`` chose.
    """

    W: np.ndarray
    l2: float
    iterations: int
    residual: float
    predicted: float
    choice: RidgeChoice | None = None


def fixed_pattern_losses_of(w: np.ndarray, Mw: np.ndarray, r: np.ndarray, centred: float) -> np.ndarray:
    """``centred - 2 w^T r + w^T M w`` for each of ``w`` (c, h, p), with its products ``Mw`` known: shape (c,).

    :func:`streamls.solvers.fixed_pattern_losses` without ``M``; ``centred`` is
    :func:`~streamls.solvers.centred_target_sum` of the same rows as ``r`` and ``Mw``.
    """
    flat = w.reshape(len(w), -1)
    return centred - 2 * flat @ r.ravel() + np.einsum("ci,ci->c", flat, Mw.reshape(len(w), -1))


def mean_block_diagonal(traces: np.ndarray, weights: np.ndarray, p: int) -> float:
    """The mean diagonal of ``M``, ``sum_j ||V_j||^2 tr(D_j) / (h p)``, which relative ridges multiply (1 if 0).

    ``traces`` (h,) are the ``tr(D_j)``; ``weights`` (h,) the ``||V_j||^2``.
    """
    mean = float((weights * traces).sum()) / (len(traces) * p)
    return mean if mean > 0 else 1.0


def solve_hidden_matrix_free(
    D: np.ndarray,
    Q: np.ndarray,
    s: np.ndarray,
    B: np.ndarray,
    train: tuple[np.ndarray, np.ndarray, int],
    products: Products,
    l2: float | None,
    damping: float,
    W_current: np.ndarray,
    held_out: HeldOutSums | None = None,
    l2_start: float = 1e-3,
    grid: np.ndarray = L2_GRID,
    tol: float = CG_TOL,
    max_iter: int = CG_MAX_ITER,
    traces: np.ndarray | None = None,
) -> MatrixFreeStep:
    """Hidden weights for fixed output weights and pattern by conjugate gradients; the ridge fixed or chosen.

    Solves the damped system of :func:`streamls.solvers.solve_hidden_layer`,
    ``(M + (lambda + mu) I) w = r + mu w_current``, from ``w_current``, with ``lambda`` and ``mu``
    relative to ``M``'s mean diagonal as there. With ``l2=None`` (``"auto"``) the first run uses
    ``l2_start``; the grid's candidates are then the undamped Galerkin solutions on its search
    space (:func:`subspace_solutions`), scored as the dense path scores them: by the validation
    rows' exact fixed-pattern loss (their products came with every pass), or by GCV with the
    block-diagonal degrees of freedom (:func:`block_dof`). A second run, started from the chosen
    candidate's damped Galerkin solution, solves with the chosen ridge to the first run's
    residual target (often at once: the Galerkin solution is good near the first ridge).

    Parameters
    ----------
    D : numpy.ndarray, shape (h, p, p)
    Q, s : numpy.ndarray, shapes (h p, k), (h p,)
    B : numpy.ndarray, shape (h + 1, k)
    train : (sum_y, sum_yy, n)
    products : callable
        ``products(V, directions)``.
    l2 : float or None
    damping : float
    W_current : numpy.ndarray, shape (h, p)
    held_out : HeldOutSums or None
    l2_start : float
        Relative ridge of the first run with ``l2=None`` (the previous iteration's choice).
    grid : numpy.ndarray, shape (r,)
    tol, max_iter : float, int
        Of each conjugate-gradient run.
    traces : numpy.ndarray, shape (h,), optional
        The exact ``tr(D_j)`` when ``D`` is estimated from a share of the rows
        (:meth:`streamls.stats.PassStatistics.block_diagonal`): the ridges are relative to the
        exact mean diagonal of ``M``, so only the preconditioner and GCV's degrees of freedom
        see the estimate. Default: those of ``D``.
    """
    h, p = W_current.shape
    V, b0 = B[:-1], B[-1]

    def apply(directions: np.ndarray) -> HiddenProducts:
        return products(V, directions)

    weights = (V**2).sum(axis=1)
    scale = mean_block_diagonal(np.trace(D, axis1=1, axis2=2) if traces is None else traces, weights, p)
    prox = damping * scale
    r = hidden_rhs(Q, s, B).reshape(h, p)
    rhs = r + prox * W_current
    first_l2 = l2 if l2 is not None else float(grid[np.argmin(np.abs(np.log(grid / l2_start)))])
    shift = first_l2 * scale + prox
    solve = conjugate_gradients(apply, rhs, shift, BlockJacobi.of(D, weights, shift), W_current, None, tol, max_iter)
    iterations, choice, chosen = solve.iterations + 1, None, first_l2
    sum_y, sum_yy, n = train
    centred = centred_target_sum(sum_y, sum_yy, n, b0)
    if l2 is None:
        ridges = grid * scale
        candidates, applied = subspace_solutions(solve, r, ridges)
        k = B.shape[1]
        if held_out is not None and held_out.n > 0:
            r_val = hidden_rhs(held_out.Q, held_out.s, B)
            centred_val = centred_target_sum(held_out.sum_y, held_out.sum_yy, held_out.n, b0)
            losses = fixed_pattern_losses_of(candidates, applied.validation, r_val, centred_val)
            scores, criterion = losses / (held_out.n * k), "validation"
        else:
            rss = fixed_pattern_losses_of(candidates, applied.train, r, centred)
            scores, criterion = gcv_score(rss, block_dof(np.linalg.eigvalsh(D), weights, ridges), n * k), "gcv"
        best = best_score(scores)
        chosen, choice = float(grid[best]), RidgeChoice(float(grid[best]), criterion, scores)
        if chosen != first_l2:
            shift = ridges[best] + prox
            start, known = subspace_solutions(solve, rhs, np.array([shift]))
            solve = conjugate_gradients(apply, rhs, shift, BlockJacobi.of(D, weights, shift), start[0], known, tol, max_iter, solve.target)
            iterations += solve.iterations
    predicted = float(fixed_pattern_losses_of(solve.w[None], solve.products.train, r, centred)[0])
    if not math.isfinite(predicted):
        raise NumericalError("hidden layer (conjugate gradients): the predicted loss is not finite")
    return MatrixFreeStep(solve.w, chosen, iterations, solve.residual, predicted, choice)


#: The cost model of the automatic choice, in multiply-adds per row and pass (measured on 2
#: cores, 8k-row blocks): reading a pooled row, standardising it, its pattern, ``G`` and the
#: loss cost about as much as 25,000 multiply-adds at the rate of the dense pass's matrix
#: product; the product passes' skinny matrix products run at about half that rate.
PASS_OVERHEAD = 25_000
PRODUCT_SLOWDOWN = 2.0
#: Products a matrix-free solve is predicted to take (a second run when ``l2="auto"``
#: chooses another ridge than the first run's), and the symmetric eigendecomposition's cost
#: against a Cholesky factorisation's ``n^3 / 3`` (about 3 ``n^3`` measured at n = 4128).
EXPECTED_PRODUCTS = 20
EIGH_COST, CHOLESKY_COST = 3.0, 1.0 / 3.0
#: ``(h p)^2`` matrices the dense solve holds at once (``P`` with its targets, ``M``, the eigenvectors).
DENSE_COPIES = 4


@dataclass(frozen=True)
class HiddenSolverCosts:
    """Predicted multiply-adds of one iteration's hidden solve, dense and matrix-free, and the dense solve's bytes."""

    dense: float
    matrix_free: float
    dense_bytes: int


def predicted_costs(rows: int, h: int, p: int, k: int, auto_l2: bool) -> HiddenSolverCosts:
    """The cost model: the pass and solve of each path for ``rows`` rows and ``h`` neurons of ``p`` inputs.

    Dense: one pass building ``P`` from its distinct entries (``h (h + 1) / 2 * p (p + 1) / 2``
    per row, :func:`streamls.stats.pass_stats.pair_gram`) and ``Q``, ``s`` (``h p (k + 1)``),
    and the ``(h p)^3`` solve (eigendecomposition with ``l2="auto"``, else Cholesky).
    Matrix-free: one pass building ``D`` (``h p^2 / 4`` per row of its share,
    :func:`preconditioner_share`), then :data:`EXPECTED_PRODUCTS` product passes (twice with
    ``l2="auto"``) of ``2 h (p + k)`` per row each; every pass also pays :data:`PASS_OVERHEAD`.
    """
    unknowns = h * p
    slope_pairs, input_pairs = pair_counts(h, p)
    dense_pass = slope_pairs * input_pairs + unknowns * (k + 1) + PASS_OVERHEAD
    dense = rows * dense_pass + (EIGH_COST if auto_l2 else CHOLESKY_COST) * unknowns**3
    passes = EXPECTED_PRODUCTS * (2 if auto_l2 else 1)
    product = PRODUCT_SLOWDOWN * 2 * h * (p + k) + PASS_OVERHEAD
    grams = rows * preconditioner_share(rows, p) * h * p * p / 4
    matrix_free = grams + rows * PASS_OVERHEAD + passes * rows * product
    return HiddenSolverCosts(dense, matrix_free, DENSE_COPIES * 8 * (unknowns + k + 1) ** 2)


def dense_hidden_solve(setting: str, rows: int, h: int, p: int, k: int, auto_l2: bool, memory_budget: int) -> bool:
    """Whether the hidden solve of a pass over ``rows`` rows is dense, for ``hidden_solver=setting``.

    ``"auto"``: dense when its matrices fit ``memory_budget`` bytes and its predicted cost
    (:func:`predicted_costs`) is the lower.
    """
    if setting != "auto":
        return setting == "dense"
    costs = predicted_costs(rows, h, p, k, auto_l2)
    return costs.dense_bytes <= memory_budget and costs.dense <= costs.matrix_free
