"""The Python interface: :func:`fit`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .backends import Backend, make_backend
from .hyperparameters import TrainConfig
from .model import TwoLayerModel
from .sources import Dataset
from .training import IterationRecord, Trainer, TrainResult, TrainState


def fit(
    X: Any,
    y: Any = None,
    *,
    hidden_units: int = 32,
    alpha: float = 0.0,
    l2: float = TrainConfig.l2,
    damping: float = TrainConfig.damping,
    max_iter: int = 100,
    tol: float = TrainConfig.tol,
    n_iter_no_change: int = TrainConfig.n_iter_no_change,
    random_state: int | None = None,
    validation_fraction: float = 0.0,
    target_cols: int | Sequence[int] | None = None,
    chunk_rows: int | None = None,
    nan_policy: str = "error",
    init: TwoLayerModel | str | None = None,
    backend: str | Backend = "local",
    callback: Callable[[TrainState, IterationRecord], None] | None = None,
    **backend_options: Any,
) -> TrainResult:
    """Train a two-layer (leaky) ReLU network by streaming alternating least squares.

    Parameters
    ----------
    X : array_like, Source or data spec
        Inputs, shape (n, d): a NumPy array, a :class:`~streamls.sources.Source`, or a spec
        such as ``"data.h5:/X"``, ``"data.zarr:X"``, ``"data.npy"``. With ``y=None``, a
        table that also holds the targets.
    y : array_like, Source, data spec or None
        Targets, shape (n,) or (n, k).
    hidden_units : int, default 32
    alpha : float, default 0.0
        Leaky slope, in [0, 1).
    l2 : float, default 1e-6
        Ridge term, relative to each Gram matrix's mean diagonal.
    damping : float, default 1e-2
        Initial proximal weight keeping each hidden step near the current weights, relative
        to the hidden Gram matrix's mean diagonal; raised after a step that increased the
        training loss, lowered after one that decreased it (0: plain ALS).
    max_iter : int, default 100
    tol : float, default 1e-4
        Relative improvement over ``n_iter_no_change`` iterations below which training stops
        (0: run all ``max_iter``).
    n_iter_no_change : int, default 10
    random_state : int or None
    validation_fraction : float, default 0.0
        Rows held out by row-index hash; they drive early stopping and the best iterate.
    target_cols : int or sequence of int, optional
        With ``y=None``: the target columns of ``X`` (default: the last).
    chunk_rows : int, optional
        Rows per block (rounded up to whole stored chunks). Default 65536.
    nan_policy : {"error", "drop"}
    init : TwoLayerModel or path, optional
        Warm start from a model (its standardisation is kept).
    backend : {"local", "dask"} or Backend
    callback : callable, optional
        ``callback(state, record)`` after every iteration (see :class:`Trainer`).
    **backend_options
        Passed to the backend (``prefetch=False`` or ``workers=N`` for local; ``client=...`` for Dask).

    Returns
    -------
    TrainResult
    """
    config = TrainConfig(
        hidden_units=hidden_units,
        alpha=alpha,
        l2=l2,
        damping=damping,
        max_iter=max_iter,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        random_state=random_state,
        validation_fraction=validation_fraction,
    )
    dataset = Dataset(X, y, target_cols=target_cols, nan_policy=nan_policy, block_rows=chunk_rows)
    if isinstance(init, str):
        from .persistence import load_model

        init = load_model(init)
    engine = make_backend(backend, **backend_options)
    try:
        trainer = Trainer(dataset, config, engine, callback)
        return trainer.run(trainer.initial_state(init))
    finally:
        if isinstance(backend, str):
            engine.close()
        dataset.close()
