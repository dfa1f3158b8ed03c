"""Password hashing with bcrypt. The 72-byte rule is the validator's, checked before we get here.

Hashes run on a helper thread at a lower CPU priority (Linux nice values are per thread; bcrypt
releases the GIL while it works): when logins and other requests compete for the cores, the
other requests win, and a login waits a little longer instead (docs/API.md §8.1).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import bcrypt

HASH_NICENESS = 10
_executor: ThreadPoolExecutor | None = None
_executor_pid = 0
_executor_lock = threading.Lock()


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)
    except (OSError, AttributeError):  # not Linux: hashes run at the usual priority
        pass


def _hasher() -> ThreadPoolExecutor:
    """This process's hashing threads (made again after a fork: threads do not survive it)."""
    global _executor, _executor_pid
    with _executor_lock:
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bcrypt",
                                           initializer=_lower_priority)
            _executor_pid = os.getpid()
        return _executor


def hash_password(password: str, rounds: int) -> str:
    salt = bcrypt.gensalt(rounds)
    hashed = _hasher().submit(bcrypt.hashpw, password.encode("utf-8"), salt).result()
    return hashed.decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher().submit(
            bcrypt.checkpw, password.encode("utf-8"), password_hash.encode("ascii")
        ).result()
    except ValueError:  # a corrupt stored hash never matches
        return False


@cache
def dummy_hash(rounds: int) -> str:
    """A real hash at the configured cost, checked for unknown e-mails so that a login for an
    unknown address costs exactly as much as one with a wrong password."""
    return hash_password("not-a-password-of-anyone", rounds)
