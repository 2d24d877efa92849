"""List-then-watch loops that keep the controller's view of VolumeAttachments and Nodes current.

Each loop lists, hands the differences to its callback, then watches from the list's resourceVersion. A stream
that ends is re-opened from the last version seen; a 410 Gone means that version is too old, so the loop lists
again and reports what changed meanwhile (including deletions it never saw). Errors are retried with capped
exponential backoff, timed by the injected clock so tests can drive it in virtual time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from rds_csi.core.clock import Clock
from rds_csi.core.errors import RdsCsiError
from rds_csi.kube.api import DEFAULT_WATCH_TIMEOUT, KubeApi, VolumeAttachmentRecord, WatchExpired, WatchStream
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

T = TypeVar("T")

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(frozen=True, slots=True)
class WatchTuning:
    """Retry backoff (doubling from ``initial_backoff`` up to ``max_backoff``) and the server-side watch length."""

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    watch_timeout: int = DEFAULT_WATCH_TIMEOUT


DEFAULT_TUNING = WatchTuning()


class _ListWatch(Generic[T]):
    """The shared engine: a daemon thread that lists, watches and reports changes keyed by ``key(item)``."""

    def __init__(
        self,
        name: str,
        *,
        list_items: Callable[[], tuple[list[T], str]],
        open_watch: Callable[[str, int], WatchStream[T]],
        key: Callable[[T], str],
        emit: Callable[[str, T], None],
        clock: Clock,
        tuning: WatchTuning,
        accept: Callable[[T], bool] = lambda _item: True,
    ) -> None:
        self._name = name
        self._list_items = list_items
        self._open_watch = open_watch
        self._key = key
        self._emit = emit
        self._accept = accept
        self._clock = clock
        self._tuning = tuning
        self._known: dict[str, T] = {}
        self._version: str | None = None  # where the next watch starts
        self._delivered: str | None = None  # every change up to this resourceVersion went to the callback
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream: WatchStream[T] | None = None
        self._thread = threading.Thread(target=self._run, name=f"rds-csi-{name}", daemon=True)
        self._resyncs = 0
        self._failures = 0
        self.synced = threading.Event()

    @property
    def resync_count(self) -> int:
        """Lists after the first one: each is a recovery from an expired resourceVersion."""
        with self._lock:
            return self._resyncs

    @property
    def failure_count(self) -> int:
        """List or watch attempts that failed (each followed by a backoff and a retry)."""
        with self._lock:
            return self._failures

    @property
    def delivered_version(self) -> str | None:
        """The resourceVersion (of a list or an event) up to which every change was handed to the callback."""
        with self._lock:
            return self._delivered

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop and join its thread (bounded by ``timeout``)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive():
            # Closing again covers a stream that was being opened when the first close ran.
            with self._lock:
                stream = self._stream
            if stream is not None:
                stream.close()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._thread.join(min(0.1, remaining))

    def _run(self) -> None:
        consecutive = 0
        while not self._stopping.is_set():
            try:
                self._watch_from(self._version or self._relist())
                consecutive = 0
            except WatchExpired:
                log_event(_log, "kube.watch.expired", logging.INFO, watch=self._name, resource_version=self._version)
                self._version = None
            except Exception as error:
                # Anything else is a bug or an answer we do not understand: retrying slowly beats a dead watcher.
                consecutive += 1
                with self._lock:
                    self._failures += 1
                delay = min(self._tuning.max_backoff, self._tuning.initial_backoff * 2 ** (consecutive - 1))
                log_event(
                    _log, "kube.watch.retry", logging.WARNING, watch=self._name, error=_describe(error), backoff_s=delay
                )
                self._clock.wait(self._stopping, delay)

    def _relist(self) -> str:
        items, version = self._list_items()
        fresh = {self._key(item): item for item in items if self._accept(item)}
        for name, item in fresh.items():
            old = self._known.get(name)
            if old is None:
                self._deliver(ADDED, item)
            elif old != item:
                self._deliver(MODIFIED, item)
        for name, item in self._known.items():
            if name not in fresh:
                self._deliver(DELETED, item)
        self._known = fresh
        if self.synced.is_set():
            with self._lock:
                self._resyncs += 1
        self.synced.set()
        self._version = version
        with self._lock:
            self._delivered = version
        return version

    def _watch_from(self, version: str) -> None:
        stream = self._open_watch(version, self._tuning.watch_timeout)
        with self._lock:
            self._stream = stream
        try:
            if self._stopping.is_set():
                return
            for event in stream:
                if event.resource_version is not None:
                    self._version = event.resource_version
                if event.item is not None:
                    self._apply(event.type, event.item)
                if event.resource_version is not None:
                    with self._lock:
                        self._delivered = event.resource_version
        finally:
            with self._lock:
                self._stream = None

    def _apply(self, kind: str, item: T) -> None:
        if not self._accept(item):
            return
        name = self._key(item)
        if kind == DELETED:
            if self._known.pop(name, None) is not None:
                self._deliver(DELETED, item)
            return
        old = self._known.get(name)
        self._known[name] = item
        if old is None:
            self._deliver(ADDED, item)
        elif old != item:
            self._deliver(MODIFIED, item)

    def _deliver(self, kind: str, item: T) -> None:
        try:
            self._emit(kind, item)
        except Exception:
            # A failing consumer must not stop the stream, or every later change would be lost with it.
            _log.exception("kube.watch.callback_failed watch=%s type=%s", self._name, kind)


class VolumeAttachmentWatcher(_ListWatch[VolumeAttachmentRecord]):
    """Calls ``on_event(type, record)`` for every change to the VolumeAttachments of ``attacher``.

    The first list reports every existing attachment as ADDED; ``synced`` is set once that is done.
    """

    def __init__(
        self,
        api: KubeApi,
        attacher: str,
        on_event: Callable[[str, VolumeAttachmentRecord], None],
        clock: Clock,
        tuning: WatchTuning = DEFAULT_TUNING,
    ) -> None:
        super().__init__(
            "volumeattachments",
            list_items=lambda: api.list_volume_attachments(attacher),
            open_watch=api.watch_volume_attachments,
            key=lambda record: record.name,
            emit=on_event,
            clock=clock,
            accept=lambda record: record.attacher == attacher,
            tuning=tuning,
        )


class NodeWatcher(_ListWatch[str]):
    """Calls ``on_deleted(node_name)`` when a Node object disappears (seen in the watch or on a re-list)."""

    def __init__(
        self,
        api: KubeApi,
        on_deleted: Callable[[str], None],
        clock: Clock,
        tuning: WatchTuning = DEFAULT_TUNING,
    ) -> None:
        def emit(kind: str, name: str) -> None:
            if kind == DELETED:
                on_deleted(name)

        super().__init__(
            "nodes",
            list_items=api.list_nodes,
            open_watch=api.watch_nodes,
            key=lambda name: name,
            emit=emit,
            clock=clock,
            tuning=tuning,
        )


def _describe(error: Exception) -> str:
    return error.message if isinstance(error, RdsCsiError) else repr(error)
