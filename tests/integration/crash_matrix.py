"""The crash matrix (issue 10): a controller killed with SIGKILL at random points of a create / delete / publish /
unpublish mix, restarted with the same flags, while a client that behaves like the CO's sidecars retries whatever
was in flight. Afterwards the RDS and the publish history are held against what the client was told.

- ``PluginZygote`` and ``KilledController``: the plugin as its own process (``rds-csi plugin``, forked from a
  parent that made the imports once), killed with SIGKILL and started again with the same argv.
- ``Ledger``: the client's truth, from OK answers only: which volumes exist (and their size), which were deleted,
  which nodes hold each volume (publish OK, its unpublish not yet OK), and every attempt, for the report.
- ``Worker``: the sidecars. Each owns a few volumes and drives them one intent at a time (an intent is sent again,
  same request and same name, until it gets a definitive answer), so a publish to another node is only ever sent
  while the client knows exactly who holds the volume: an OK for a node beyond the volume's writers is a double
  writer, whatever the timing. A refused publish either waits (its VolumeAttachment stays and the attacher tries
  again later) or is followed by its unpublish, as the attacher does when the VolumeAttachment goes away.
- ``StaticCluster`` / ``KubeCluster``: what the cluster keeps around the calls (nothing, or PVs and
  VolumeAttachments in the API emulator, with the attacher's status write arriving late).
- ``compare_with_rds``: the simulator's own view (its control endpoint, not the driver) against the ledger.

Kill points come from a seeded RNG (a random number of finished intents, then a random short delay, so the kill
lands inside whatever RPCs are in flight; now and then the new process is killed again while it starts);
``RDS_CSI_CRASH_SEED`` replays a schedule. Threads interleave as they do, so a seed replays the mix and the kill
schedule, not the exact interleaving. No assertion depends on timing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import grpc

from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc
from tests.kube_emulator import KubeEmulator
from tests.support import SimulatorProcess

GiB: Final = 1 << 30
NODES: Final = ("node-a", "node-b", "node-c")
BASE_PATH: Final = "storage-pool/metal-csi"
CALL_TIMEOUT: Final = 15.0  # the sidecars' default --timeout
# How long one intent may go without a definitive answer (the plugin restarts in about a second).
INTENT_DEADLINE: Final = 90.0
# Answers a sidecar retries without a second thought; any other non-definitive answer counts towards a wedge.
TRANSIENT: Final = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED}
)
WRONG_ANSWERS_BEFORE_WEDGE: Final = 3
READY_TIMEOUT: Final = 60.0
_Code = grpc.StatusCode
_Mode = csi_pb2.VolumeCapability.AccessMode.Mode
# Short reconnect backoff: the default (1 s, growing) would have the client sit out most of each restart.
CHANNEL_OPTIONS: Final = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
)

Kind = Literal[
    "double writer", "deleted while published", "missing volume", "orphan disk", "orphan file", "wedged", "crashed"
]


# ---- the plugin process ---------------------------------------------------------------------------------------


class PluginZygote:
    """``tests/integration/plugin_zygote.py``: forks plugin processes on request; see its docstring."""

    def __init__(self, *, kubernetes: bool) -> None:
        argv = [sys.executable, "-m", "tests.integration.plugin_zygote", *(["--kubernetes"] if kubernetes else [])]
        # From the checkout's root, as a module: run as a script, its own directory would come first on sys.path,
        # and the test packages there (kube, node, simulator, ...) would shadow any top-level module of that name.
        root = Path(__file__).resolve().parents[2]
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root)
        self._lock = threading.Lock()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"plugin zygote exited with {self._process.wait(10)}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def spawn(self, argv: Sequence[str], log: Path) -> int:
        return int(self._ask({"spawn": list(argv), "log": str(log)})["pid"])

    def poll(self, pid: int) -> int | None:
        status = self._ask({"poll": pid})["status"]
        return None if status is None else int(status)

    def reap(self, pid: int) -> int:
        return int(self._ask({"reap": pid})["status"])

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()  # its children die with it
        self._process.wait(10)


class KilledController:
    """One controller at a time on ``socket_path``: spawned, killed with SIGKILL, spawned again with the same argv.

    ``running`` is set from the spawn to the kill. Clients call as soon as it is set, without waiting for Probe,
    as sidecars do when the driver container restarts under them: a call that arrives before the plugin is ready
    must be answered safely (or not at all), never from a half-rebuilt table."""

    def __init__(self, zygote: PluginZygote, argv: Sequence[str], socket_path: Path, log: Path) -> None:
        self._zygote = zygote
        self._argv = list(argv)
        self._log = log
        self.channel = grpc.insecure_channel(f"unix://{socket_path}", options=CHANNEL_OPTIONS)
        self.controller = csi_pb2_grpc.ControllerStub(self.channel)
        self._identity = csi_pb2_grpc.IdentityStub(self.channel)
        self.running = threading.Event()
        self.generation = 0
        self.kills = 0
        self.start_seconds: list[float] = []  # from the spawn to the first ready Probe, per start
        self._pid: int | None = None
        self._spawned = 0.0

    def spawn(self) -> None:
        assert self._pid is None
        self._spawned = time.monotonic()
        self._pid = self._zygote.spawn(self._argv, self._log)
        self.generation += 1
        self.running.set()

    def wait_ready(self) -> None:
        """Until Probe answers ready; a plugin that exits or never gets there fails the run with its log."""
        assert self._pid is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready():
            status = self._zygote.poll(self._pid)
            if status is not None:
                self._pid = None
                raise RuntimeError(f"plugin exited with {status} at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"plugin not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")
            threading.Event().wait(0.02)
        self.start_seconds.append(time.monotonic() - self._spawned)

    def _ready(self) -> bool:
        try:
            return bool(self._identity.Probe(csi_pb2.ProbeRequest(), timeout=2).ready.value)
        except grpc.RpcError:
            return False

    def kill(self) -> int:
        """SIGKILL; the exit status, which is -SIGKILL unless the plugin had already died on its own."""
        assert self._pid is not None
        self.running.clear()
        os.kill(self._pid, signal.SIGKILL)
        status = self._zygote.reap(self._pid)
        self._pid = None
        self.kills += 1
        return status

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def close(self) -> None:
        if self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)
            self._zygote.reap(self._pid)
            self._pid = None
        self.channel.close()


# ---- the client's truth ---------------------------------------------------------------------------------------


@dataclass
class VolumeTruth:
    """What the client was told about one volume name. ``state`` is ``unknown`` after an intent that never got a
    definitive answer (a create or delete that wedged): the next intent on it is a delete."""

    name: str
    multi_writer: bool  # MULTI_NODE_MULTI_WRITER block: two nodes during a migration, never three
    state: Literal["absent", "exists", "unknown"] = "absent"
    ever_created: bool = False
    capacity: int = 0
    volume_context: dict[str, str] = field(default_factory=dict)
    holders: set[str] = field(default_factory=set)
    # Nodes whose publish was refused while the cluster still wants them: their VolumeAttachment stays and the
    # attacher sends the publish again later (or gives up and detaches). Never writers: no OK was seen for them.
    waiting: set[str] = field(default_factory=set)
    history: list[str] = field(default_factory=list)

    @property
    def writers(self) -> int:
        return 2 if self.multi_writer else 1

    def capability(self) -> csi_pb2.VolumeCapability:
        mode = _Mode.MULTI_NODE_MULTI_WRITER if self.multi_writer else _Mode.SINGLE_NODE_WRITER
        access = csi_pb2.VolumeCapability.AccessMode(mode=mode)
        if self.multi_writer:
            return csi_pb2.VolumeCapability(access_mode=access, block=csi_pb2.VolumeCapability.BlockVolume())
        return csi_pb2.VolumeCapability(access_mode=access, mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"))


@dataclass(frozen=True)
class Violation:
    kind: Kind
    volume: str
    detail: str


class Ledger:
    def __init__(self, volumes: Sequence[VolumeTruth]) -> None:
        self.started = time.monotonic()
        self.volumes = {v.name: v for v in volumes}
        self.violations: list[Violation] = []
        self.intents: Counter[str] = Counter()
        self.attempts = 0
        self._done = 0
        self._lock = threading.Condition()

    def note(self, volume: VolumeTruth, generation: int, text: str) -> None:
        volume.history.append(f"{time.monotonic() - self.started:8.3f}s plugin#{generation} {text}")

    def violation(self, kind: Kind, volume: str, detail: str) -> None:
        """Found while the mix runs: stamped like the history, so the two can be read side by side."""
        with self._lock:
            at = f"{time.monotonic() - self.started:.3f}s"
            self.violations.append(Violation(kind, volume, f"{detail} (at {at})"))

    def attempted(self) -> None:
        with self._lock:
            self.attempts += 1

    def intent_done(self, label: str) -> None:
        with self._lock:
            self._done += 1
            self.intents[label] += 1
            self._lock.notify_all()

    @property
    def done(self) -> int:
        with self._lock:
            return self._done

    def wait_done(self, count: int, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._done >= count, timeout)


# ---- what the cluster does around the CSI calls ---------------------------------------------------------------


class StaticCluster:
    """No Kubernetes API (``--kube-api off --static-nodes``): the CSI calls are all there is."""

    def created(self, volume: VolumeTruth) -> None: ...

    def deleted(self, volume: VolumeTruth) -> None: ...

    def attaching(self, volume: VolumeTruth, node: str) -> None: ...

    def attached(self, volume: VolumeTruth, node: str) -> None: ...

    def detaching(self, volume: VolumeTruth, node: str) -> None: ...

    def detached(self, volume: VolumeTruth, node: str) -> None: ...

    def close(self) -> None: ...


class KubeCluster(StaticCluster):
    """The objects Kubernetes keeps around the calls, in the API emulator: a PV per created volume (the
    provisioner), and a VolumeAttachment per attach (the A/D controller creates it before ControllerPublish;
    the attacher writes ``status.attached`` after the OK, and only a while later, as a busy attacher does; a
    detach marks it deleting, calls ControllerUnpublish and removes it after the OK)."""

    STATUS_DELAY: Final = 4.0  # the longest a busy attacher takes to write status.attached after the OK
    NAMESPACE: Final = "crash"

    def __init__(self, kube: KubeEmulator, driver: str, seed: int) -> None:
        self._kube = kube
        self._driver = driver
        self._rng = random.Random(f"{seed}-attacher")
        self._lock = threading.Lock()
        self._vas: dict[tuple[str, str], str] = {}
        self._status_writes: dict[tuple[str, str], threading.Timer] = {}
        for node in NODES:
            kube.add_node(node)

    def created(self, volume: VolumeTruth) -> None:
        mode = "Block" if volume.multi_writer else "Filesystem"
        access = ("ReadWriteMany",) if volume.multi_writer else ("ReadWriteOnce",)
        claim = f"claim-{volume.name}"
        self._kube.add_pvc(self.NAMESPACE, claim, volume_name=volume.name)
        self._kube.add_pv(
            volume.name,
            driver=self._driver,
            claim=(self.NAMESPACE, claim),
            access_modes=access,
            volume_mode=mode,
            volume_attributes=volume.volume_context,
        )

    def deleted(self, volume: VolumeTruth) -> None:
        self._kube.delete_pv(volume.name)

    def attaching(self, volume: VolumeTruth, node: str) -> None:
        with self._lock:
            if (volume.name, node) not in self._vas:
                va = self._kube.add_volume_attachment(volume.name, node, self._driver, attached=False)
                self._vas[volume.name, node] = va

    def attached(self, volume: VolumeTruth, node: str) -> None:
        with self._lock:
            if (volume.name, node) in self._status_writes:
                return  # a repeated OK: the status is written (or on its way) already
            va = self._vas[volume.name, node]
            write = threading.Timer(self._rng.uniform(0, self.STATUS_DELAY), self._kube.set_attached, (va, True))
            self._status_writes[volume.name, node] = write
        write.start()

    def detaching(self, volume: VolumeTruth, node: str) -> None:
        with self._lock:
            va = self._vas.get((volume.name, node))
        if va is not None:
            self._kube.mark_deleting(va)

    def detached(self, volume: VolumeTruth, node: str) -> None:
        with self._lock:
            va = self._vas.pop((volume.name, node), None)
            write = self._status_writes.pop((volume.name, node), None)
        if write is not None:
            write.cancel()  # a late status write must not land on the next VolumeAttachment of that name
        if va is not None:
            self._kube.delete_volume_attachment(va)

    def close(self) -> None:
        with self._lock:
            writes = list(self._status_writes.values())
        for write in writes:
            write.cancel()
            write.join(5)


# ---- the client -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    details: str
    response: Any


class Worker:
    """The sidecars for a few volumes: one intent at a time per volume, each sent until it is answered."""

    def __init__(
        self,
        controller: KilledController,
        cluster: StaticCluster,
        ledger: Ledger,
        volumes: Sequence[VolumeTruth],
        seed: str,
    ) -> None:
        self._ctl = controller
        self._cluster = cluster
        self._ledger = ledger
        self._volumes = list(volumes)
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"crash-worker-{seed}", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self._thread.name} still busy {timeout}s after the last kill")

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.step(self._rng.choice(self._volumes))
        except BaseException as exc:  # surfaced by the test: a worker must never die quietly
            self.error = exc

    def step(self, volume: VolumeTruth) -> None:
        """One intent, picked as a cluster would issue them, including the ones the driver must refuse."""
        rng = self._rng
        held = sorted(volume.holders)
        others = [n for n in NODES if n not in volume.holders]
        if volume.state == "unknown":
            self.delete(volume)
        elif volume.state == "absent":
            self.create(volume)
        elif volume.waiting and rng.random() < 0.3:
            node = rng.choice(sorted(volume.waiting))
            if rng.random() < 0.6:
                self.publish(volume, node)  # the attacher's retry
            else:
                self.unpublish(volume, node)  # the pod went elsewhere: its VolumeAttachment is deleted
        elif not held:
            roll = rng.random()
            if roll < 0.5:
                self.publish(volume, rng.choice(NODES))
            elif roll < 0.85:
                self.delete(volume)
            else:
                self.create(volume)  # the provisioner asks again (restarted, lost the answer): the same answer
        else:
            roll = rng.random()
            if roll < 0.45:
                self.unpublish(volume, rng.choice(held))
            elif roll < 0.55:
                self.publish(volume, rng.choice(held))
            elif roll < 0.85 and others:
                self.publish(volume, rng.choice(others))  # a second (or third) node: refused, or a migration
            else:
                self.delete(volume)  # must be refused while a node holds it

    # -- intents ---------------------------------------------------------------------------------------------

    def create(self, volume: VolumeTruth) -> None:
        request = csi_pb2.CreateVolumeRequest(
            name=volume.name,
            capacity_range=csi_pb2.CapacityRange(required_bytes=GiB),
            volume_capabilities=[volume.capability()],
        )
        answer = self._send(volume, "create", self._ctl.controller.CreateVolume, request, ())
        if answer is None:
            volume.state = "unknown"
        elif answer.code == _Code.OK:
            first = volume.state != "exists"
            volume.state, volume.ever_created = "exists", True
            volume.capacity = answer.response.volume.capacity_bytes
            volume.volume_context = dict(answer.response.volume.volume_context)
            if first:
                self._cluster.created(volume)
        self._ledger.intent_done("create")

    def delete(self, volume: VolumeTruth) -> None:
        held = sorted(volume.holders)
        # Refused while a node holds it, and may be while a VolumeAttachment waits (it holds after a restart).
        refusal = (_Code.FAILED_PRECONDITION,) if held or volume.waiting else ()
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume.name)
        answer = self._send(volume, "delete", self._ctl.controller.DeleteVolume, request, refusal)
        self._ledger.intent_done("delete")
        if answer is None:
            volume.state = "unknown"
            return
        if answer.code != _Code.OK:
            return
        volume.state = "absent"
        self._cluster.deleted(volume)
        if held:
            self._ledger.violation("deleted while published", volume.name, f"DeleteVolume OK while {held} held it")
        for node in sorted(volume.holders | volume.waiting):  # the cluster still detaches what it attached
            self.unpublish(volume, node)

    def publish(self, volume: VolumeTruth, node: str) -> None:
        holders_before = volume.holders - {node}
        conflict = node not in volume.holders and len(holders_before) >= volume.writers
        # A conflicting publish is answered FAILED_PRECONDITION, or ABORTED within the grace period: both refuse.
        # So may one that only waiting VolumeAttachments stand against: the driver cannot tell them from writers.
        blockers = (volume.holders | volume.waiting) - {node}
        refusal = (_Code.FAILED_PRECONDITION, _Code.ABORTED) if len(blockers) >= volume.writers else ()
        request = csi_pb2.ControllerPublishVolumeRequest(
            volume_id=volume.name,
            node_id=node,
            volume_capability=volume.capability(),
            volume_context=volume.volume_context,
        )
        self._cluster.attaching(volume, node)
        answer = self._send(volume, f"publish {node}", self._ctl.controller.ControllerPublishVolume, request, refusal)
        self._ledger.intent_done("publish")
        if answer is not None and answer.code == _Code.OK:
            if conflict:
                held = sorted(holders_before)
                self._ledger.violation(
                    "double writer", volume.name, f"ControllerPublish to {node} OK while {held} held it"
                )
            volume.holders.add(node)
            volume.waiting.discard(node)
            self._cluster.attached(volume, node)
        elif node in volume.holders:
            pass  # a repeat for a node that holds the volume: it still does
        elif answer is not None and self._rng.random() < 0.5:
            volume.waiting.add(node)  # refused; the VolumeAttachment stays and the attacher tries again later
        else:
            self.unpublish(volume, node)  # the refused VolumeAttachment is deleted: the attacher detaches

    def unpublish(self, volume: VolumeTruth, node: str) -> None:
        request = csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.name, node_id=node)
        self._cluster.detaching(volume, node)
        answer = self._send(
            volume, f"unpublish {node}", self._ctl.controller.ControllerUnpublishVolume, request, (_Code.NOT_FOUND,)
        )
        if answer is not None:
            volume.holders.discard(node)
            volume.waiting.discard(node)
            self._cluster.detached(volume, node)
        self._ledger.intent_done("unpublish")

    def _send(
        self,
        volume: VolumeTruth,
        label: str,
        method: Callable[..., Any],
        request: Any,
        definitive: Sequence[grpc.StatusCode],
    ) -> Answer | None:
        """Send ``request`` until it gets OK or one of the ``definitive`` answers; None (a wedge) when it never
        does: past ``INTENT_DEADLINE`` or after ``WRONG_ANSWERS_BEFORE_WEDGE`` answers no sidecar would settle for."""
        deadline = time.monotonic() + INTENT_DEADLINE
        wrong: list[str] = []
        backoff = 0.05
        while True:
            if not self._ctl.running.wait(max(0.0, deadline - time.monotonic())):
                break
            generation = self._ctl.generation
            self._ledger.attempted()
            try:
                answer = Answer(_Code.OK, "", method(request, timeout=CALL_TIMEOUT))
            except grpc.RpcError as exc:
                answer = Answer(exc.code(), exc.details() or "", None)
            self._ledger.note(volume, generation, f"{label} -> {answer.code.name} {answer.details[:160]}".rstrip())
            if answer.code == _Code.OK or answer.code in definitive:
                return answer
            if answer.code not in TRANSIENT:
                wrong.append(f"{answer.code.name}: {answer.details}")
                if len(wrong) >= WRONG_ANSWERS_BEFORE_WEDGE:
                    break
            if time.monotonic() > deadline:
                break
            self._stop.wait(backoff)  # the sidecars' backoff between retries, not a wait for a condition
            backoff = min(0.5, backoff * 2)
        self._ledger.violation("wedged", volume.name, f"{label} never answered definitively: {wrong[-1:] or 'timeout'}")
        return None


# ---- the comparison -------------------------------------------------------------------------------------------


def compare_with_rds(volumes: Sequence[VolumeTruth], state: dict[str, Any]) -> list[Violation]:
    """Every volume the client was told exists is on the RDS, with its file and the size it was told; nothing
    else is: no disk and no file under the base path that belongs to no such volume."""
    disks = {str(d["slot"]): d for d in state["disks"] if d.get("type") == "file"}
    files = {str(f["name"]).lstrip("/"): f for f in state["files"] if f.get("type") != "directory"}
    claimed_disks: set[str] = set()
    claimed_files: set[str] = set()
    found: list[Violation] = []
    for volume in volumes:
        if volume.state != "exists":
            continue
        disk = disks.get(volume.name)
        if disk is None:
            found.append(Violation("missing volume", volume.name, "told it exists; no disk on the RDS"))
            continue
        claimed_disks.add(volume.name)
        file_name = str(disk.get("file-path", "")).lstrip("/")
        claimed_files.add(file_name)
        if file_name not in files:
            found.append(Violation("missing volume", volume.name, f"its disk is there, its file {file_name} is not"))
        if int(disk.get("size", 0)) != volume.capacity:
            found.append(Violation("missing volume", volume.name, f"size {disk.get('size')} != told {volume.capacity}"))
    known = {v.name: v for v in volumes}
    for slot in sorted(set(disks) - claimed_disks):
        truth = known.get(slot)
        said = "told it was deleted" if truth is not None and truth.ever_created else "never told it exists"
        found.append(Violation("orphan disk", slot, f"disk {slot} on the RDS; the client was {said}"))
    for name in sorted(set(files) - claimed_files):
        if not name.startswith(BASE_PATH + "/"):
            continue
        slot = name.rsplit("/", 1)[-1].removesuffix(".img")
        found.append(Violation("orphan file", slot, f"file {name} on the RDS without a volume the client knows"))
    return found


# ---- the run --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixSettings:
    seed: int
    kills: int
    workers: int = 4
    volumes_per_worker: int = 3  # every third one a RWX block volume (live migration)
    intents_between_kills: tuple[int, int] = (3, 14)
    max_kill_delay: float = 0.6  # past the last counted intent, so kills land inside in-flight RPCs
    startup_kill_share: float = 0.2  # restarts whose new process is killed again while it starts
    max_startup_kill_delay: float = 1.0  # about a start on a busy machine: the kill lands anywhere in it


@dataclass
class CrashReport:
    settings: MatrixSettings
    ledger: Ledger
    kills: int = 0
    startup_kills: int = 0
    start_seconds: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    violations: list[Violation] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(v.kind for v in self.violations)

    def summary(self) -> str:
        ledger = self.ledger
        intents = ", ".join(f"{k} {n}" for k, n in sorted(ledger.intents.items()))
        found = ", ".join(f"{n} {k}" for k, n in sorted(self.counts().items())) or "nothing"
        return (
            f"crash matrix seed={self.settings.seed} (RDS_CSI_CRASH_SEED={self.settings.seed} replays it): "
            f"{self.kills} kills ({self.startup_kills} while starting), "
            f"{sum(ledger.intents.values())} intents ({intents}), {ledger.attempts} RPCs, "
            f"{self.elapsed:.1f}s (of which restarts {sum(self.start_seconds):.1f}s, "
            f"the slowest {max(self.start_seconds, default=0):.1f}s); "
            f"found: {found}"
        )

    def details(self, per_kind: int = 8, volumes_shown: int = 6, history_lines: int = 120) -> str:
        lines = [self.summary()]
        for kind in sorted(self.counts()):
            of_kind = [v for v in self.violations if v.kind == kind]
            lines.extend(f"  {kind}: {v.volume}: {v.detail}" for v in of_kind[:per_kind])
            if len(of_kind) > per_kind:
                lines.append(f"  ... and {len(of_kind) - per_kind} more {kind}")
        for name in list(dict.fromkeys(v.volume for v in self.violations))[:volumes_shown]:
            truth = self.ledger.volumes.get(name)
            if truth is not None:
                lines.append(f"history of {name} (last {history_lines}):")
                lines.extend(f"    {entry}" for entry in truth.history[-history_lines:])
        return "\n".join(lines)


def make_volumes(settings: MatrixSettings) -> list[list[VolumeTruth]]:
    rng = random.Random(settings.seed)
    return [
        [
            VolumeTruth(f"pvc-{uuid.UUID(int=rng.getrandbits(128), version=4)}", multi_writer=i % 3 == 2)
            for i in range(settings.volumes_per_worker)
        ]
        for _ in range(settings.workers)
    ]


def controller_argv(sim: SimulatorProcess, socket_path: Path, extra: Sequence[str]) -> list[str]:
    return [
        "plugin", "--mode", "controller", "--endpoint", f"unix://{socket_path}", "--metrics-address", "off",
        "--log-level", "warning", "--routeros-transport", "ssh", "--routeros-address", "127.0.0.1",
        "--routeros-ssh-port", str(sim.ssh_port), "--routeros-ssh-key", str(sim.key_file),
        "--routeros-host-key", sim.host_key, *extra,
    ]  # fmt: skip


def run_crash_matrix(
    sim: SimulatorProcess,
    directory: Path,
    settings: MatrixSettings,
    extra_flags: Sequence[str],
    cluster: StaticCluster,
) -> CrashReport:
    """Run the mix with ``settings.kills`` kills against ``sim``; then a last restart, probes of what the client
    holds, a comparison with the RDS, and a full teardown compared again (everything deleted, nothing left)."""
    groups = make_volumes(settings)
    ledger = Ledger([v for group in groups for v in group])
    report = CrashReport(settings, ledger)
    socket_path = directory / "ctl.sock"
    zygote = PluginZygote(kubernetes=isinstance(cluster, KubeCluster))
    controller = KilledController(
        zygote, controller_argv(sim, socket_path, extra_flags), socket_path, directory / "plugin.log"
    )
    rng = random.Random(settings.seed)
    pause = threading.Event()

    def restart() -> None:
        _kill(controller, ledger)
        controller.spawn()
        if rng.random() < settings.startup_kill_share:
            pause.wait(rng.uniform(0.0, settings.max_startup_kill_delay))  # wherever its start has got to
            _kill(controller, ledger)
            report.startup_kills += 1
            controller.spawn()
        controller.wait_ready()

    try:
        controller.spawn()
        controller.wait_ready()
        workers = [Worker(controller, cluster, ledger, group, f"{settings.seed}-{i}") for i, group in enumerate(groups)]
        for worker in workers:
            worker.start()
        for _ in range(settings.kills):
            target = ledger.done + rng.randint(*settings.intents_between_kills)
            if not ledger.wait_done(target, INTENT_DEADLINE * 2):
                raise TimeoutError(f"no progress towards {target} intents:\n{report.details()}")
            pause.wait(rng.uniform(0.0, settings.max_kill_delay))  # a random point inside the RPCs in flight
            restart()
        for worker in workers:
            worker.stop(INTENT_DEADLINE * 2)
            if worker.error is not None:
                raise worker.error
        restart()  # once more at rest: what the client holds must survive a restart
        prober = Worker(controller, cluster, ledger, [], f"{settings.seed}-probe")
        for volume in ledger.volumes.values():
            _probe_holds(prober, volume)
        report.violations.extend(compare_with_rds(list(ledger.volumes.values()), sim.state()))
        for volume in ledger.volumes.values():
            for node in sorted(volume.holders | volume.waiting):
                prober.unpublish(volume, node)
            if volume.state != "absent":
                prober.delete(volume)
        report.violations.extend(compare_with_rds(list(ledger.volumes.values()), sim.state()))
    finally:
        report.kills = controller.kills
        report.start_seconds = controller.start_seconds
        controller.close()
        zygote.close()
        cluster.close()
    # The teardown's comparison finds again what the first one found: each finding once.
    report.violations = list(dict.fromkeys([*ledger.violations, *report.violations]))
    report.elapsed = time.monotonic() - ledger.started
    return report


def _kill(controller: KilledController, ledger: Ledger) -> None:
    status = controller.kill()
    if status != -signal.SIGKILL:
        ledger.violation("crashed", "-", f"plugin had exited with {status} before the kill")


def _probe_holds(prober: Worker, volume: VolumeTruth) -> None:
    """After a restart at rest: a node beyond the volume's writers is refused, and so is deleting a held volume."""
    if volume.state != "exists" or len(volume.holders) < volume.writers:
        return
    outsider = next(n for n in NODES if n not in volume.holders)
    prober.publish(volume, outsider)
    prober.delete(volume)
