"""The node use cases: stage, publish, unpublish, unstage, stats and expansion of one volume on this node.

Every step reads the kernel's state first (mountinfo, the NVMe subsystem, the staging record) and does only what
is missing, so a retry after a timeout, a crash or a plugin restart continues from where the node is:

- **stage** writes the record, connects (a connect still coming up is waited for, never repeated or torn down),
  waits within the call's deadline for the namespace and a non-zero size (else DEADLINE_EXCEEDED, retryable),
  and for a filesystem formats only a positively blank device, then mounts it. Block volumes stop after the
  device is there.
- **publish** bind-mounts the staged filesystem (or the device node, for block) at the target, read-only when
  asked; the same source already there is success, another one is an error (a block target whose device was
  renumbered under it is rebound).
- **unpublish / unstage** unmount until mountinfo proves nothing is mounted, and only then remove what they
  created (never recursively). Unstage refuses while anything else still holds the device, then disconnects
  (managed NQNs only) and removes the record and the staging directory.
- **stats** and **expand** find the volume from what is mounted at the path.

The file-system work is ``rds_csi.mount``'s; this module decides what to ask of it and of the ``Connector``.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rds_csi import mount
from rds_csi.core import errors
from rds_csi.core.clock import Clock, SystemClock
from rds_csi.core.deadlines import time_left
from rds_csi.mount import DeviceNumber, FsType, HostPaths, MountEntry, MountTable, VolumeCondition
from rds_csi.mount.runner import CommandRunner
from rds_csi.node.connector import BlockDevice, Connector, Subsystem
from rds_csi.node.records import StagedAccess, StagedRecord, read_record, remove_record, write_record
from rds_csi.node.requests import (
    BlockAccess,
    ExpandVolume,
    MountAccess,
    PublishVolume,
    StageVolume,
    UnpublishVolume,
    UnstageVolume,
    VolumeStats,
    VolumeStatsQuery,
)
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics

_log = logging.getLogger(__name__)

T = TypeVar("T")

# Outside a CSI call (no deadline), how long a device may take to appear or grow.
DEVICE_WAIT_SECONDS = 60.0
# Of a call's budget, what is kept for format and mount once the device is there.
MOUNT_RESERVE_SECONDS = 2.0
POLL_INTERVAL_SECONDS = 0.1


def _result(exc: BaseException | None) -> str:
    """A bounded metric label: ``ok``, or the kind of error as its status code would say it (``failed_precondition``,
    ``deadline_exceeded``...; a ``FormatRefused`` counts as the ``failed_precondition`` it is answered with)."""
    if exc is None:
        return "ok"
    if isinstance(exc, errors.RdsCsiError):
        kind = next(cls for cls in type(exc).__mro__ if errors.RdsCsiError in cls.__bases__)
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in kind.__name__).lstrip("_")
    return "internal"


class NodeVolumes:
    def __init__(
        self,
        connector: Connector,
        metrics: Metrics,
        clock: Clock | None = None,
        *,
        paths: HostPaths = mount.HOST,
        runner: CommandRunner | None = None,
        device_wait: float = DEVICE_WAIT_SECONDS,
        poll_interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        """``paths`` and ``runner`` reach the host's mount table and tools (``rds_csi.mount``); ``clock`` paces
        the waits for a device."""
        self._connector = connector
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._paths = paths
        self._runner = runner
        self._device_wait = device_wait
        self._poll_interval = poll_interval

    # ---- stage ------------------------------------------------------------------------------------------------

    def stage(self, request: StageVolume) -> None:
        self._measured("stage", lambda: self._stage(request))

    def _stage(self, request: StageVolume) -> None:
        access = request.access
        record = StagedRecord(
            request.volume_id, request.target.nqn, access if isinstance(access, MountAccess) else None
        )
        staging = request.staging_path
        if self._check_staging_record(staging, record):
            write_record(staging, record)  # before the connect: whatever happens next, unstage knows what to undo
        self._connect(request)
        device = self._wait_for_device(request.target.nqn, minimum_bytes=1)
        if isinstance(access, BlockAccess):
            log_event(_log, "node.staged", volume_id=request.volume_id, device=str(device.path), access="block")
            return
        mounted = self._paths.mount_table().at(mount.canonical_path(staging))
        if mounted is not None:
            self._check_staged_mount(request.volume_id, staging, mounted, device, access)
            return
        formatted = self._ensure_filesystem(device.path, access.fs_type)
        mount.mount_filesystem(device.path, staging, access.fs_type, access.options, paths=self._paths)
        log_event(
            _log,
            "node.staged",
            volume_id=request.volume_id,
            device=str(device.path),
            fs_type=access.fs_type.value,
            formatted=formatted,
        )

    def _check_staging_record(self, staging: Path, wanted: StagedRecord) -> bool:
        """Whether the record must be (re)written; refuses a staging path that holds another volume, or this one
        staged another way."""
        existing = read_record(staging)
        if existing == wanted:
            return False
        if existing is None:
            return True
        if existing.volume_id != wanted.volume_id or existing.nqn != wanted.nqn:
            raise errors.FailedPrecondition(
                f"staging path {staging} already holds volume {existing.volume_id!r} ({existing.nqn}); unstage it first"
            )
        if existing.access != wanted.access:
            raise errors.AlreadyExists(
                f"volume {wanted.volume_id!r} is staged at {staging} as a {existing.access.value} volume, "
                f"not as a {wanted.access.value} volume"
            )
        # Same volume mounted another way: fine while nothing is mounted yet (a stage that was refused before).
        if self._paths.mount_table().at(mount.canonical_path(staging)) is not None:
            raise errors.AlreadyExists(
                f"volume {wanted.volume_id!r} is already staged at {staging} with other filesystem options"
            )
        return True

    def _check_staged_mount(
        self, volume_id: str, staging: Path, mounted: MountEntry, device: BlockDevice, access: MountAccess
    ) -> None:
        if mounted.device != device.number or mounted.root != "/":
            raise errors.FailedPrecondition(
                f"staging path {staging} has {mounted.source} ({mounted.device}) mounted, but volume "
                f"{volume_id!r} is {device.path} ({device.number}) now; unstage it first"
            )
        if mounted.fs_type != access.fs_type.value:
            raise errors.AlreadyExists(
                f"volume {volume_id!r} is staged at {staging} with {mounted.fs_type}, not {access.fs_type.value}"
            )

    def _ensure_filesystem(self, device: Path, fs_type: FsType) -> bool:
        try:
            outcome = mount.ensure_filesystem(device, fs_type, runner=self._runner)
        except errors.FormatRefused as refused:
            self._metrics.node_formats_refused.labels(refused.reason).inc()
            raise
        formatted = outcome is mount.FormatOutcome.FORMATTED
        if formatted:
            self._metrics.node_formats.labels(fs_type.value).inc()
        return formatted

    def _connect(self, request: StageVolume) -> None:
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            self._connector.connect(request.target)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._metrics.nvme_connect_duration.labels(_result(failure)).observe(time.perf_counter() - started)

    def _wait_for_device(self, nqn: str, minimum_bytes: int) -> BlockDevice:
        """The namespace's device once it is there with at least ``minimum_bytes``, polled within the call's
        deadline (minus what mounting needs). Past it: DEADLINE_EXCEEDED, and the connect is left to come up."""
        budget = max(0.0, time_left(self._device_wait) - MOUNT_RESERVE_SECONDS)
        deadline = self._clock.now() + budget
        while True:
            subsystem = self._connector.subsystem(nqn)
            device = subsystem.device if subsystem is not None else None
            if device is not None and device.size_bytes >= minimum_bytes:
                return device
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                raise errors.DeadlineExceeded(
                    f"{nqn}: {_not_ready(subsystem, minimum_bytes)} after {budget:.1f}s; "
                    "the connection is kept and a retry continues from where the kernel is"
                )
            self._clock.sleep(min(self._poll_interval, remaining))

    # ---- publish ----------------------------------------------------------------------------------------------

    def publish(self, request: PublishVolume) -> None:
        self._measured("publish", lambda: self._publish(request))

    def _publish(self, request: PublishVolume) -> None:
        record = read_record(request.staging_path)
        if record is None or record.volume_id != request.volume_id:
            raise errors.FailedPrecondition(
                f"volume {request.volume_id!r} is not staged at {request.staging_path}; stage it first"
            )
        wanted = StagedAccess.BLOCK if isinstance(request.access, BlockAccess) else StagedAccess.MOUNT
        if record.access != wanted:
            raise errors.FailedPrecondition(
                f"volume {request.volume_id!r} is staged as a {record.access.value} volume; it cannot be published "
                f"as a {wanted.value} volume"
            )
        if isinstance(request.access, MountAccess):
            mount.bind_mount(
                request.staging_path,
                request.target_path,
                readonly=request.readonly,
                options=request.access.options,
                paths=self._paths,
            )
        else:
            self._publish_block(request, record)
        log_event(
            _log,
            "node.published",
            volume_id=request.volume_id,
            target=str(request.target_path),
            readonly=request.readonly,
        )

    def _publish_block(self, request: PublishVolume, record: StagedRecord) -> None:
        """The device node at the target. Read-only is the container runtime's to enforce (the kubelet grants a
        read-only block volume's device without write permission): the kernel lets a device node be opened for
        writing through a read-only mount, so a read-only bind would promise nothing."""
        subsystem = self._connector.subsystem(record.nqn)
        if subsystem is None or subsystem.device is None:
            raise errors.Unavailable(
                f"volume {request.volume_id!r}: {_not_ready(subsystem, 1)}; it is published once it is back"
            )
        device = subsystem.device
        target = request.target_path
        if self._paths.mount_table().at(mount.canonical_path(target)) is not None:
            held = _device_number_of(target)
            if held is not None and held != device.number:
                # The namespace was renumbered (a reconnect made nvme0n1 nvme3n1): the old node is dead or, worse,
                # another device now. Replace the bind; unmounting a device node's bind never touches data.
                log_event(
                    _log,
                    "node.block_target_rebound",
                    logging.WARNING,
                    volume_id=request.volume_id,
                    target=str(target),
                    held=str(held),
                    device=str(device.path),
                )
                mount.unmount(target, paths=self._paths)
        mount.bind_block_device(device.path, target, paths=self._paths)

    # ---- unpublish --------------------------------------------------------------------------------------------

    def unpublish(self, request: UnpublishVolume) -> None:
        self._measured("unpublish", lambda: self._unpublish(request))

    def _unpublish(self, request: UnpublishVolume) -> None:
        unmounted = mount.unmount(request.target_path, paths=self._paths)
        mount.remove_target(request.target_path, paths=self._paths)
        if unmounted:
            log_event(_log, "node.unpublished", volume_id=request.volume_id, target=str(request.target_path))

    # ---- unstage ----------------------------------------------------------------------------------------------

    def unstage(self, request: UnstageVolume) -> None:
        self._measured("unstage", lambda: self._unstage(request))

    def _unstage(self, request: UnstageVolume) -> None:
        staging = request.staging_path
        record = read_record(staging)
        if record is not None and record.volume_id != request.volume_id:
            raise errors.FailedPrecondition(
                f"staging path {staging} holds volume {record.volume_id!r}, not {request.volume_id!r}"
            )
        nqn = record.nqn if record is not None else None
        table = self._paths.mount_table()
        where = mount.canonical_path(staging)
        mounted = table.at(where)
        if mounted is not None:
            others = [e.mount_point for e in table.from_device(mounted.device) if e.mount_point != where]
            if others:
                raise errors.FailedPrecondition(
                    f"volume {request.volume_id!r} is still mounted at {', '.join(sorted(others))}; "
                    "unpublish it there first"
                )
            if nqn is None:  # staged without a record (by an older plugin): the mounted device names it
                nqn = self._connector.owner_of(mounted.device)
            mount.unmount(staging, paths=self._paths)
        if nqn is not None:
            subsystem = self._connector.subsystem(nqn)
            if subsystem is not None:
                if subsystem.device is not None:
                    self._check_not_held(request.volume_id, subsystem.device)
                self._connector.disconnect(nqn)
        remove_record(staging)
        try:
            mount.remove_target(staging, paths=self._paths)
        except errors.TargetBusy as kept:
            # The CO owns the staging directory; the volume is gone from this node, which is what unstage means.
            log_event(_log, "node.staging_dir_kept", logging.WARNING, volume_id=request.volume_id, reason=kept.message)
        log_event(_log, "node.unstaged", volume_id=request.volume_id, staging=str(staging), nqn=nqn or "-")

    def _check_not_held(self, volume_id: str, device: BlockDevice) -> None:
        """FAILED_PRECONDITION while the device is mounted anywhere or its node is bound somewhere (a block
        publish: a bind holds nothing open, so only the mount table shows it). Holders the kernel counts (a
        mount elsewhere, dm/md, an exclusive opener) also stop the disconnect itself, at its exclusive open."""
        users = device_users(self._paths.mount_table(), device)
        if users:
            raise errors.FailedPrecondition(
                f"volume {volume_id!r} ({device.path}) is still in use at {', '.join(users)}; unpublish it there first"
            )

    # ---- stats ------------------------------------------------------------------------------------------------

    def stats(self, query: VolumeStatsQuery) -> VolumeStats:
        mounted, held = self._volume_at(query.volume_id, query.volume_path)
        nqn = self._nqn_of(query.volume_id, query.staging_path, mounted, held)
        subsystem = self._connector.subsystem(nqn) if nqn is not None else None
        current = subsystem.device if subsystem is not None else None
        expected = current.number if current is not None else None
        if held is not None:  # a block volume: its size is all there is to report (0 when it is not its device)
            condition = mount.block_condition(query.volume_path, expected_device=expected, paths=self._paths)
            size = current.size_bytes if current is not None and current.number == held else 0
            return VolumeStats(size, None, None, None, None, None, _with_nvme(condition, nqn, subsystem))
        # A read-only bind of a writable file system is a read-only publish, asked for.
        readonly_bind = mounted.read_only and not mounted.filesystem_read_only
        condition = mount.filesystem_condition(
            query.volume_path, expected_device=expected, readonly_expected=readonly_bind, paths=self._paths
        )
        usage = mount.filesystem_usage(query.volume_path)
        return VolumeStats(
            total_bytes=usage.bytes_total,
            available_bytes=usage.bytes_available,
            used_bytes=usage.bytes_used,
            total_inodes=usage.inodes_total,
            available_inodes=usage.inodes_free,
            used_inodes=usage.inodes_used,
            condition=_with_nvme(condition, nqn, subsystem),
        )

    def _volume_at(self, volume_id: str, path: Path) -> tuple[MountEntry, DeviceNumber | None]:
        """What is mounted at ``path`` and, for a block volume's bind of a device node, the device's number.
        NOT_FOUND when the path does not exist or nothing is mounted there."""
        if not os.path.lexists(path):
            raise errors.NotFound(f"{path} does not exist: volume {volume_id!r} is not there")
        mounted = self._paths.mount_table().at(mount.canonical_path(path))
        if mounted is None:
            raise errors.NotFound(f"{path} is not a volume: nothing is mounted there")
        return mounted, _device_number_of(path)

    def _nqn_of(
        self, volume_id: str, staging: Path | None, mounted: MountEntry, held: DeviceNumber | None
    ) -> str | None:
        if staging is not None:
            record = read_record(staging)
            if record is not None:
                if record.volume_id != volume_id:
                    raise errors.NotFound(f"{staging} holds volume {record.volume_id!r}, not {volume_id!r}")
                return record.nqn
        return self._connector.owner_of(held if held is not None else mounted.device)

    # ---- expand -----------------------------------------------------------------------------------------------

    def expand(self, request: ExpandVolume) -> int:
        return self._measured("expand", lambda: self._expand(request))

    def _expand(self, request: ExpandVolume) -> int:
        mounted, held = self._volume_at(request.volume_id, request.volume_path)
        nqn = self._nqn_of(request.volume_id, request.staging_path, mounted, held)
        if nqn is None:
            raise errors.FailedPrecondition(
                f"{request.volume_path}: the device of volume {request.volume_id!r} is gone; it cannot be expanded"
            )
        subsystem = self._connector.subsystem(nqn)
        number = held if held is not None else mounted.device
        if subsystem is None or subsystem.device is None or subsystem.device.number != number:
            raise errors.FailedPrecondition(
                f"volume {request.volume_id!r} at {request.volume_path} does not use its current device "
                f"({_not_ready(subsystem, 1)}); it cannot be expanded until it is staged again"
            )
        self._connector.rescan(nqn)
        device = self._wait_for_device(nqn, minimum_bytes=max(1, request.required_bytes))
        size = device.size_bytes
        if held is None:
            grown = mount.grow_filesystem(device.path, request.volume_path, runner=self._runner, paths=self._paths)
            size = grown.device_bytes
        log_event(
            _log, "node.expanded", volume_id=request.volume_id, device=str(device.path), size=size, grown=held is None
        )
        return size

    # ---- metrics ----------------------------------------------------------------------------------------------

    def _measured(self, operation: str, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            return work()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            result = _result(failure)
            self._metrics.node_operations.labels(operation, result).inc()
            self._metrics.node_operation_duration.labels(operation, result).observe(time.perf_counter() - started)


def _with_nvme(condition: VolumeCondition, nqn: str | None, subsystem: Subsystem | None) -> VolumeCondition:
    """The file system's (or device's) condition, plus what the NVMe side says: connected, and live."""
    problems = [condition.message] if condition.abnormal else []
    if nqn is None:
        problems.append("the NVMe subsystem of the volume is unknown (its device is gone)")
    elif subsystem is None:
        problems.append(f"{nqn} is not connected")
    elif not subsystem.live:
        states = ", ".join(subsystem.controller_states) or "none"
        problems.append(f"{nqn} has no live controller (states: {states})")
    if problems:
        return VolumeCondition(abnormal=True, message="; ".join(problems))
    return condition


def _not_ready(subsystem: Subsystem | None, minimum_bytes: int) -> str:
    if subsystem is None:
        return "not connected"
    if subsystem.device is None:
        states = ", ".join(subsystem.controller_states) or "none"
        return f"no namespace device yet (controller states: {states})"
    return f"{subsystem.device.path} has {subsystem.device.size_bytes} bytes, waiting for {minimum_bytes}"


def device_users(table: MountTable, device: BlockDevice) -> list[str]:
    """Where the mount table shows ``device`` in use: mounts of it, and binds of its node (which show the node's
    name as their root, on the file system holding /dev)."""
    users = {e.mount_point for e in table.from_device(device.number)}
    users |= {
        e.mount_point
        for e in table
        if e.root.rsplit("/", 1)[-1] == device.path.name and _device_number_of(Path(e.mount_point)) == device.number
    }
    return sorted(users)


def _device_number_of(path: Path) -> DeviceNumber | None:
    """The device a block-device node at ``path`` stands for; None for anything else."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return DeviceNumber.from_rdev(info.st_rdev) if stat.S_ISBLK(info.st_mode) else None
