"""A lock on a run directory, so that two jobs never train into the same one.

The lock is a file ``RUN/.lock`` created with ``O_EXCL`` and holding JSON
``{"host", "pid", "started"}``. A lock whose process is gone (same host, pid not
running) is stale: it is moved aside atomically, so of two jobs finding the same stale
lock only one takes over, with a warning. A lock from another host cannot be checked
and is never taken over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from types import TracebackType

from ..errors import StreamLSError

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class RunLockedError(StreamLSError):
    """The run directory is in use by a live job."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read(path: str) -> dict[str, object]:
    try:
        with open(path) as handle:
            return dict(json.load(handle))
    except (OSError, ValueError, TypeError):
        return {}


class RunLock:
    """Context manager holding ``RUN/.lock`` for this process.

    Parameters
    ----------
    run_dir : str
        Existing run directory.
    """

    def __init__(self, run_dir: str) -> None:
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.held = False

    def acquire(self) -> None:
        """Take the lock, taking over a stale one; raise :class:`RunLockedError` if held."""
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._handle_existing(me["host"])
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            self.held = True
            return
        raise RunLockedError(f"{self.path}: could not take the lock; another job keeps taking it")

    def _handle_existing(self, host: str) -> None:
        owner = _read(self.path)
        owner_host, owner_pid = owner.get("host"), owner.get("pid")
        if not owner:
            # Unreadable: a writer between create and write, or garbage. Give a writer a moment.
            time.sleep(0.2)
            owner = _read(self.path)
            owner_host, owner_pid = owner.get("host"), owner.get("pid")
        if owner and owner_host != host:
            raise RunLockedError(
                f"{os.path.dirname(self.path)} is locked by pid {owner_pid} on host {owner_host} (since "
                f"{owner.get('started')}); if no job runs there, delete {self.path}"
            )
        if isinstance(owner_pid, int) and pid_alive(owner_pid):
            raise RunLockedError(
                f"{os.path.dirname(self.path)} is in use by a running job (pid {owner_pid} on {owner_host}, since "
                f"{owner.get('started')}); wait for it to finish or choose another --out-dir"
            )
        stale = f"{self.path}.stale-{os.getpid()}"
        try:
            os.rename(self.path, stale)  # atomic: only one contender wins the takeover
        except FileNotFoundError:
            return
        os.remove(stale)
        logger.warning(
            "taking over a stale lock of %s (pid %s on %s is not running)", os.path.dirname(self.path), owner_pid, owner_host
        )

    def release(self) -> None:
        """Delete the lock file if this object holds it; calling it again, or without holding the lock, does nothing."""
        if self.held:
            self.held = False
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
