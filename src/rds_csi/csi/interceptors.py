"""One server interceptor for every CSI call: request id, structured log line, metrics, and error mapping.

Servicers raise ``rds_csi.core.errors`` exceptions; this is where they become gRPC statuses (via ``status_for``), so no
method can forget to map one.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from rds_csi.core.deadlines import call_deadline
from rds_csi.csi.status import status_for
from rds_csi.observability.logging import REQUEST_ID, log_event
from rds_csi.observability.metrics import Metrics

_log = logging.getLogger(__name__)

REQUEST_ID_METADATA_KEY = "x-request-id"
# Polled every few seconds by the liveness probe and sidecars: logged at debug level when they succeed.
_CHATTY_METHODS = frozenset({"Probe", "GetPluginInfo", "GetPluginCapabilities", "NodeGetCapabilities"})


def _incoming_request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_METADATA_KEY and isinstance(value, str) and 0 < len(value) <= 64:
            return value
    return uuid.uuid4().hex[:16]


if TYPE_CHECKING:
    _ServerInterceptor = grpc.ServerInterceptor[Any, Any]  # generic only in the type stubs
else:
    _ServerInterceptor = grpc.ServerInterceptor


class CsiCallInterceptor(_ServerInterceptor):
    def __init__(self, metrics: Metrics, rpc_timeout: float) -> None:
        self._metrics = metrics
        self._rpc_timeout = rpc_timeout

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # CSI has only unary calls; leave anything else untouched
        method = str(handler_call_details.method).rsplit("/", 1)[-1]
        behaviour = handler.unary_unary
        return grpc.unary_unary_rpc_method_handler(
            self._observed(method, behaviour),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _observed(self, method: str, behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        metrics = self._metrics
        rpc_timeout = self._rpc_timeout

        def call(request: Any, context: grpc.ServicerContext) -> Any:
            token = REQUEST_ID.set(_incoming_request_id(context))
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            message = ""
            metrics.csi_inflight.inc()
            # Answer half a second before the caller gives up, so it hears why instead of timing out.
            budget = min(rpc_timeout, max(0.0, context.time_remaining() - 0.5))
            try:
                with call_deadline(budget):
                    response = behaviour(request, context)
                code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
                return response
            except Exception as exc:
                set_code = context.code()  # type: ignore[attr-defined]
                if set_code is not None and set_code != grpc.StatusCode.OK:
                    code = set_code  # the servicer aborted on purpose
                    raise
                code, message = status_for(exc)
                if code == grpc.StatusCode.INTERNAL:
                    log_event(_log, "csi.unexpected_error", logging.ERROR, method=method, error=repr(exc))
                context.abort(code, message)
                raise  # unreachable: abort raises
            finally:
                took = time.perf_counter() - started
                metrics.csi_inflight.dec()
                metrics.csi_operations.labels(method, code.name).inc()
                metrics.csi_operation_duration.labels(method).observe(took)
                if code != grpc.StatusCode.OK:
                    level = logging.WARNING
                else:
                    level = logging.DEBUG if method in _CHATTY_METHODS else logging.INFO
                fields: dict[str, Any] = {
                    "method": method,
                    "code": code.name,
                    "took_ms": round(took * 1000, 2),
                }
                if message:
                    fields["message"] = message
                log_event(_log, "csi.call", level, **fields)
                REQUEST_ID.reset(token)

        return call
