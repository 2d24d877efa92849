"""Domain exceptions shared by every layer below ``rds_csi.csi``.

Domain code raises these; ``rds_csi.csi.status`` is the one place that turns them into gRPC status codes.
Nothing here knows gRPC.
"""

from __future__ import annotations

QUOTED_INPUT_LIMIT = 80
"""Most characters of a client's value any message quotes: enough to recognise it, never its whole size."""


class RdsCsiError(Exception):
    """Base class. ``retryable`` tells callers (and the CSI sidecars, via the status code) to try again."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def quote_input(value: object) -> str:
    """A client's value as error messages quote it: escaped (``repr``) and cut to a short prefix, with the length
    of what was cut, so that no message (and no status or log line made of it) echoes megabytes of input."""
    if isinstance(value, str):
        text = repr(value[:QUOTED_INPUT_LIMIT])  # never the whole of a huge value, not even as a copy
        if len(value) <= QUOTED_INPUT_LIMIT and len(text) <= QUOTED_INPUT_LIMIT + 2:  # the quotes are free
            return text
        return f"{text[: QUOTED_INPUT_LIMIT - 3]}...{text[0]} ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= QUOTED_INPUT_LIMIT else text[: QUOTED_INPUT_LIMIT - 3] + "..."


class InvalidArgument(RdsCsiError):
    """The request itself is wrong; retrying it unchanged cannot succeed."""


class NotFound(RdsCsiError):
    """The named object does not exist."""


class AlreadyExists(RdsCsiError):
    """An object of that name exists and is incompatible with the request."""


class ResourceExhausted(RdsCsiError):
    """No space (or another finite resource) left."""


class OutOfRange(RdsCsiError):
    """A size cannot be satisfied within the requested bounds."""


class FailedPrecondition(RdsCsiError):
    """The system is not in a state that allows the operation (for example: volume attached elsewhere)."""


class FormatRefused(FailedPrecondition):
    """A device was not formatted because it may hold data, or could not be proven blank.

    FAILED_PRECONDITION rather than INTERNAL: the driver did what it must, and it is the device's state that has to
    change (an operator wipes or inspects it, or a flaky probe starts answering). INTERNAL would read as a driver
    bug. The kubelet retries NodeStageVolume on either code, so a transient probe failure still gets retried.
    ``reason`` is a short fixed word (``signature``, ``ambivalent``, ``probe-failed``, ``timeout``, ``unreadable``)
    fit for a metric label.
    """

    def __init__(self, device: str, reason: str, detail: str) -> None:
        super().__init__(f"formatting {device} was refused to protect data: {detail}")
        self.device = device
        self.reason = reason


class MountConflict(FailedPrecondition):
    """A mount target already shows something other than what was asked: another device, another directory."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"{target} {detail}")
        self.target = target


class TargetBusy(FailedPrecondition):
    """A mount could not be unmounted (or a target removed) because it is still in use."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"{target} {detail}")
        self.target = target


class Aborted(RdsCsiError):
    """A conflicting operation is in progress; retry later."""

    retryable = True


class Unavailable(RdsCsiError):
    """A dependency (RouterOS, the API server) is unreachable, busy or timed out; retry later."""

    retryable = True


class DeadlineExceeded(RdsCsiError):
    """The operation did not finish within its deadline."""

    retryable = True


class Internal(RdsCsiError):
    """Anything else: a bug, or a backend answer we do not understand."""
