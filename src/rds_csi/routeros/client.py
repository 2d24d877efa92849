"""The RouterOS client: typed, disk-level operations over any transport (SSH or REST), with metrics and logs.

Retries follow one rule: a command whose reply was lost (``CommandOutcomeUnknown``) is never blindly repeated
unless repeating it is harmless. ``/disk add`` re-reads the disk to learn whether it happened; ``set`` and
``remove [find ...]`` are idempotent and are repeated once.

``copy-from`` comes in two forms (:class:`CopyFromForm`) and public documentation does not say which one an RDS
takes. The client sends the configured one; when RouterOS clearly refuses it (not found, invalid), which means
nothing was created, it sends the other one once. The first form RouterOS accepts is the one this RDS takes: it is
logged, exported as ``rds_csi_routeros_copy_from_form{form}`` and used, without fallback, for the rest of the
process. A lost reply is never a refusal: it is settled by re-reading, as for any ``/disk add``.

The RouterOS release is read (:meth:`RouterOSClient.identify`) at start-up, whenever RouterOS answers again after
being unreachable, and by every health check (the same ``/system resource print``). It is exported as
``rds_csi_routeros_info{version,board}``; a release without the ``/disk`` properties the driver sets
(:mod:`.version`) is refused: every other command fails with that reason until a supported release answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from rds_csi.core import errors
from rds_csi.core.deadlines import time_left
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics
from rds_csi.routeros.commands import (
    Command,
    CopyFromForm,
    CopySource,
    DiskRef,
    build_disk_add,
    build_disk_backed_by,
    build_disk_export,
    build_disk_get,
    build_disk_get_with_nqn_holders,
    build_disk_list,
    build_disk_remove,
    build_disk_resize,
    build_disk_set_allowed_hosts,
    build_disk_traffic,
    build_file_find,
    build_file_get,
    build_file_list,
    build_file_remove,
    build_health,
    build_pool_capacity,
)
from rds_csi.routeros.models import Disk, DiskTraffic, FileEntry, PoolCapacity, SystemResource
from rds_csi.routeros.names import RouterPath
from rds_csi.routeros.parse import (
    disk_from_properties,
    file_from_properties,
    pool_capacity_from_records,
    system_resource_from_properties,
    traffic_from_properties,
)
from rds_csi.routeros.transport import CommandOutcomeUnknown, CredentialsRefused, Record, Transport
from rds_csi.routeros.version import UnsupportedRouterOS, check_supported

_log = logging.getLogger(__name__)

T = TypeVar("T")

# Bounded label values for rds_csi_routeros_commands_total{result}.
_RESULTS: tuple[tuple[type[errors.RdsCsiError], str], ...] = (
    (CommandOutcomeUnknown, "outcome_unknown"),
    (CredentialsRefused, "credentials_refused"),
    (errors.NotFound, "not_found"),
    (errors.AlreadyExists, "already_exists"),
    (errors.ResourceExhausted, "no_space"),
    (errors.Unavailable, "unavailable"),
    (errors.InvalidArgument, "invalid"),
)


def _result_label(exc: BaseException) -> str:
    return next((label for cls, label in _RESULTS if isinstance(exc, cls)), "error")


class RouterOSClient:
    def __init__(
        self,
        transport: Transport,
        *,
        command_timeout: float = 10.0,
        metrics: Metrics | None = None,
        copy_from_form: CopyFromForm = CopyFromForm.FILE,
    ) -> None:
        self.transport = transport
        self.command_timeout = command_timeout
        self._metrics = metrics
        self._unreachable = False
        self._recovery_listeners: list[Callable[[], None]] = []
        self._copy_lock = threading.Lock()
        self._copy_from_form = copy_from_form
        self._copy_from_settled = False  # True once RouterOS accepted a copy in _copy_from_form
        self._publish_copy_from_form()
        self._identity_lock = threading.Lock()
        self._identity: tuple[str, str | None] | None = None  # (version, board) last read
        self._refusal: UnsupportedRouterOS | None = None  # set while the RDS runs an unsupported release

    def on_recovery(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the command's thread) when RouterOS answers again after being unreachable."""
        self._recovery_listeners.append(listener)

    # ---- reads --------------------------------------------------------------------------------------------------

    def get_disk(self, slot: str) -> Disk | None:
        disks = [disk_from_properties(r) for r in self._execute("disk_get", build_disk_get(slot))]
        if len(disks) > 1:
            raise errors.Internal(f"RouterOS lists {len(disks)} disks with slot {slot!r}")
        return disks[0] if disks else None

    def get_disk_with_nqn_holders(self, slot: str) -> tuple[Disk | None, list[Disk]]:
        """In one read: the disk in ``slot`` and the other disks already using the NQN a volume in ``slot`` gets."""
        disks = [disk_from_properties(r) for r in self._execute("disk_get", build_disk_get_with_nqn_holders(slot))]
        in_slot = [d for d in disks if d.slot == slot]
        if len(in_slot) > 1:
            raise errors.Internal(f"RouterOS lists {len(in_slot)} disks with slot {slot!r}")
        return (in_slot[0] if in_slot else None), [d for d in disks if d.slot != slot]

    def list_disks(self, slot_prefix: str = "") -> list[Disk]:
        return [disk_from_properties(r) for r in self._execute("disk_list", build_disk_list(slot_prefix))]

    def get_file(self, path: RouterPath) -> FileEntry | None:
        files = [file_from_properties(r) for r in self._execute("file_get", build_file_get(path))]
        if len(files) > 1:
            raise errors.Internal(f"RouterOS lists {len(files)} files named {path.file_name!r}")
        return files[0] if files else None

    def find_files(self, directory: RouterPath, file_name: str) -> list[FileEntry]:
        """Every file called ``file_name`` in ``directory`` or below it."""
        return [file_from_properties(r) for r in self._execute("file_find", build_file_find(directory, file_name))]

    def disks_backed_by(self, paths: Iterable[RouterPath]) -> list[Disk]:
        """The disks whose backing file is one of ``paths`` (none asked: none, without a command)."""
        wanted = list(paths)
        if not wanted:
            return []
        return [disk_from_properties(r) for r in self._execute("disk_find", build_disk_backed_by(wanted))]

    def list_files(self, directory: RouterPath) -> list[FileEntry]:
        return [file_from_properties(r) for r in self._execute("file_list", build_file_list(directory))]

    def pool_capacity(self, mount_point: str) -> PoolCapacity:
        records = self._execute("pool_capacity", build_pool_capacity(mount_point))
        return pool_capacity_from_records(records, mount_point)

    def disk_traffic(self, slot: str) -> DiskTraffic:
        records = self._execute("disk_traffic", build_disk_traffic(slot))
        if len(records) != 1:
            raise errors.Internal(f"RouterOS monitor-traffic answered {len(records)} samples for {slot!r}")
        return traffic_from_properties(records[0])

    def system_resource(self, timeout: float | None = None) -> SystemResource:
        records = self._execute("system_resource", build_health(), timeout)
        if len(records) != 1:
            raise errors.Internal(f"RouterOS /system resource answered {len(records)} records")
        return system_resource_from_properties(records[0])

    def identify(self, timeout: float | None = None, *, announce: bool = True) -> SystemResource:
        """Read the RouterOS release and board: exported as ``rds_csi_routeros_info``, logged when ``announce`` or
        when it changed, and checked. An unsupported release raises :class:`UnsupportedRouterOS`, and every other
        command is refused with the same reason until a supported release answers."""
        resource = self.system_resource(timeout)
        try:
            check_supported(resource)
            refusal = None
        except UnsupportedRouterOS as exc:
            refusal = exc
        identity = (resource.version, resource.board_name)
        with self._identity_lock:
            changed, self._identity, self._refusal = identity != self._identity, identity, refusal
        if changed and self._metrics is not None:
            self._metrics.routeros_info.clear()
            self._metrics.routeros_info.labels(resource.version, resource.board_name or "unknown").set(1)
        if changed or announce:
            log_event(
                _log, "routeros.identified", logging.INFO if refusal is None else logging.ERROR,
                version=resource.version, board=resource.board_name or "unknown", transport=self.transport.name,
                supported=refusal is None,
            )  # fmt: skip
        if refusal is not None:
            raise refusal
        return resource

    def check(self, timeout: float = 5.0) -> None:
        """Health check for Probe and /healthz: one cheap command end to end, which also re-reads the release."""
        self.identify(timeout, announce=False)

    # ---- writes -------------------------------------------------------------------------------------------------

    @property
    def copy_from_form(self) -> CopyFromForm:
        """The ``copy-from`` form the next copy is sent in."""
        with self._copy_lock:
            return self._copy_from_form

    def create_disk(
        self,
        *,
        slot: str,
        file_path: RouterPath,
        size_bytes: int | None,
        port: int | None,
        copy_from: CopySource | None = None,
        export: bool = True,
        marker_nqn: str | None = None,
    ) -> Disk:
        """Add a file-backed disk of ``size_bytes`` (or, with ``copy_from``, a copy-on-write copy of that disk, at
        its size) and return it as RouterOS lists it."""

        def add(source: RouterPath | DiskRef | None) -> Disk:
            command = build_disk_add(
                slot=slot,
                file_path=file_path,
                size_bytes=size_bytes,
                port=port,
                copy_from=source,
                export=export,
                marker_nqn=marker_nqn,
            )
            return self._add(slot, command)

        if copy_from is None:
            return add(None)
        with self._copy_lock:
            form, settled = self._copy_from_form, self._copy_from_settled
        try:
            disk = add(copy_from.argument(form))
        except (errors.NotFound, errors.InvalidArgument) as refused:
            if settled:
                raise  # this RDS takes this form: the refusal is about the copy, not the form
            other = form.other
            log_event(
                _log, "routeros.copy_from_refused", logging.WARNING, slot=slot, form=form.value, trying=other.value,
                error=refused.message,
            )  # fmt: skip
            try:
                disk = add(copy_from.argument(other))
            except (errors.NotFound, errors.InvalidArgument) as also:
                raise type(refused)(
                    f"{refused.message} (copy-from as a {form.value}); as a {other.value} too: {also.message}"
                ) from also
            form = other
        self._settle_copy_from_form(form)
        return disk

    def _add(self, slot: str, command: Command) -> Disk:
        try:
            self._execute("disk_add", command)
        except CommandOutcomeUnknown as lost:
            # Never repeat an add blindly: look whether it happened.
            if self.get_disk(slot) is None:
                raise errors.Unavailable(
                    f"the reply to /disk add for {slot!r} was lost and the disk does not exist; safe to retry"
                ) from lost
            log_event(_log, "routeros.add_confirmed_after_lost_reply", slot=slot)
        disk = self.get_disk(slot)
        if disk is None:
            raise errors.Internal(f"RouterOS accepted /disk add for {slot!r} but does not list the disk")
        return disk

    def resize_disk(self, slot: str, size_bytes: int) -> Disk:
        """Grow the backing file; returns the disk as listed afterwards, which proves it is at least that large."""
        self._idempotent("disk_resize", build_disk_resize(slot, size_bytes))
        disk = self.get_disk(slot)
        if disk is None:
            raise errors.NotFound(f"disk {slot!r} vanished while being resized")
        if disk.capacity_bytes < size_bytes:
            raise errors.Internal(
                f"RouterOS accepted growing disk {slot!r} to {size_bytes} bytes, "
                f"but lists it with {disk.capacity_bytes} bytes"
            )
        return disk

    def export_disk(self, slot: str, port: int) -> Disk:
        """Export an unexported disk under the slot's own NQN; returns it as listed afterwards, proven exported."""
        command = build_disk_export(slot, port)
        self._idempotent("disk_export", command)
        disk = self.get_disk(slot)
        if disk is None:
            raise errors.NotFound(f"disk {slot!r} vanished while being exported")
        if not disk.nvme_export or disk.nqn != command.arg("nvme-tcp-server-nqn"):
            raise errors.Internal(f"RouterOS accepted exporting disk {slot!r} but lists it unexported or as {disk.nqn}")
        return disk

    def set_allowed_hosts(self, slot: str, host_nqns: Iterable[str]) -> None:
        self._idempotent("disk_set_allowed_hosts", build_disk_set_allowed_hosts(slot, host_nqns))

    def remove_disk(self, slot: str) -> None:
        """Remove the disk entry; a no-op when it does not exist."""
        self._idempotent("disk_remove", build_disk_remove(slot))

    def remove_file(self, path: RouterPath) -> None:
        """Remove a file under the base path; a no-op when it does not exist."""
        self._idempotent("file_remove", build_file_remove(path))

    # ---- plumbing -----------------------------------------------------------------------------------------------

    def _settle_copy_from_form(self, form: CopyFromForm) -> None:
        """RouterOS made a copy with ``form``: it is the one this RDS takes, for the life of the process."""
        with self._copy_lock:
            if self._copy_from_settled:
                return
            configured = self._copy_from_form
            self._copy_from_form, self._copy_from_settled = form, True
        level = logging.INFO if form is configured else logging.WARNING
        log_event(_log, "routeros.copy_from_form", level, form=form.value, configured=configured.value)
        self._publish_copy_from_form()

    def _publish_copy_from_form(self) -> None:
        if self._metrics is not None:
            current = self.copy_from_form
            for form in CopyFromForm:
                self._metrics.routeros_copy_from_form.labels(form.value).set(1 if form is current else 0)

    def _idempotent(self, op: str, command: Command) -> list[Record]:
        try:
            return self._execute(op, command)
        except CommandOutcomeUnknown:
            log_event(_log, "routeros.retry_after_lost_reply", logging.WARNING, op=op)
            return self._execute(op, command)

    def _execute(self, op: str, command: Command, timeout: float | None = None) -> list[Record]:
        refusal = self._refusal
        if refusal is not None and op != "system_resource":
            raise UnsupportedRouterOS(refusal.message)
        budget = time_left(timeout or self.command_timeout)
        return self._observe(op, lambda: self.transport.execute(command, budget))

    def _observe(self, op: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = "ok"
        try:
            value = call()
        except Exception as exc:
            result = _result_label(exc)
            if isinstance(exc, errors.Unavailable):
                self._unreachable = True
            raise
        finally:
            took = time.perf_counter() - started
            if self._metrics is not None:
                self._metrics.routeros_commands.labels(op, result).inc()
                self._metrics.routeros_command_duration.labels(op).observe(took)
            # Refused credentials do not fix themselves: the operator must act, so they are an error, not a blip.
            level = {"ok": logging.DEBUG, "credentials_refused": logging.ERROR}.get(result, logging.WARNING)
            log_event(
                _log, "routeros.command", level, op=op, result=result, transport=self.transport.name,
                took_ms=round(took * 1000, 2),
            )  # fmt: skip
        if self._unreachable:
            self._unreachable = False
            self._notify_recovery()
        return value

    def _notify_recovery(self) -> None:
        log_event(_log, "routeros.reachable_again", transport=self.transport.name)
        try:
            self.identify()  # after an outage the RDS may run another release (an upgrade reboots it)
        except errors.RdsCsiError as exc:
            log_event(_log, "routeros.identify_failed", logging.WARNING, error=exc.message)
        for listener in self._recovery_listeners:
            try:
                listener()
            except Exception as exc:  # a listener's failure must not fail the command that succeeded
                log_event(_log, "routeros.recovery_listener_failed", logging.WARNING, error=repr(exc))
