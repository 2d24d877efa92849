"""The one place that turns ``rds_csi.core.errors`` exceptions into gRPC status codes and messages.

A status message travels in the ``grpc-message`` trailer, percent-encoded, and a trailer block beyond gRPC's
metadata limit (8 KiB by default) is refused by the client as RESOURCE_EXHAUSTED "Stream removed" instead of the
real code. So every message is cut here to ``STATUS_MESSAGE_LIMIT`` bytes of UTF-8, whatever raised it (at most
three times that once encoded); messages quoting a client's input quote a short prefix anyway
(``errors.quote_input``).
"""

from __future__ import annotations

import grpc

from rds_csi.core import errors

STATUS_MESSAGE_LIMIT = 1024
_CUT = "..."

_CODES: dict[type[errors.RdsCsiError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Internal: grpc.StatusCode.INTERNAL,
}


def bounded_message(message: str, limit: int = STATUS_MESSAGE_LIMIT) -> str:
    """``message`` if it fits in ``limit`` bytes of UTF-8, else its longest prefix that does with ``...`` after."""
    encoded = message.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return message
    # Cutting bytes may split a character: the decoder drops the partial one.
    return encoded[: limit - len(_CUT)].decode("utf-8", "ignore") + _CUT


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and (bounded) message for any exception; unknown exception types are INTERNAL."""
    if isinstance(exc, errors.RdsCsiError):
        code = next((_CODES[cls] for cls in type(exc).__mro__ if cls in _CODES), grpc.StatusCode.INTERNAL)
        return code, bounded_message(exc.message)
    return grpc.StatusCode.INTERNAL, bounded_message(f"internal error: {type(exc).__name__}: {exc}")
