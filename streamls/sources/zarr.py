"""Zarr v3 arrays, in a local directory or at any fsspec URL zarr understands."""

from __future__ import annotations

import os
from typing import Any

import zarr
import zarr.errors

from ..errors import SourceFormatError, SourceNotFoundError
from .base import Source


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
        if not _is_url(self.store) and not os.path.isdir(self.store):
            raise SourceNotFoundError(f"{self.store}: no such Zarr store")
        options = {"storage_options": self.storage_options} if _is_url(self.store) else {}
        try:
            if self.array_path is None:
                return zarr.open_array(self.store, mode="r", **options)
            group = zarr.open_group(self.store, mode="r", **options)
            node = group[self.array_path]
        except KeyError as exc:
            raise SourceNotFoundError(
                f"{self.store}: no array {self.array_path!r} in the group; "
                f"it holds {sorted(group.array_keys())}"
            ) from exc
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"{self.store}: no Zarr array or group there") from exc
        except (zarr.errors.BaseZarrError, ValueError, TypeError) as exc:
            hint = " (a group: name the array as 'STORE:NAME')" if self.array_path is None else ""
            raise SourceFormatError(f"{self.store}: not a readable Zarr array{hint}: {exc}") from exc
        if not isinstance(node, zarr.Array):
            raise SourceFormatError(f"{self.name}: is a group, not an array")
        return node

    @property
    def chunk_rows(self) -> int:
        """Rows in one stored Zarr chunk."""
        return int(self.array.chunks[0])
