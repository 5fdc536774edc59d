"""Stopping a run at a safe point: SIGINT and SIGTERM only set a flag that the run checks.

The run checks the flag after every block of rows and after every checkpoint, so it stops
with its last checkpoint intact and exits with 128 + the signal number.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(Exception):
    """Raised at a safe point after SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopFlag:
    """Signal handlers that only record the signal; :meth:`check` raises at safe points.

    A second signal raises at once: checkpoints are atomic, so stopping anywhere is safe,
    only slower to resume.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def check(self) -> None:
        """Raise :class:`Interrupted` if SIGINT or SIGTERM has arrived; else do nothing."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Context manager: record SIGINT and SIGTERM while inside, then restore the previous handlers.

        Yields this flag. Must be entered from the main thread (a :mod:`signal` rule).
        """
        previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
