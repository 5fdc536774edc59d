"""The execution-backend contract: evaluate a pass request over a whole dataset."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from ..sources import Dataset
from ..stats import DataMoments, MomentsRequest, PassRequest, PassStatistics
from ..stats.passes import PatternRequest, ProductRequest
from ..stats.products import HiddenProducts, PatternBlocks

S = TypeVar("S", DataMoments, PassStatistics, HiddenProducts, PatternBlocks)


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

    def run_pooled(self, pool: Any, request: PassRequest[S]) -> S:
        """Evaluate ``request`` over the pooled rows of its sample; equals ``run`` up to rounding when the pool holds the sample."""

    def fix_pattern(self, pool: Any, request: PatternRequest) -> Any:
        """The pooled rows of ``request.sample`` under its pattern, kept where they are pooled; a handle for :meth:`run_fixed`."""

    def run_fixed(self, fixed: Any, request: ProductRequest) -> HiddenProducts:
        """Evaluate the product pass ``request`` over the pattern rows of :meth:`fix_pattern` (of the same pattern)."""

    def close(self) -> None:
        """Release what the backend started (clients, clusters); call once, after the last :meth:`run`."""
