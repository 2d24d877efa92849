"""Kernel uevents, as they leave the kernel: a pyudev monitor on the kernel's netlink source.

The kernel source, not udev's: a node plugin's container (or a minimal host) may have no udev daemon to
re-broadcast events, and the resolver needs nothing udev adds. A monitor that cannot be opened (no netlink
access, no libudev) or that loses events only costs the resolver full scans; it never makes it wrong.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pyudev

from rds_csi.nvme.resolver import SUBSYSTEM_CLASS, Uevent
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

_POLL_SECONDS = 0.5  # how soon stop() is noticed


class KernelUevents:
    """Delivers kernel uevents of the given device classes to ``callback``, from a daemon thread."""

    def __init__(self, callback: Callable[[Uevent], None], subsystems: Iterable[str] = (SUBSYSTEM_CLASS,)) -> None:
        self._callback = callback
        self._subsystems = tuple(subsystems)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Open the monitor and start delivering; False (logged) when no monitor can be opened."""
        try:
            monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source="kernel")
            for subsystem in self._subsystems:
                monitor.filter_by(subsystem)
            monitor.start()  # events are queued from here on, before start() returns
        except (ImportError, OSError) as error:
            log_event(
                _log,
                "nvme.uevents_unavailable",
                logging.WARNING,
                error=str(error) or type(error).__name__,
                effect="every resolver miss scans sysfs",
            )
            return False
        self._thread = threading.Thread(target=self._run, args=(monitor,), name="rds-csi-nvme-uevents", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout: float = 5.0) -> bool:
        """End delivery; False if the thread is still alive after ``timeout``."""
        self._stopping.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self, monitor: Any) -> None:
        while not self._stopping.is_set():
            try:
                device = monitor.poll(timeout=_POLL_SECONDS)
            except OSError as error:  # ENOBUFS: the kernel dropped events; lookups rescan what they miss
                log_event(_log, "nvme.uevents_lost", logging.WARNING, error=str(error))
                continue
            if device is None:
                continue
            properties = device.properties
            event = Uevent(properties.get("ACTION", ""), properties.get("SUBSYSTEM", ""), device.sys_name)
            try:
                self._callback(event)
            except Exception as error:  # a failing consumer must not end delivery for the next events
                log_event(_log, "nvme.uevent_callback_failed", logging.WARNING, error=str(error), action=event.action)
