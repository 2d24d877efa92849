"""The deadline of the CSI call being served, visible to every layer below it without threading it through.

The gRPC interceptor sets it (the caller's deadline, capped by ``--rpc-timeout``, so that a call always answers
well before the sidecars' own timeout); the RouterOS client shortens each command's timeout to what is left.
Outside a CSI call (reconcilers, tools) there is no deadline and commands use their own timeouts.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rds_csi.core import errors

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("rds_csi_call_deadline", default=None)


@contextmanager
def call_deadline(seconds: float) -> Iterator[None]:
    """Run the block with a deadline ``seconds`` from now (monotonic)."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left(default: float) -> float:
    """Seconds an operation may take: ``default``, shortened to what is left of the call's deadline.

    Raises ``DeadlineExceeded`` once the deadline has passed, so no new command starts after it.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return default
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise errors.DeadlineExceeded("the call's deadline passed before the next RouterOS command could start")
    return min(default, remaining)
