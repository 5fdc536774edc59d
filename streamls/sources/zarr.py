"""Zarr v3 arrays, in a local directory or at any fsspec URL zarr understands."""

from __future__ import annotations

import os
from typing import Any

import zarr
import zarr.errors

from ..errors import SourceFormatError, SourceNotFoundError
from .base import DATA_TOOLS_ATTRIBUTE, Source, converted_names


def _is_url(store: str) -> bool:
    return "://" in store


class ZarrSource(Source):
    """A Zarr array: a bare array store, or array ``name`` inside a group store.

    Parameters
    ----------
    store : str or os.PathLike
        Local directory or fsspec URL (``memory://``, ``s3://``, ...).
    array : str or None
        Path of the array inside the group at ``store``; ``None`` when ``store`` is
        itself an array.
    storage_options : dict, optional
        Passed to fsspec for URLs.
    """

    def __init__(
        self,
        store: str | os.PathLike[str],
        array: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.store = os.fspath(store)
        self.array_path = array
        self.storage_options = storage_options
        self.name = f"{self.store}:{array}" if array else self.store

    def _open(self) -> Any:
        url = _is_url(self.store)
        if not url and not os.path.isdir(self.store):
            raise SourceNotFoundError(f"{self.store}: no such Zarr store")
        options = {"storage_options": self.storage_options} if url else {}
        try:
            root = zarr.open(self.store, mode="r", **options)
        except FileNotFoundError as exc:  # zarr's NodeNotFoundError is one too
            raise SourceNotFoundError(f"{self.store}: no Zarr array or group there") from exc
        except (zarr.errors.BaseZarrError, ValueError, TypeError) as exc:
            raise SourceFormatError(f"{self.store}: not a readable Zarr store: {exc}") from exc
        if self.array_path is None:
            if isinstance(root, zarr.Group):
                raise SourceFormatError(
                    f"{self.store}: a Zarr group, not an array: name the array as '{self.store}:NAME'; "
                    f"the group holds arrays {sorted(root.array_keys())}"
                )
            return root
        if not isinstance(root, zarr.Group):
            raise SourceFormatError(f"{self.store}: a Zarr array, not a group; drop ':{self.array_path}'")
        try:
            node = root[self.array_path]
        except KeyError as exc:
            raise SourceNotFoundError(
                f"{self.store}: no array {self.array_path!r} in the group; it holds {sorted(root.array_keys())}"
            ) from exc
        if not isinstance(node, zarr.Array):
            raise SourceFormatError(f"{self.name}: is a group, not an array; it holds {sorted(node.array_keys())}")
        n_cols = 1 if len(node.shape) < 2 else int(node.shape[1])
        self._names = converted_names(root.attrs.get(DATA_TOOLS_ATTRIBUTE), self.array_path, n_cols)
        return node

    @property
    def chunk_rows(self) -> int:
        """Rows in one stored Zarr chunk."""
        return int(self.array.chunks[0])
