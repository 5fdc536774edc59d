"""In-process backend: one reader thread prefetches blocks while BLAS computes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..sources import Dataset
from ..stats import DataMoments, PassRequest, PassStatistics, accumulate

S = TypeVar("S", DataMoments, PassStatistics)


class LocalBackend:
    """Evaluate passes in this process.

    Parameters
    ----------
    prefetch : bool
        Read the next block in a background thread while the current one is computed.
    progress : callable, optional
        Called with the row count of every finished block (the CLI's progress bar).
    """

    def __init__(self, prefetch: bool = True, progress: Callable[[int], None] | None = None) -> None:
        self.prefetch = prefetch
        self.progress = progress

    def run(self, dataset: Dataset, request: PassRequest[S]) -> S:
        """Sum ``request``'s statistics over all blocks of ``dataset`` in this process.

        Same as :func:`streamls.stats.accumulate` with this backend's ``prefetch`` and ``progress``.
        """
        return accumulate(dataset, request, prefetch=self.prefetch, progress=self.progress)

    def close(self) -> None:
        """Nothing to release."""
