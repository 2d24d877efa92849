"""A Kubernetes API server emulator: a real HTTP server that speaks enough of the REST protocol for the official
client to list, get, watch, delete and patch the objects the driver reads, and to post events.

It is a test double of Kubernetes, so it computes what Kubernetes computes (VolumeAttachment names, resource
versions, 410 Gone for compacted history) on its own, without importing the code under test. KubeVirt's
VirtualMachineInstances and their migrations are served as custom objects (``kubevirt.io/v1``); CSINodes
(``storage.k8s.io/v1``) as the kubelet registers them, one per node, listing each driver with its attach limit. A
Node PATCH is
served as a merge patch of its labels and annotations (anything else is refused, never half-applied). Faults:
``down`` (503 for everything), ``fail_next(n, status)``, ``hang_events`` (event POSTs wait until released),
``drop_watches()`` (cut open watch streams mid-flight) and ``compact()`` (forget history: old watches get 410).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Obj = dict[str, Any]


@dataclass(frozen=True)
class _Resource:
    collection: str
    api_version: str
    kind: str
    namespaced: bool


NODES = _Resource("nodes", "v1", "Node", namespaced=False)
PVS = _Resource("persistentvolumes", "v1", "PersistentVolume", namespaced=False)
PVCS = _Resource("persistentvolumeclaims", "v1", "PersistentVolumeClaim", namespaced=True)
VAS = _Resource("volumeattachments", "storage.k8s.io/v1", "VolumeAttachment", namespaced=False)
CSINODES = _Resource("csinodes", "storage.k8s.io/v1", "CSINode", namespaced=False)
VMIS = _Resource("virtualmachineinstances", "kubevirt.io/v1", "VirtualMachineInstance", namespaced=True)
VMIMS = _Resource(
    "virtualmachineinstancemigrations", "kubevirt.io/v1", "VirtualMachineInstanceMigration", namespaced=True
)
_KUBEVIRT = r"^/apis/kubevirt\.io/v1/namespaces/(?P<ns>[^/]+)/"

_ROUTES: list[tuple[re.Pattern[str], _Resource]] = [
    (re.compile(r"^/api/v1/nodes(?:/(?P<name>[^/]+))?$"), NODES),
    (re.compile(r"^/api/v1/persistentvolumes(?:/(?P<name>[^/]+))?$"), PVS),
    (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/persistentvolumeclaims(?:/(?P<name>[^/]+))?$"), PVCS),
    (re.compile(r"^/apis/storage\.k8s\.io/v1/volumeattachments(?:/(?P<name>[^/]+)(?P<status>/status)?)?$"), VAS),
    (re.compile(r"^/apis/storage\.k8s\.io/v1/csinodes(?:/(?P<name>[^/]+))?$"), CSINODES),
    (re.compile(_KUBEVIRT + r"virtualmachineinstances(?:/(?P<name>[^/]+))?$"), VMIS),
    (re.compile(_KUBEVIRT + r"virtualmachineinstancemigrations(?:/(?P<name>[^/]+))?$"), VMIMS),
]
_EVENTS = re.compile(r"^/(?:api/v1|apis/events\.k8s\.io/v1)/namespaces/(?P<ns>[^/]+)/events$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, message: str, reason: str | None = None) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or HTTPStatus(code).phrase.replace(" ", ""),
        "code": code,
    }


def _merge(target: Obj, patch: Obj) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class _Gone(Exception):
    """A watch asked for history that was compacted away."""


class KubeEmulator:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.down = False
        self._cond = threading.Condition()
        self._store: dict[str, dict[str, Obj]] = {
            r.collection: {} for r in (NODES, PVS, PVCS, VAS, CSINODES, VMIS, VMIMS)
        }
        self._events: list[Obj] = []
        self._history: list[tuple[int, str, str, Obj]] = []  # (resourceVersion, collection, type, object)
        self._rv = 1
        self._oldest_rv = 1  # watches from a version below this get 410 Gone
        self._last_change: dict[str, int] = {}  # collection -> resourceVersion of its newest change
        self._drop_generation = 0
        self._open_watches = 0
        self._failures: list[tuple[int, str | None]] = []  # (status, only for this path)
        self._events_released = threading.Event()
        self._events_released.set()
        self._requests: list[tuple[str, str]] = []
        self._connections: set[socket.socket] = set()
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kube-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._events_released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for conn in list(self._connections):
            _shutdown(conn)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # seeding ---------------------------------------------------------------------------------------------

    def add_node(self, name: str, annotations: dict[str, str] | None = None) -> Obj:
        meta: Obj = {"name": name, "annotations": dict(annotations or {})}
        return self._put(NODES, None, {"metadata": meta, "spec": {}, "status": {}})

    def delete_node(self, name: str) -> None:
        self._delete(NODES, None, name)

    def annotate_node(self, name: str, annotations: dict[str, str | None]) -> None:
        """What ``kubectl annotate node`` does: set these annotations, remove those given as None."""
        self._patch(NODES, None, name, {"metadata": {"annotations": annotations}})

    def add_csinode(self, node: str, drivers: Mapping[str, int | None] | None) -> Obj:
        """The CSINode the kubelet keeps for ``node``, owned by its Node: one entry per registered driver with the
        attach limit its node plugin reported (``allocatable.count``; None: it reported none, and the entry has no
        ``allocatable``). ``drivers`` None is a nil list, which the API server serializes as null."""
        node_obj = self.get(NODES.collection, node)
        meta: Obj = {"name": node}
        if node_obj is not None:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_obj["metadata"]["uid"]}
            ]
        entries: list[Obj] | None = None
        if drivers is not None:
            entries = []
            for driver, count in drivers.items():
                entry: Obj = {"name": driver, "nodeID": node, "topologyKeys": None}
                if count is not None:
                    entry["allocatable"] = {"count": count}
                entries.append(entry)
        return self._put(CSINODES, None, {"metadata": meta, "spec": {"drivers": entries}})

    def add_pv(
        self,
        name: str,
        *,
        driver: str,
        claim: tuple[str, str] | None = None,
        claim_uid: str | None = None,
        volume_handle: str | None = None,
        annotations: dict[str, str] | None = None,
        access_modes: tuple[str, ...] = ("ReadWriteOnce",),
        volume_mode: str = "Filesystem",
        volume_attributes: dict[str, str] | None = None,
        read_only: bool = False,
    ) -> Obj:
        csi: Obj = {"driver": driver, "volumeHandle": volume_handle or name, "readOnly": read_only}
        if volume_attributes:
            csi["volumeAttributes"] = dict(volume_attributes)
        spec: Obj = {
            "capacity": {"storage": "1Gi"},
            "accessModes": list(access_modes),
            "volumeMode": volume_mode,
            "persistentVolumeReclaimPolicy": "Delete",
            "csi": csi,
        }
        if claim is not None:
            spec["claimRef"] = {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": claim[0],
                                "name": claim[1], "uid": claim_uid}  # fmt: skip
        meta: Obj = {"name": name, "annotations": dict(annotations or {})}
        return self._put(PVS, None, {"metadata": meta, "spec": spec, "status": {"phase": "Bound"}})

    def delete_pv(self, name: str) -> None:
        self._delete(PVS, None, name)

    def add_pvc(self, namespace: str, name: str, *, volume_name: str | None = None) -> Obj:
        spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        if volume_name is not None:
            spec["volumeName"] = volume_name
        obj = {"metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": {"phase": "Bound"}}
        return self._put(PVCS, namespace, obj)

    def add_volume_attachment(
        self,
        volume: str,
        node: str,
        attacher: str,
        attached: bool = True,
        *,
        volume_handle: str | None = None,
        name: str | None = None,
    ) -> str:
        """Create the VolumeAttachment Kubernetes would create for ``volume`` (a PV name) on ``node``.

        Kubernetes names it after the CSI volume handle, which is the PV name unless ``volume_handle`` says so;
        ``name`` overrides that, as other tooling creating VolumeAttachments might.
        """
        if name is None:
            digest = hashlib.sha256(f"{volume_handle or volume}{attacher}{node}".encode()).hexdigest()
            name = f"csi-{digest}"
        self._put(VAS, None, {
            "metadata": {"name": name},
            "spec": {"attacher": attacher, "nodeName": node, "source": {"persistentVolumeName": volume}},
            "status": {"attached": attached},
        })  # fmt: skip
        return name

    def set_attached(self, name: str, attached: bool) -> None:
        self._patch(VAS, None, name, {"status": {"attached": attached}})

    def mark_deleting(self, name: str) -> None:
        """What a DELETE does to an object that still has finalizers: it stays, with a deletionTimestamp."""
        self._patch(VAS, None, name, {"metadata": {"deletionTimestamp": _now()}})

    def delete_volume_attachment(self, name: str) -> None:
        self._delete(VAS, None, name)

    def add_vmi(
        self, namespace: str, name: str, claims: Sequence[str], node: str, *, data_volumes: Sequence[str] = ()
    ) -> Obj:
        """A running VirtualMachineInstance on ``node`` with a disk per claim and per DataVolume."""
        volumes = [{"name": f"disk-{claim}", "persistentVolumeClaim": {"claimName": claim}} for claim in claims]
        volumes += [{"name": f"dv-{dv}", "dataVolume": {"name": dv}} for dv in data_volumes]
        obj = {"metadata": {"name": name}, "spec": {"volumes": volumes},
               "status": {"phase": "Running", "nodeName": node}}  # fmt: skip
        return self._put(VMIS, namespace, obj)

    def add_vmim(
        self, namespace: str, name: str, vmi: str, phase: str, target_node: str | None = None, *, mirrored: bool = True
    ) -> Obj:
        """A VirtualMachineInstanceMigration of ``vmi``. With ``target_node`` KubeVirt has chosen the target: it is
        recorded in the VMI's ``status.migrationState`` (with this migration's uid) and, unless ``mirrored`` is
        false (older KubeVirt releases), copied into the migration's own status."""
        status: Obj = {"phase": phase}
        if target_node is not None and mirrored:
            status["migrationState"] = {"targetNode": target_node}
        migration = self._put(
            VMIMS, namespace, {"metadata": {"name": name}, "spec": {"vmiName": vmi}, "status": status}
        )
        if target_node is not None:
            state = {"migrationUid": migration["metadata"]["uid"], "targetNode": target_node}
            self._patch(VMIS, namespace, vmi, {"status": {"migrationState": state}})
        return migration

    def set_vmim_phase(self, namespace: str, name: str, phase: str) -> None:
        self._patch(VMIMS, namespace, name, {"status": {"phase": phase}})

    def get(self, collection: str, name: str, namespace: str | None = None) -> Obj | None:
        with self._cond:
            obj = self._store[collection].get(_key(namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def events(self) -> list[Obj]:
        with self._cond:
            return copy.deepcopy(self._events)

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request served so far, in order."""
        with self._cond:
            return list(self._requests)

    # faults ----------------------------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503, path: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``path`` only, if given) with ``status``."""
        with self._cond:
            self._failures.extend([(status, path)] * count)

    @property
    def hang_events(self) -> bool:
        return not self._events_released.is_set()

    @hang_events.setter
    def hang_events(self, value: bool) -> None:
        if value:
            self._events_released.clear()
        else:
            self._events_released.set()

    def drop_watches(self) -> None:
        """Cut every open watch stream without the closing chunk, as a dying connection would."""
        with self._cond:
            self._drop_generation += 1
            self._cond.notify_all()

    def compact(self) -> None:
        """Forget the change history: a watch from any version seen so far gets 410 Gone."""
        with self._cond:
            self._rv += 1
            self._oldest_rv = self._rv
            self._history.clear()

    def open_watches(self) -> int:
        """Watch streams being served now (opened and not yet ended or cut)."""
        with self._cond:
            return self._open_watches

    def volume_attachments_version(self) -> int:
        """The resourceVersion of the newest VolumeAttachment change (0 before any): a watcher that has seen it
        has seen every change to them."""
        with self._cond:
            return self._last_change.get(VAS.collection, 0)

    def watch_count(self) -> int:
        """Watch requests served so far (a reconnecting client adds one per attempt)."""
        with self._cond:
            return sum(1 for method, path in self._requests if method == "WATCH")

    # store -----------------------------------------------------------------------------------------------

    def _record(self, resource: _Resource, kind: str, obj: Obj) -> None:
        self._history.append((self._rv, resource.collection, kind, copy.deepcopy(obj)))
        self._last_change[resource.collection] = self._rv
        self._cond.notify_all()

    def _put(self, resource: _Resource, namespace: str | None, obj: Obj) -> Obj:
        with self._cond:
            self._rv += 1
            meta = obj.setdefault("metadata", {})
            if namespace is not None:
                meta["namespace"] = namespace
            key = _key(namespace, meta["name"])
            existing = self._store[resource.collection].get(key)
            meta.setdefault("uid", existing["metadata"]["uid"] if existing else str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", existing["metadata"]["creationTimestamp"] if existing else _now())
            meta["resourceVersion"] = str(self._rv)
            full = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
            self._store[resource.collection][key] = full
            self._record(resource, "MODIFIED" if existing else "ADDED", full)
            return copy.deepcopy(full)

    def _patch(self, resource: _Resource, namespace: str | None, name: str, patch: Obj) -> Obj | None:
        with self._cond:
            obj = self._store[resource.collection].get(_key(namespace, name))
            if obj is None:
                return None
            _merge(obj, patch)
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self._record(resource, "MODIFIED", obj)
            return copy.deepcopy(obj)

    def _delete(self, resource: _Resource, namespace: str | None, name: str) -> Obj | None:
        with self._cond:
            obj = self._store[resource.collection].pop(_key(namespace, name), None)
            if obj is None:
                return None
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self._record(resource, "DELETED", obj)
            return copy.deepcopy(obj)

    def _list(self, resource: _Resource, namespace: str | None) -> Obj:
        with self._cond:
            items = [
                copy.deepcopy(obj)
                for obj in self._store[resource.collection].values()
                if namespace is None or obj["metadata"].get("namespace") == namespace
            ]
            return {
                "apiVersion": resource.api_version,
                "kind": f"{resource.kind}List",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }

    def _create_event(self, namespace: str, body: Obj) -> Obj:
        with self._cond:
            self._rv += 1
            meta = body.setdefault("metadata", {})
            meta["namespace"] = namespace
            meta.setdefault("name", f"{meta.get('generateName', 'event.')}{uuid.uuid4().hex[:10]}")
            meta.update(uid=str(uuid.uuid4()), resourceVersion=str(self._rv), creationTimestamp=_now())
            body.setdefault("apiVersion", "v1")
            body.setdefault("kind", "Event")
            self._events.append(copy.deepcopy(body))
            return body

    def _watch_events(self, resource: _Resource, since: int | None, deadline: float) -> Iterator[Obj | None]:
        """Yield watch events after ``since``; None means "the stream was cut"; ends at the deadline."""
        with self._cond:
            generation = self._drop_generation
            self._open_watches += 1
        try:
            yield from self._stream_events(resource, since, deadline, generation)
        finally:
            with self._cond:
                self._open_watches -= 1

    def _stream_events(
        self, resource: _Resource, since: int | None, deadline: float, generation: int
    ) -> Iterator[Obj | None]:
        with self._cond:
            if since is None:
                cursor = self._rv
                initial = [{"type": "ADDED", "object": copy.deepcopy(o)}
                           for o in self._store[resource.collection].values()]  # fmt: skip
            elif since < self._oldest_rv:
                raise _Gone(f"too old resource version: {since} ({self._oldest_rv})")
            else:
                cursor, initial = since, []
        yield from initial
        while True:
            with self._cond:
                pending: list[Obj] = []
                while not pending:
                    if self._stopping or self._drop_generation != generation:
                        yield None
                        return
                    pending = [{"type": kind, "object": copy.deepcopy(obj)}
                               for rv, collection, kind, obj in self._history
                               if rv > cursor and collection == resource.collection]  # fmt: skip
                    cursor = self._rv
                    if pending:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._cond.wait(remaining)
            yield from pending

    # requests --------------------------------------------------------------------------------------------

    def _admit(self, method: str, path: str, authorization: str | None) -> tuple[int, Obj] | None:
        """A refusal for this request (status, Status body), or None to serve it."""
        with self._cond:
            self._requests.append((method, path))
            if self.down:
                return 503, _status(503, "the API server is down")
            for index, (code, only) in enumerate(self._failures):
                if only is None or only == path:
                    del self._failures[index]
                    return code, _status(code, f"injected failure {code}")
        if self.token is not None and authorization != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized")
        return None


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


# Both merge a map key by key and delete a key patched to null: the same result for labels and annotations.
_MERGE_PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


def _node_patch_refusal(content_type: str, body: Obj) -> tuple[int, Obj] | None:
    """Why a Node PATCH is not served (status, Status body), or None. Only metadata labels and annotations are
    served: anything else fails loudly rather than being half-applied by an emulator that does not model it."""
    media_type = content_type.split(";", 1)[0].strip()
    if media_type not in _MERGE_PATCH_TYPES:
        return 415, _status(415, f"the emulator serves merge patches of Node metadata, not {media_type or 'no type'}")
    metadata = body.get("metadata")
    if set(body) != {"metadata"} or not isinstance(metadata, dict) or not set(metadata) <= {"labels", "annotations"}:
        return 422, _status(422, "the emulator patches only metadata.labels and metadata.annotations of a Node")
    maps = [metadata.get(key, {}) for key in ("labels", "annotations")]
    if not all(isinstance(m, dict) and all(isinstance(v, str | None) for v in m.values()) for m in maps):
        return 400, _status(400, "labels and annotations must map names to strings (or null, to remove them)")
    return None


def _key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace is not None else name


def _shutdown(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def _handler_class(emulator: KubeEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.emulator = emulator
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked watch streams, like the real API server
    emulator: KubeEmulator

    def setup(self) -> None:
        super().setup()
        self.emulator._connections.add(self.connection)

    def finish(self) -> None:
        self.emulator._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # the test output is no place for access logs
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _send(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Obj:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b"{}"
        parsed = json.loads(data or b"{}")
        return parsed if isinstance(parsed, dict) else {}

    def _serve(self, method: str) -> None:
        try:
            self._route(method)
        except OSError:  # the client went away (timed out, or cut the stream itself)
            self.close_connection = True

    def _route(self, method: str) -> None:
        emu = self.emulator
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        watching = method == "GET" and query.get("watch") in ("true", "1")
        body = self._body()
        refusal = emu._admit("WATCH" if watching else method, url.path, self.headers.get("Authorization"))
        if refusal is not None:
            self._send(*refusal)
            return
        event_match = _EVENTS.match(url.path)
        if event_match and method == "POST":
            self._post_event(event_match["ns"], body)
            return
        for pattern, resource in _ROUTES:
            match = pattern.match(url.path)
            if match:
                groups = match.groupdict()
                self._resource(method, resource, groups.get("ns"), groups.get("name"), query=query, body=body)
                return
        self._send(404, _status(404, f"no route for {method} {url.path}"))

    def _post_event(self, namespace: str, body: Obj) -> None:
        emu = self.emulator
        while not emu._events_released.wait(0.05):
            pass
        if emu._stopping:
            return
        self._send(201, emu._create_event(namespace, body))

    def _resource(
        self, method: str, resource: _Resource, namespace: str | None, name: str | None, *, query: dict[str, str],
        body: Obj,
    ) -> None:  # fmt: skip
        emu = self.emulator
        if name is None:
            if method != "GET":
                self._send(405, _status(405, f"{method} of a collection is not served"))
            elif query.get("watch") in ("true", "1"):
                self._watch(resource, query)
            else:
                self._send(200, emu._list(resource, namespace))
            return
        obj: Obj | None
        if method == "GET":
            obj = emu.get(resource.collection, name, namespace)
        elif method == "DELETE" and resource in (NODES, VAS):
            obj = emu._delete(resource, namespace, name)
        elif method == "PATCH" and resource is VAS:
            obj = emu._patch(resource, namespace, name, {"status": body.get("status", {})})
        elif method == "PATCH" and resource is NODES:
            refusal = _node_patch_refusal(self.headers.get("Content-Type", ""), body)
            if refusal is not None:
                self._send(*refusal)
                return
            obj = emu._patch(resource, namespace, name, body)
        else:
            self._send(405, _status(405, f"{method} {resource.collection} is not served"))
            return
        if obj is None:
            self._send(404, _status(404, f'{resource.collection} "{name}" not found'))
        else:
            self._send(200, obj)

    def _watch(self, resource: _Resource, query: dict[str, str]) -> None:
        since = int(query["resourceVersion"]) if query.get("resourceVersion", "0") != "0" else None
        deadline = time.monotonic() + float(query.get("timeoutSeconds", "1800"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in self.emulator._watch_events(resource, since, deadline):
                if event is None:
                    # Cut mid-stream: no terminating chunk, and the connection goes with it.
                    self.close_connection = True
                    _shutdown(self.connection)
                    return
                self._chunk(json.dumps(event).encode() + b"\n")
        except _Gone as gone:
            self._chunk(json.dumps({"type": "ERROR", "object": _status(410, str(gone), "Expired")}).encode() + b"\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
