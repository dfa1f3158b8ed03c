"""Hashing slots: at most N password hashes at once per instance, never a wait (docs/API.md §8.1).

A bcrypt hash holds a CPU core and a sync worker for a quarter of a second at cost 12; if every
worker could be hashing, a login flood would starve every other request. A request that needs a
hash takes a free slot or is answered 503 at once. The slots are ``flock``s on N files in the
instance's runtime directory, so gunicorn's worker processes share them (plus a thread lock per
slot for threaded workers, since one process's flocks do not exclude its own threads). Without
a runtime directory (tests in one process) the thread locks alone count.
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import falcon

from widgetsvc.errors import APIError
from widgetsvc.metrics import HASH_SLOTS, HASH_SLOTS_BUSY

BUSY_MESSAGE = "Service Unavailable: too many logins in progress"


def busy() -> APIError:
    return APIError(falcon.HTTP_503, {"message": BUSY_MESSAGE}, {"Retry-After": "1"})


class HashSlots:
    def __init__(self, count: int, directory: Path | None = None):
        """Open the slot files now: call after gunicorn forks (``create_app`` does)."""
        if count < 1:
            raise ValueError("at least one hashing slot is needed")
        self.count = count
        HASH_SLOTS.set(count)
        self._locks = [threading.Lock() for _ in range(count)]
        self._fds: list[int | None] = [None] * count
        if directory is not None:
            self._fds = [
                os.open(Path(directory) / f"hash-slot-{i}",
                        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                for i in range(count)
            ]

    def _try(self, index: int) -> bool:
        if not self._locks[index].acquire(blocking=False):
            return False
        fd = self._fds[index]
        if fd is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            self._locks[index].release()
            return False

    def _release(self, index: int) -> None:
        fd = self._fds[index]
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._locks[index].release()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """One slot for the body of the ``with``; the §8.1 503 when none is free."""
        start = random.randrange(self.count)  # noqa: S311 (spreading load, not security)
        for offset in range(self.count):
            index = (start + offset) % self.count
            if self._try(index):
                break
        else:
            raise busy()
        HASH_SLOTS_BUSY.inc()
        try:
            yield
        finally:
            self._release(index)
            HASH_SLOTS_BUSY.dec()
