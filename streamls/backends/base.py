"""The execution-backend contract: evaluate a pass request over a whole dataset."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from ..sources import Dataset
from ..stats import DataMoments, MomentsRequest, PassRequest, PassStatistics, StatisticsRequest

S = TypeVar("S", DataMoments, PassStatistics)


class Backend(Protocol):
    """Runs one pass: ``request.on_block`` over every block of ``dataset``, summed.

    Implementations differ only in where the blocks are read and summed; the result
    must equal :func:`streamls.stats.accumulate` over the whole dataset up to rounding.
    """

    def run(self, dataset: Dataset, request: PassRequest[S]) -> S:
        """Evaluate ``request`` over all rows of ``dataset`` and return the summed statistics.

        Must equal ``accumulate(dataset, request)`` up to rounding, counting every row once.
        """

    def pool(self, dataset: Dataset, request: MomentsRequest) -> tuple[DataMoments, Any]:
        """The moments pass ``request``, also keeping ``request.pool``'s rows in memory where they were read.

        Returns the moments (their ``pooled`` emptied; ``pooled_rows`` and ``pooled_bytes``
        kept) and a handle to the pool for :meth:`run_pooled`.
        """

    def run_pooled(self, pool: Any, request: StatisticsRequest) -> PassStatistics:
        """Evaluate ``request`` over the pooled rows of its sample; equals ``run`` up to rounding when the pool holds the sample."""

    def close(self) -> None:
        """Release what the backend started (clients, clusters); call once, after the last :meth:`run`."""
