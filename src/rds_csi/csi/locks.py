"""Per-object serialization: a second concurrent operation on the same volume (or snapshot) is ABORTED at once.

The CSI sidecars retry ABORTED with backoff, so refusing is safe and keeps a slow backend call from piling up
threads behind one lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from rds_csi.core import errors

Method = TypeVar("Method", bound=Callable[..., Any])


class KeyedLocks:
    """A set of busy keys. ``hold(key)`` either takes the key or raises ``Aborted`` naming the operation holding it."""

    def __init__(self) -> None:
        self._busy: dict[str, str] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: str, operation: str) -> Iterator[None]:
        with self._guard:
            holder = self._busy.get(key)
            if holder is not None:
                raise errors.Aborted(
                    f"an operation ({holder}) is already in progress for {errors.quote_input(key)}; retry later"
                )
            self._busy[key] = operation
        try:
            yield
        finally:
            with self._guard:
                del self._busy[key]

    def busy_keys(self) -> list[str]:
        with self._guard:
            return sorted(self._busy)


class LockedServicer:
    """Base for servicers whose methods take per-object locks through ``csi_method``."""

    def __init__(self) -> None:
        self.locks = KeyedLocks()


def csi_method(lock_on: str | None = None) -> Callable[[Method], Method]:
    """Serialize a servicer method ``(self, request, context)`` on the request field ``lock_on``.

    An empty field is not locked: validation inside the method rejects it with INVALID_ARGUMENT. Exceptions are
    left to the server interceptor, which maps them to status codes in one place.
    """

    def decorate(method: Method) -> Method:
        if lock_on is None:
            return method

        @functools.wraps(method)
        def wrapper(self: LockedServicer, request: Any, context: Any) -> Any:
            key = str(getattr(request, lock_on, "") or "")
            if not key:
                return method(self, request, context)
            with self.locks.hold(key, method.__name__):
                return method(self, request, context)

        return cast(Method, wrapper)

    return decorate
