"""Execution backends: where the blocks of a pass are read and their statistics summed."""

from __future__ import annotations

from typing import Any

from ..errors import parameter_error
from .base import Backend
from .local import LocalBackend

BACKENDS = ("local", "dask")


def make_backend(backend: str | Backend, **options: Any) -> Backend:
    """Return a backend instance for a name (``"local"``, ``"dask"``) or pass one through.

    ``options`` go to the backend's constructor (``prefetch``, ``workers`` for local; ``client`` or
    ``scheduler_address`` for Dask).
    """
    if not isinstance(backend, str):
        return backend
    if backend == "local":
        return LocalBackend(**options)
    if backend == "dask":
        from .dask import DaskBackend  # imported lazily: dask.distributed is slow to import

        return DaskBackend(**options)
    raise parameter_error("fit", "backend", f"one of {BACKENDS} or a Backend instance", backend)


__all__ = ["BACKENDS", "Backend", "LocalBackend", "make_backend"]
