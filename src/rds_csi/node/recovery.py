"""Recovery on the node: at start-up and periodically, put right what a reconnect or a crash left behind.

- **Stale staging mounts.** After the target went away and came back, the kernel may give the namespace another
  device (``nvme0n1`` -> ``nvme3n1``); a filesystem mounted from the old one answers nothing but errors. When
  nothing else uses the old mount (no publish binds of it), the staging mount is replaced by one of the volume's
  current device, with the options it was staged with; otherwise it is left for the pods' owners to restart and
  reported (``VolumeCondition`` says so too).
- **Orphaned controllers.** A managed subsystem that backs no staged volume (its unstage never came: a kubelet
  that forgot the volume, a record removed by hand) is disconnected once two passes in a row found it unclaimed
  and nothing mounts or binds its device. Only NQNs under the managed prefix are looked at, and only ones that
  were connected before the staged volumes were read, so a stage in flight (its record is written before its
  connect) is never mistaken for an orphan.
- **Circuit breaker.** A volume whose remount keeps failing is left alone for a cool-down after
  ``failure_threshold`` failures in a row, then tried again; a success closes the breaker.

Staged volumes are found from their records, beside the staging directories of the kubelet's layout:
``<kubelet>/plugins/kubernetes.io/csi/<driver>/<hash>/globalmount`` (and the older ``.../csi/pv/<pv>/globalmount``)
for filesystems, ``<kubelet>/plugins/kubernetes.io/csi/volumeDevices/staging/<pv>`` for block volumes. Only those
fixed depths are listed: nothing below a staging directory (a volume's own files) is ever read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from rds_csi import mount
from rds_csi.core import errors
from rds_csi.core.clock import Clock
from rds_csi.core.loop import PeriodicThread
from rds_csi.mount import HostPaths
from rds_csi.node.connector import Connector
from rds_csi.node.records import RECORD_SUFFIX, StagedRecord, read_record
from rds_csi.node.volumes import device_users
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics

_log = logging.getLogger(__name__)

CSI_PLUGIN_DIR = Path("plugins") / "kubernetes.io" / "csi"

# Takes the per-volume lock the CSI calls take (``KeyedLocks.hold``): ``Aborted`` while a call holds it.
VolumeLock = Callable[[str, str], AbstractContextManager[None]]


@dataclass(frozen=True, slots=True)
class StagedVolume:
    staging_path: Path
    record: StagedRecord


def staged_volumes(kubelet_dir: Path) -> list[StagedVolume]:
    """Every volume this driver staged on the node, from the records beside the kubelet's staging directories.

    ``csi/<driver or pv>/<name>/<staging>.rds-csi.json`` and ``csi/volumeDevices/staging/<pv>.rds-csi.json`` are
    both three levels below the CSI plugin directory. A record that cannot be read is logged and skipped: it is
    left to the unstage that names it.
    """
    found = []
    for path in sorted((kubelet_dir / CSI_PLUGIN_DIR).glob(f"*/*/*{RECORD_SUFFIX}")):
        staging = path.with_name(path.name.removesuffix(RECORD_SUFFIX))
        try:
            record = read_record(staging)
        except errors.Internal as unreadable:
            log_event(_log, "node.recovery_record_skipped", logging.WARNING, path=str(path), error=unreadable.message)
            continue
        if record is not None:
            found.append(StagedVolume(staging, record))
    return found


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    stale: tuple[str, ...]  # volume ids whose staging mount used an old device
    remounted: tuple[str, ...]  # ... and were remounted on the current one
    disconnected: tuple[str, ...]  # orphaned managed subsystems disconnected


class Recovery:
    def __init__(
        self,
        connector: Connector,
        metrics: Metrics,
        clock: Clock,
        kubelet_dir: Path,
        lock: VolumeLock,
        *,
        paths: HostPaths = mount.HOST,
        failure_threshold: int = 3,
        cool_down: float = 300.0,
    ) -> None:
        """``lock`` is the CSI calls' per-volume lock, so a remount never races a stage or an unstage; ``clock``
        times the circuit breaker's cool-down."""
        self.connector = connector
        self.metrics = metrics
        self.clock = clock
        self.kubelet_dir = kubelet_dir
        self.lock = lock
        self.paths = paths
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self._breakers: dict[str, _Breaker] = {}
        self._unclaimed: set[str] = set()  # managed NQNs no record claimed at the last pass

    def run_once(self) -> RecoveryReport:
        # Connected subsystems first, records second: a stage writes its record before it connects, so anything
        # connected by now that is still being staged has its record in the list read after.
        connected = self.connector.managed_subsystems()
        staged = staged_volumes(self.kubelet_dir)
        stale, remounted = [], []
        for volume in staged:
            if volume.record.mount is not None and self._stale(volume):
                stale.append(volume.record.volume_id)
                if self._remount(volume):
                    remounted.append(volume.record.volume_id)
        unclaimed = set(connected) - {volume.record.nqn for volume in staged}
        disconnected = []
        for nqn in sorted(unclaimed & self._unclaimed):
            if self._disconnect_orphan(nqn):
                disconnected.append(nqn)
        self._unclaimed = unclaimed - set(disconnected)
        return RecoveryReport(tuple(stale), tuple(remounted), tuple(disconnected))

    def _stale(self, volume: StagedVolume) -> bool:
        mounted = self.paths.mount_table().at(mount.canonical_path(volume.staging_path))
        if mounted is None:
            return False
        subsystem = self.connector.subsystem(volume.record.nqn)
        current = subsystem.device if subsystem is not None else None
        if current is None or current.number == mounted.device:
            return False
        self.metrics.node_stale_mounts.labels("found").inc()
        log_event(
            _log,
            "node.stale_mount",
            logging.WARNING,
            volume_id=volume.record.volume_id,
            staging=str(volume.staging_path),
            mounted=str(mounted.device),
            device=str(current.path),
        )
        return True

    def _remount(self, volume: StagedVolume) -> bool:
        volume_id = volume.record.volume_id
        breaker = self._breakers.setdefault(volume_id, _Breaker())
        if breaker.open_until > self.clock.now():
            return False
        try:
            with self.lock(volume_id, "recovery"):
                self._replace_mount(volume)
        except errors.Aborted:
            return False  # a CSI call is at work on the volume; the next pass looks again
        except errors.RdsCsiError as failure:
            breaker.failures += 1
            if breaker.failures >= self.failure_threshold:
                breaker.open_until = self.clock.now() + self.cool_down
            log_event(
                _log,
                "node.stale_mount_not_recovered",
                logging.WARNING,
                volume_id=volume_id,
                error=failure.message,
                failures=breaker.failures,
                paused_s=self.cool_down if breaker.open_until > self.clock.now() else 0,
            )
            return False
        self._breakers.pop(volume_id, None)
        self.metrics.node_stale_mounts.labels("recovered").inc()
        return True

    def _replace_mount(self, volume: StagedVolume) -> None:
        """Under the volume's lock: look again, then swap the staging mount for one of the current device."""
        staging, access = volume.staging_path, volume.record.mount
        assert access is not None
        table = self.paths.mount_table()
        mounted = table.at(mount.canonical_path(staging))
        subsystem = self.connector.subsystem(volume.record.nqn)
        current = subsystem.device if subsystem is not None else None
        if mounted is None or current is None or current.number == mounted.device:
            return  # put right meanwhile
        users = [e.mount_point for e in table.from_device(mounted.device) if e.mount_point != mounted.mount_point]
        if users:
            raise errors.FailedPrecondition(
                f"the stale mount is still used at {', '.join(sorted(users))}; those pods must be restarted"
            )
        mount.unmount(staging, paths=self.paths)
        mount.mount_filesystem(current.path, staging, access.fs_type, access.options, paths=self.paths)
        log_event(_log, "node.stale_mount_recovered", volume_id=volume.record.volume_id, device=str(current.path))

    def _disconnect_orphan(self, nqn: str) -> bool:
        """Disconnect a managed subsystem no record claims, unless its device is mounted or bound anywhere (staged
        by hand, or by a plugin that kept no record): what the mount table shows in use is never an orphan."""
        subsystem = self.connector.subsystem(nqn)
        users = device_users(self.paths.mount_table(), subsystem.device) if subsystem and subsystem.device else []
        if users:
            log_event(_log, "node.orphan_kept", logging.WARNING, nqn=nqn, used_at=",".join(users))
            return False
        try:
            self.connector.disconnect(nqn)
        except errors.RdsCsiError as refused:
            log_event(_log, "node.orphan_kept", logging.WARNING, nqn=nqn, error=refused.message)
            return False
        self.metrics.node_orphans_disconnected.inc()
        log_event(_log, "node.orphan_disconnected", logging.WARNING, nqn=nqn)
        return True


class RecoveryLoop:
    """Runs ``Recovery.run_once`` at start and then every ``interval`` seconds, in a daemon thread."""

    def __init__(self, recovery: Recovery, interval: float) -> None:
        self._recovery = recovery
        self._interval = interval
        self._loop = PeriodicThread("rds-csi-node-recovery", self._pass, on_failure=self._failed)

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> bool:
        return self._loop.stop(timeout)

    def _pass(self) -> float:
        report = self._recovery.run_once()
        if report.stale or report.disconnected:
            log_event(
                _log,
                "node.recovery",
                stale=",".join(report.stale) or "-",
                remounted=",".join(report.remounted) or "-",
                disconnected=",".join(report.disconnected) or "-",
            )
        return self._interval

    def _failed(self, failure: Exception) -> float:
        # A pass that fails must not end recovery for good.
        log_event(_log, "node.recovery_failed", logging.WARNING, error=str(failure) or type(failure).__name__)
        return self._interval
