"""The Python interface: :func:`fit`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from .backends import Backend, LocalBackend, make_backend
from .errors import unexpected_keyword_error
from .hyperparameters import TrainConfig, document_hyperparameters, hyperparameters
from .model import TwoLayerModel
from .sources import Dataset
from .sources.dataset import renamed_block_rows
from .training import IterationRecord, Trainer, TrainResult, TrainState


def _with_hyperparameter_keywords(function: Callable[..., TrainResult]) -> Callable[..., TrainResult]:
    """Show the hyperparameters, which ``function`` takes in its ``**options``, in its signature and docstring.

    They become keyword-only parameters of ``inspect.signature(function)``, with the defaults of
    :class:`TrainConfig`, so that ``help()``, editors and the API reference list them; the
    docstring's :data:`~streamls.hyperparameters.MARKER` line becomes their entries.
    """
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    first_keyword = next(i for i, p in enumerate(parameters) if p.kind is p.KEYWORD_ONLY)
    keywords = [
        inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=spec.default, annotation=spec.annotation)
        for spec in hyperparameters()
    ]
    function.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*parameters[:first_keyword], *keywords, *parameters[first_keyword:]]
    )
    function.__doc__ = document_hyperparameters(function.__doc__)
    return function


@_with_hyperparameter_keywords
def fit(
    X: Any,
    y: Any = None,
    *,
    target_cols: int | str | Sequence[int | str] | None = None,
    block_rows: int | None = None,
    nan_policy: str = "error",
    init: TwoLayerModel | str | None = None,
    backend: str | Backend = "local",
    callback: Callable[[TrainState, IterationRecord], None] | None = None,
    memory_limit: int | str | None = None,
    chunk_rows: int | None = None,
    **options: Any,
) -> TrainResult:
    """Train a two-layer (leaky) ReLU network by streaming alternating least squares.

    Parameters
    ----------
    X : array_like, Source or data spec
        Inputs, shape (n, d): a NumPy array, a :class:`~streamls.sources.Source`, or a spec
        such as ``"data.h5:/X"``, ``"data.zarr:X"``, ``"data.npy"``, ``"data.parquet"``,
        ``"data.csv"``. With ``y=None``, a table that also holds the targets.
    y : array_like, Source, data spec or None
        Targets, shape (n,) or (n, k).
    {hyperparameters}
    target_cols : int, str or sequence of int and str, optional
        With ``y=None``: the target columns of ``X`` (default: the last), by index or, where
        the source has column names (Parquet, a CSV header), by name.
    block_rows : int, optional
        Rows per block read (rounded up to whole stored chunks of ``X``). Default 65536, fewer
        for rows of more than 15 inputs (at most 8 MiB of float64 rows, at least 4096 rows).
    nan_policy : {"error", "drop"}
    init : TwoLayerModel or path, optional
        Warm start from a model (its standardisation is kept).
    backend : {"local", "dask"} or Backend
    callback : callable, optional
        ``callback(state, record)`` after every iteration (see :class:`Trainer`).
    memory_limit : int, str or None
        Bytes, or a size such as ``"4GiB"``, for the in-memory sample pool; default: a share
        of available memory.
    chunk_rows : int, optional
        Deprecated name of ``block_rows`` (it warns): ``chunk_rows`` now names only a
        source's stored chunk.
    **options
        The hyperparameters above, and the options of the backend's constructor
        (:class:`~streamls.backends.LocalBackend`: ``prefetch=False``, ``workers=N``;
        :class:`~streamls.backends.dask.DaskBackend`: ``client=...``, ``n_workers=N``).

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        Before any data is read: for a hyperparameter out of range, for a keyword that is
        neither a hyperparameter nor an option of the backend (naming the closest valid one),
        and for both ``block_rows`` and ``chunk_rows``.
    """
    settings, backend_options = _split_options(options, backend)
    config = TrainConfig(**settings)
    block_rows = renamed_block_rows("fit", block_rows, chunk_rows)
    dataset = Dataset(X, y, target_cols=target_cols, nan_policy=nan_policy, block_rows=block_rows)
    if isinstance(init, str):
        from .persistence import load_model

        init = load_model(init)
    engine = make_backend(backend, **backend_options)
    try:
        trainer = Trainer(dataset, config, engine, callback, memory_limit=memory_limit)
        return trainer.run(trainer.initial_state(init))
    finally:
        if isinstance(backend, str):
            engine.close()
        dataset.close()


def _split_options(options: dict[str, Any], backend: str | Backend) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`fit`'s ``**options`` as hyperparameters and backend options; any other name is refused."""
    names = {spec.name for spec in hyperparameters()}
    backend_names = _backend_option_names(backend)
    for key in options:
        if key not in names and key not in backend_names:
            fit_keywords = [p.name for p in inspect.signature(fit).parameters.values() if p.kind is p.KEYWORD_ONLY]
            raise unexpected_keyword_error("fit", key, [*fit_keywords, *backend_names])
    settings = {key: value for key, value in options.items() if key in names}
    return settings, {key: value for key, value in options.items() if key not in names}


def _backend_option_names(backend: str | Backend) -> list[str]:
    """The options of the backend :func:`make_backend` builds for ``backend``: its constructor's parameters.

    None for a :class:`Backend` instance, which is used as it is, or for an unknown name,
    which :func:`make_backend` refuses.
    """
    if backend == "local":
        constructor: type = LocalBackend
    elif backend == "dask":
        from .backends.dask import DaskBackend  # only when asked for: dask.distributed is slow to import

        constructor = DaskBackend
    else:
        return []
    return list(inspect.signature(constructor).parameters)
