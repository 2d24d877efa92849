"""Wiring: builds the servicers, the gRPC server and the metrics endpoint from a ``PluginConfig``; lifecycle."""

from __future__ import annotations

import faulthandler
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

from rds_csi import __version__
from rds_csi._native import BACKEND as NATIVE_BACKEND
from rds_csi._native import AttachmentTable
from rds_csi.attach import AttachmentManager, AttachmentStateFile, EventSink, Reconciler
from rds_csi.controller.attachment_sync import KubeAttachmentSync, KubeNodeDirectory, LoggingEventSink, StaticNodeFacts
from rds_csi.controller.orphans import OrphanReconciler
from rds_csi.core import errors
from rds_csi.core.addresses import Endpoint
from rds_csi.core.clock import Clock, SystemClock
from rds_csi.core.settings import OrphanMode
from rds_csi.csi.controller import ControllerServicer, NodeDirectory
from rds_csi.csi.identity import IdentityServicer
from rds_csi.csi.interceptors import CsiCallInterceptor
from rds_csi.csi.node import NodeServicer
from rds_csi.csi.server import CsiServer, ServicerRegistration, prepare_unix_socket
from rds_csi.csi.validation import CapacityLimits, ParameterDefaults
from rds_csi.kube import EventRecorder, KubeApi, KubeAttachmentFacts, KubeSettings
from rds_csi.kube.kubevirt import KubeVirtMigrations
from rds_csi.node import NodeVolumes
from rds_csi.node.connector import Connector, KernelConnector
from rds_csi.node.recovery import Recovery, RecoveryLoop
from rds_csi.nvme import (
    HOST_NQN_ANNOTATION,
    HostIdentity,
    HostNqnReporter,
    KernelUevents,
    ReportSchedule,
    load_or_create_host_id,
    load_or_create_host_nqn,
)
from rds_csi.observability.health import HealthRegistry
from rds_csi.observability.http import ObservabilityServer
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics
from rds_csi.plugin.config import ConfigError, KubeConfig, PluginConfig, files_read_at_start
from rds_csi.plugin.routeros_factory import RouterOSBackend
from rds_csi.routeros.version import UnsupportedRouterOS
from rds_csi.routeros.volumes import VolumeBackend

_log = logging.getLogger(__name__)

# How long past --shutdown-timeout a stop may take before the stuck threads are dumped and the process exits.
SHUTDOWN_WATCHDOG_SLACK = 5.0
# How long the start-up read of the RouterOS release may take (an RDS that does not answer must not hold the start).
IDENTIFY_TIMEOUT = 5.0
# How long interpreter exit may take after a clean stop (it joins leftover worker threads) before it is cut short.
EXIT_GRACE = 5.0


def kube_settings(config: KubeConfig) -> KubeSettings | None:
    if config.api == "off":
        return None
    if config.api == "in-cluster":
        return KubeSettings(in_cluster=True)
    token = Path(config.token_file).read_text(encoding="utf-8").strip() if config.token_file else None
    return KubeSettings(base_url=config.api, token=token, ca_file=config.ca_file)


class ControllerParts:
    """Everything the controller service runs besides the gRPC servicer: backend, attachments, Kubernetes."""

    def __init__(
        self, config: PluginConfig, metrics: Metrics, health: HealthRegistry, clock: Clock, kube: KubeApi | None
    ) -> None:
        """``kube`` is the plugin's one API client (None without one); the plugin closes it."""
        self.routeros = RouterOSBackend(config.routeros, metrics)
        self._temp_state_dir: Path | None = None
        try:
            self._build(config, metrics, health, clock, kube)
        except BaseException:
            self.routeros.close()
            self.remove_private_dirs()
            raise

    def _build(
        self, config: PluginConfig, metrics: Metrics, health: HealthRegistry, clock: Clock, kube: KubeApi | None
    ) -> None:
        health.register("routeros", self.routeros.client.check)
        self.kube = kube
        self.events: EventRecorder | None = None
        # Without VolumeAttachments to rebuild from, the attachments live in a state file (see attach.store).
        self.state: AttachmentStateFile | None = None
        events: EventSink
        nodes: NodeDirectory
        if self.kube is not None:
            self.events = events = EventRecorder(self.kube, config.driver_name, metrics)
            facts: KubeAttachmentFacts | StaticNodeFacts = KubeAttachmentFacts(self.kube, config.driver_name)
            nodes = KubeNodeDirectory(self.kube, config.driver_name, config.attach.default_max_volumes_per_node)
        else:
            events = LoggingEventSink()
            facts = nodes = StaticNodeFacts(config.kube.static_nodes, config.attach.default_max_volumes_per_node)
            self.state = AttachmentStateFile(self._state_dir(config), clock)
        strict = config.attach.require_kubevirt_migration
        # Without the Kubernetes API there is no hook, and the manager refuses strict mode rather than weaken it.
        migrations = KubeVirtMigrations(self.kube) if strict and self.kube is not None else None
        self.attachments = AttachmentManager(
            AttachmentTable(),
            facts,
            events,
            clock,
            metrics,
            grace_seconds=config.attach.grace_period,
            strict_migration=strict,
            migration_allowed=migrations.migration_allowed if migrations is not None else None,
            journal=self.state,
        )
        self.reconciler = Reconciler(self.attachments, config.attach.reconcile_interval)
        # After an RDS outage, look at attachments again at once rather than at the next interval.
        self.routeros.client.on_recovery(self.reconciler.trigger)
        self.sync = (
            KubeAttachmentSync(
                self.kube, config.driver_name, self.attachments, self.reconciler, clock=clock, watch_clock=SystemClock()
            )
            if self.kube is not None
            else None
        )
        self.volumes = VolumeBackend(
            self.routeros.client,
            base_path=config.volumes.base_path,
            capacity_cache_seconds=config.volumes.capacity_cache_seconds,
        )
        self.orphans = (
            OrphanReconciler(
                self.volumes,
                self.kube,
                self.attachments,
                metrics,
                clock,
                events=self.events,
                driver_name=config.driver_name,
                mode=config.attach.orphan_mode,
                grace_seconds=config.attach.orphan_grace,
                interval=config.attach.orphan_interval,
            )
            if self.kube is not None and self.events is not None and config.attach.orphan_mode is not OrphanMode.OFF
            else None
        )
        self.servicer = ControllerServicer(
            self.volumes,
            ParameterDefaults(
                volume_path=config.volumes.base_path,
                nvme_address=config.volumes.nvme_address,
                nvme_port=config.volumes.nvme_port,
            ),
            CapacityLimits(maximum_bytes=config.volumes.max_volume_bytes),
            self.attachments,
            nodes,
            claims=self.events,
        )

    def _state_dir(self, config: PluginConfig) -> Path:
        if config.attach.state_dir is not None:
            return Path(config.attach.state_dir)
        # Config allows this only with the embedded simulator in a temp dir: the volumes go when the process does.
        self._temp_state_dir = Path(tempfile.mkdtemp(prefix="rds-csi-attachments-"))
        log_event(_log, "attach.state.temporary", logging.WARNING, path=str(self._temp_state_dir))
        return self._temp_state_dir

    def start(self) -> None:
        """Check the RDS's RouterOS release, then rebuild attachments from the cluster (or the state file) before any
        publish can be answered."""
        try:
            self.routeros.client.identify(IDENTIFY_TIMEOUT)
        except UnsupportedRouterOS as exc:
            raise ConfigError("--routeros-address", exc.message) from exc
        except errors.RdsCsiError as exc:
            # Reachability is readiness, not a reason to stop: the release is read when RouterOS answers again.
            log_event(_log, "routeros.release_unknown", logging.WARNING, error=exc.message)
        if self.sync is not None:
            self.sync.start()
        if self.state is not None:
            try:
                self.attachments.rebuild(self.state.open())
            except errors.FailedPrecondition as exc:
                raise ConfigError("--state-dir", exc.message) from exc
        self.reconciler.start()
        if self.orphans is not None:
            self.orphans.start()

    def stop(self) -> None:
        if self.orphans is not None:
            self.orphans.stop()
        self.reconciler.stop()
        if self.sync is not None:
            self.sync.stop()
        if self.events is not None:
            self.events.stop(timeout=5.0)
        if self.state is not None:
            self.state.close()
        self.routeros.close()
        self.remove_private_dirs()

    def remove_private_dirs(self) -> None:
        """Remove the temp dirs of a throwaway setup (attachments, the embedded simulator's keys)."""
        if self._temp_state_dir is not None:
            shutil.rmtree(self._temp_state_dir, ignore_errors=True)
        self.routeros.remove_private_dir()


class NodeParts:
    """The node service: its identity for the kubelet, its NVMe host identity (NQN and ID), the host NQN it
    reports for storage-side fencing, and the volume data path (stage, publish, stats, expand)."""

    def __init__(
        self, config: PluginConfig, kube: KubeApi | None, metrics: Metrics, connector: Connector | None = None
    ) -> None:
        """``connector`` replaces the kernel's NVMe/TCP host (tests on hosts without nvme-tcp)."""
        self._node_id = config.node_id
        self._host_nqn_file = Path(config.node.host_nqn_file)
        self._host_id_file = Path(config.node.host_id_file)
        self._schedule = ReportSchedule(recheck_interval=config.node.host_nqn_recheck_interval)
        self.kube = kube
        self.reporter: HostNqnReporter | None = None
        self.kernel: KernelConnector | None = None
        self.uevents: KernelUevents | None = None
        if connector is None:
            self.kernel = connector = KernelConnector(config.node.managed_nqn_prefix, SystemClock())
            self.uevents = KernelUevents(self.kernel.resolver.observe)
        self.volumes = NodeVolumes(connector, metrics)
        self.servicer = NodeServicer(
            config.node_id, config.node.max_volumes_per_node, self.volumes, config.node.managed_nqn_prefix
        )
        self.recovery: RecoveryLoop | None = None
        if config.node.node_recovery_interval > 0:
            recovery = Recovery(
                connector, metrics, SystemClock(), Path(config.node.kubelet_dir), self.servicer.locks.hold
            )
            self.recovery = RecoveryLoop(recovery, config.node.node_recovery_interval)

    def start(self) -> None:
        """Settle the host NQN and then the host ID (a bad file stops the start), hand them to the NVMe side, then
        report the NQN in the background."""
        try:
            host = load_or_create_host_nqn(self._host_nqn_file)
        except errors.FailedPrecondition as exc:
            raise ConfigError("--host-nqn-file", exc.message) from exc
        log_event(_log, "node.host_nqn", host_nqn=host.nqn, origin=host.origin.value, path=str(self._host_nqn_file))
        try:
            host_id = load_or_create_host_id(self._host_id_file, host.nqn)
        except errors.FailedPrecondition as exc:
            raise ConfigError("--host-id-file", exc.message) from exc
        log_event(_log, "node.host_id", host_id=host_id.id, origin=host_id.origin.value, path=str(self._host_id_file))
        if self.kernel is not None:
            self.kernel.bind_host(HostIdentity(host.nqn, host_id.id))
        if self.uevents is not None:
            self.uevents.start()
        if self.recovery is not None:
            self.recovery.start()
        if self.kube is None:
            log_event(
                _log,
                "node.host_nqn_not_reported",
                logging.WARNING,
                reason="no Kubernetes API (--kube-api off)",
                effect=f"fenced volumes cannot be published to this node (the controller reads {HOST_NQN_ANNOTATION})",
            )
            return
        self.reporter = HostNqnReporter(self.kube, self._node_id, host.nqn, self._schedule)
        self.reporter.start()

    def stop(self) -> None:
        if self.recovery is not None:
            self.recovery.stop()
        if self.reporter is not None:
            self.reporter.stop()
        if self.uevents is not None:
            self.uevents.stop()


def check_files_readable(config: PluginConfig) -> None:
    """Refuse, naming the flag, a file the configuration reads that cannot be read now rather than later."""
    for flag, path in files_read_at_start(config):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(flag, f"cannot read {path}: {exc.strerror}") from None


def prepare_socket_directories(endpoints: tuple[Endpoint, ...]) -> None:
    """Make each unix endpoint bindable now (its directory made, a stale socket removed, a live one refused)."""
    for endpoint in endpoints:
        if endpoint.scheme != "unix":
            continue
        try:
            prepare_unix_socket(endpoint.address)
        except OSError as exc:
            directory = os.path.dirname(endpoint.address)
            reason = "not a directory" if os.path.exists(directory) and not os.path.isdir(directory) else exc.strerror
            raise ConfigError("--endpoint", f"cannot create the socket {endpoint.address}: {reason}") from None


def _abandon_process(event: str, waited: float, status: int) -> NoReturn:
    log_event(_log, event, logging.ERROR, waited_s=waited, exit_status=status)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class Plugin:
    def __init__(self, config: PluginConfig, clock: Clock | None = None, connector: Connector | None = None) -> None:
        """``clock`` drives the attachment rules (grace periods, migration windows); tests pass virtual time.
        ``connector`` stands in for the kernel's NVMe/TCP host in the node service (tests without nvme-tcp)."""
        self.config = config
        check_files_readable(config)
        self.metrics = Metrics()
        self.health = HealthRegistry()
        self.metrics.build_info.labels(__version__, NATIVE_BACKEND).set(1)
        identity = IdentityServicer(
            driver_name=config.driver_name,
            version=__version__,
            controller=config.mode.runs_controller,
            health=self.health,
        )
        registrations: list[ServicerRegistration] = [identity.register]
        # What the flags name is claimed first: a busy port or an unusable socket path stops the start before
        # anything (the embedded simulator, its temp dir) exists that would have to be undone.
        self.http: ObservabilityServer | None = None
        if config.metrics_address is not None:
            try:
                self.http = ObservabilityServer(config.metrics_address, self.metrics, self.health)
            except OSError as exc:
                reason = f"cannot listen on {config.metrics_address}: {exc.strerror}"
                raise ConfigError("--metrics-address", reason) from None
        self.kube: KubeApi | None = None
        self.controller: ControllerParts | None = None
        self.node: NodeParts | None = None
        try:
            prepare_socket_directories(config.endpoint)
            registrations += self._build_services(config, clock, connector)
        except BaseException:
            self._stop_parts()
            raise
        self.server = CsiServer(
            endpoints=config.endpoint,
            registrations=registrations,
            interceptors=[CsiCallInterceptor(self.metrics, config.rpc_timeout)],
            workers=config.grpc_workers,
        )
        self._stop_requested = threading.Event()

    def _build_services(
        self, config: PluginConfig, clock: Clock | None, connector: Connector | None
    ) -> list[ServicerRegistration]:
        registrations: list[ServicerRegistration] = []
        settings = kube_settings(config.kube)
        # One API client for both services (--mode all): one token read, one connection pool.
        self.kube = KubeApi(settings) if settings is not None else None
        if config.mode.runs_controller:
            self.controller = ControllerParts(config, self.metrics, self.health, clock or SystemClock(), self.kube)
            registrations.append(self.controller.servicer.register)
        if config.mode.runs_node:
            self.node = NodeParts(config, self.kube, self.metrics, connector)
            registrations.append(self.node.servicer.register)
        return registrations

    @property
    def routeros(self) -> RouterOSBackend | None:
        return self.controller.routeros if self.controller is not None else None

    def start(self) -> None:
        log_event(
            _log,
            "plugin.starting",
            mode=self.config.mode.value,
            driver=self.config.driver_name,
            version=__version__,
            native_backend=NATIVE_BACKEND,
            node_id=self.config.node_id or "-",
        )
        try:
            if self.http is not None:
                self.http.start()
            if self.controller is not None:
                self.controller.start()
            if self.node is not None:
                self.node.start()
            self.server.start()
        except Exception:
            self._stop_parts()
            raise

    def stop(self) -> None:
        log_event(_log, "plugin.stopping", timeout_s=self.config.shutdown_timeout)
        self.server.stop(self.config.shutdown_timeout)
        self._stop_parts()
        log_event(_log, "plugin.stopped")

    def _stop_parts(self) -> None:
        if self.http is not None:
            self.http.stop()
        if self.controller is not None:
            self.controller.stop()
        if self.node is not None:
            self.node.stop()
        if self.kube is not None:
            self.kube.close()

    def _shutdown_watchdog(self, stopped: threading.Event, exit_grace: float = EXIT_GRACE) -> None:
        """A stop that hangs must not hang the pod until the kubelet's SIGKILL: say where it is stuck, then exit.

        Runs as a daemon thread from the stop request on; it is never disarmed, because after a clean stop the
        interpreter still joins leftover worker threads (a cancelled call's handler blocked in I/O) on its way out.
        """
        limit = self.config.shutdown_timeout + SHUTDOWN_WATCHDOG_SLACK
        if not stopped.wait(limit):
            self._remove_private_dirs()
            _abandon_process("plugin.shutdown_stuck", limit, status=1)
        time.sleep(exit_grace)  # reached only if the process is still alive: its exit is what hangs
        self._remove_private_dirs()
        _abandon_process("plugin.exit_stuck", exit_grace, status=0)

    def _remove_private_dirs(self) -> None:
        """``os._exit`` skips every cleanup: the temp dirs (SSH private keys among them) go first."""
        if self.controller is not None:
            self.controller.remove_private_dirs()

    def run_until_signalled(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then shut down gracefully. Call from the main thread."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log_event(_log, "plugin.signal", signal=signal.Signals(signum).name)
            self._stop_requested.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            self._stop_requested.wait()
            stopped = threading.Event()
            watchdog = threading.Thread(
                target=self._shutdown_watchdog, args=(stopped,), name="shutdown-watchdog", daemon=True
            )
            watchdog.start()
            self.stop()
            stopped.set()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
