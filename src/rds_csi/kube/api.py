"""A thin typed facade over the official Kubernetes client.

Only the calls the driver makes are here. Everything that comes back is turned into small frozen records, and
every failure is mapped once onto ``rds_csi.core.errors``: 404 is ``NotFound`` (or ``False`` where the question is
"does it exist"), anything that says "try later" (connection errors, timeouts, 5xx, 429, 401/403) is
``Unavailable``. Nothing above this module sees a kubernetes model or exception.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from rds_csi.core.deadlines import time_left
from rds_csi.core.errors import Internal, InvalidArgument, NotFound, RdsCsiError, Unavailable

T = TypeVar("T")

# Events are short records; the API server rejects much longer messages and nobody reads past this.
EVENT_MESSAGE_LIMIT = 1024
_ELLIPSIS = "..."
_EPOCH = datetime.fromtimestamp(0, UTC)

MERGE_PATCH = "application/merge-patch+json"

# The server ends each watch after this long; the client then re-watches from the last resourceVersion.
DEFAULT_WATCH_TIMEOUT = 300


class WatchExpired(Unavailable):
    """The resourceVersion a watch started from is too old (HTTP 410 Gone): the caller must list again."""


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """How to reach the API server. An explicit ``base_url`` wins over in-cluster and kubeconfig settings."""

    base_url: str | None = None
    token: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    in_cluster: bool = False
    kubeconfig: str | None = None
    request_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.request_timeout <= 0:
            raise InvalidArgument(f"kube request timeout must be positive, got {self.request_timeout}")


@dataclass(frozen=True, slots=True)
class VolumeAttachmentRecord:
    """One VolumeAttachment. ``volume_id`` is the PV name, which is the CSI volume id for volumes we created."""

    name: str
    volume_id: str
    node_id: str
    attached: bool
    created_at: datetime
    deleting: bool
    attacher: str


@dataclass(frozen=True, slots=True)
class PvInfo:
    name: str
    claim_namespace: str | None
    claim_name: str | None
    driver: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)
    claim_uid: str | None = None
    volume_handle: str | None = None
    access_modes: tuple[str, ...] = ()
    volume_mode: str | None = None  # "Block" or "Filesystem"
    volume_attributes: Mapping[str, str] = field(default_factory=dict)  # the CSI volume_context
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ClaimRef:
    """A PersistentVolumeClaim an event is posted on; ``uid`` binds the event to this incarnation of it."""

    namespace: str
    name: str
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A core/v1 Event, posted once (count 1), about a PVC unless ``kind`` names another object.

    For a cluster-scoped object (``cluster_scoped``) ``claim.namespace`` is only where the event is stored.
    """

    claim: ClaimRef
    reason: str
    message: str
    warning: bool
    component: str
    timestamp: datetime
    kind: str = "PersistentVolumeClaim"
    api_version: str = "v1"
    cluster_scoped: bool = False


@dataclass(frozen=True, slots=True)
class WatchEvent(Generic[T]):
    """``item`` is None for events that only move the resourceVersion (bookmarks, foreign objects)."""

    type: str
    item: T | None
    resource_version: str | None


def truncate_message(message: str, limit: int = EVENT_MESSAGE_LIMIT) -> str:
    if len(message) <= limit:
        return message
    return message[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def volume_attachment_record(va: client.V1VolumeAttachment) -> VolumeAttachmentRecord:
    """Convert a VolumeAttachment; ``Internal`` if it names no volume (nothing we could have attached)."""
    meta = va.metadata or client.V1ObjectMeta()
    name = meta.name or ""
    volume_id = _attached_volume(va)
    if volume_id is None:
        raise Internal(f"VolumeAttachment {name!r} names no persistent volume")
    return VolumeAttachmentRecord(
        name=name,
        volume_id=volume_id,
        node_id=va.spec.node_name,
        attached=bool(va.status.attached) if va.status is not None else False,
        created_at=meta.creation_timestamp or _EPOCH,
        deleting=meta.deletion_timestamp is not None,
        attacher=va.spec.attacher,
    )


def _attached_volume(va: client.V1VolumeAttachment) -> str | None:
    source = va.spec.source
    if source.persistent_volume_name:
        return str(source.persistent_volume_name)
    inline = source.inline_volume_spec
    if inline is not None and inline.csi is not None and inline.csi.volume_handle:
        return str(inline.csi.volume_handle)
    return None


def pv_info(pv: client.V1PersistentVolume) -> PvInfo:
    meta = pv.metadata or client.V1ObjectMeta()
    spec = pv.spec or client.V1PersistentVolumeSpec()
    claim = spec.claim_ref
    return PvInfo(
        name=meta.name or "",
        claim_namespace=claim.namespace if claim is not None else None,
        claim_name=claim.name if claim is not None else None,
        driver=spec.csi.driver if spec.csi is not None else None,
        annotations=dict(meta.annotations or {}),
        claim_uid=claim.uid if claim is not None else None,
        volume_handle=spec.csi.volume_handle if spec.csi is not None else None,
        access_modes=tuple(spec.access_modes or ()),
        volume_mode=spec.volume_mode,
        volume_attributes=dict((spec.csi.volume_attributes or {}) if spec.csi is not None else {}),
        read_only=bool(spec.csi.read_only) if spec.csi is not None else False,
    )


def csi_node_volume_limit(csi_node: Mapping[str, Any], driver: str) -> int | None:
    """The attach limit in a CSINode (as the API server's JSON) for ``driver``: its entry's ``allocatable.count``,
    which the kubelet copies from the node plugin's NodeGetInfo. None when the driver has no entry there (its node
    plugin has not registered) or the entry no count (it reported no limit)."""
    spec = csi_node.get("spec")
    drivers = spec.get("drivers") if isinstance(spec, Mapping) else None
    for entry in drivers if isinstance(drivers, list) else ():
        if not isinstance(entry, Mapping) or entry.get("name") != driver:
            continue
        allocatable = entry.get("allocatable")
        count = allocatable.get("count") if isinstance(allocatable, Mapping) else None
        if count is None:
            return None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise Internal(f"the CSINode entry of {driver} has allocatable.count {count!r}, not a volume count")
        return count
    return None


def _translate(what: str, error: Exception) -> RdsCsiError:
    if isinstance(error, ApiException):
        status = int(error.status or 0)
        detail = f"{what}: HTTP {status} {error.reason or ''}".rstrip()
        if status == 404:
            return NotFound(f"{what}: not found")
        if status == 410:
            return WatchExpired(f"{what}: resource version expired (HTTP 410 Gone)")
        if status in (401, 403):
            return Unavailable(
                f"{detail}: the API server refused the driver's credentials; check its service account and RBAC"
                " rules (controller: get/list/watch volumeattachments, nodes, persistentvolumes, create events;"
                " node plugin: get and patch nodes)"
            )
        if status in (0, 429) or status >= 500:
            return Unavailable(detail)
        return Internal(detail)
    if isinstance(error, urllib3.exceptions.HTTPError | OSError):
        return Unavailable(f"{what}: API server unreachable: {error}")
    # The client validates answers against its models (pydantic); a malformed answer is not retryable.
    return Internal(f"{what}: unexpected answer: {error}")


_CLIENT_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


def _client_configuration(settings: KubeSettings) -> client.Configuration:
    cfg = client.Configuration()
    try:
        if settings.base_url is None and settings.in_cluster:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        elif settings.base_url is None:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=settings.kubeconfig, client_configuration=cfg
            )
    except (ConfigException, OSError) as error:
        raise InvalidArgument(f"cannot configure the Kubernetes client: {error}") from error
    if settings.base_url is not None:
        cfg.host = settings.base_url.rstrip("/")
    if settings.token is not None:
        cfg.api_key = {"authorization": f"Bearer {settings.token}"}
    if settings.ca_file is not None:
        cfg.ssl_ca_cert = settings.ca_file
    if settings.insecure:
        cfg.verify_ssl = False
    # One quiet retry hides a pooled keep-alive connection the server closed; more would only delay the
    # Unavailable answer that callers turn into "cannot tell".
    cfg.retries = urllib3.Retry(total=1, read=0, redirect=0, status=0)
    return cfg


class WatchStream(Generic[T]):
    """One watch request. Iterate for events; ``close()`` from another thread ends the iteration promptly."""

    def __init__(
        self,
        what: str,
        func: Callable[..., Any],
        convert: Callable[[Any], T | None],
        *,
        resource_version: str,
        timeout_seconds: int,
        request_timeout: float,
    ) -> None:
        self._what = what
        self._func = func
        self._convert = convert
        self._resource_version = resource_version
        self._timeout_seconds = timeout_seconds
        self._request_timeout = request_timeout
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._closed = False

    def close(self) -> None:
        """Idempotent; safe to call again if the first call raced the request being sent."""
        self._closed = True
        self._watch.stop()  # type: ignore[no-untyped-call]

    def __iter__(self) -> Iterator[WatchEvent[T]]:
        events = self._watch.stream(  # type: ignore[no-untyped-call]
            self._func,
            resource_version=self._resource_version,
            timeout_seconds=self._timeout_seconds,
            # Reads stall only if the server vanished without closing: give it the watch length and a margin.
            _request_timeout=(self._request_timeout, self._timeout_seconds + self._request_timeout),
        )
        try:
            for event in events:
                if self._closed:
                    return
                yield self._event(event)
        except _CLIENT_ERRORS as error:
            if self._closed:
                return
            raise _translate(self._what, error) from error

    def _event(self, event: Mapping[str, Any]) -> WatchEvent[T]:
        raw = event.get("raw_object")
        version = None
        if isinstance(raw, Mapping):
            version = (raw.get("metadata") or {}).get("resourceVersion")
        kind = str(event.get("type", ""))
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return WatchEvent(kind, None, version)
        return WatchEvent(kind, self._convert(event["object"]), version)


class KubeApi:
    """The Kubernetes calls of the driver. Thread-safe: one instance is shared by watchers, events and facts."""

    def __init__(self, settings: KubeSettings) -> None:
        self._settings = settings
        self._client = client.ApiClient(_client_configuration(settings))
        self._core = client.CoreV1Api(self._client)
        self._storage = client.StorageV1Api(self._client)
        self._custom = client.CustomObjectsApi(self._client)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def _call(self, what: str, func: Callable[[], T]) -> T:
        try:
            return func()
        except _CLIENT_ERRORS as error:
            raise _translate(what, error) from error

    @property
    def _timeout(self) -> float:
        return self._settings.request_timeout

    def list_volume_attachments(self, attacher: str) -> tuple[list[VolumeAttachmentRecord], str]:
        """The VolumeAttachments of ``attacher`` and the list's resourceVersion (to watch from)."""
        result = self._call(
            "list volumeattachments", lambda: self._storage.list_volume_attachment(_request_timeout=self._timeout)
        )
        records = [
            volume_attachment_record(va)
            for va in result.items
            if va.spec.attacher == attacher and _attached_volume(va) is not None
        ]
        return records, _list_version(result)

    def get_volume_attachment(self, name: str) -> VolumeAttachmentRecord:
        va = self._call(
            f"get volumeattachment {name}",
            lambda: self._storage.read_volume_attachment(name, _request_timeout=self._timeout),
        )
        return volume_attachment_record(va)

    def watch_volume_attachments(
        self, resource_version: str, timeout_seconds: int = DEFAULT_WATCH_TIMEOUT
    ) -> WatchStream[VolumeAttachmentRecord]:
        return WatchStream(
            "watch volumeattachments",
            self._storage.list_volume_attachment,
            lambda va: volume_attachment_record(va) if _attached_volume(va) is not None else None,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            request_timeout=self._timeout,
        )

    def node_exists(self, name: str) -> bool:
        try:
            self._call(f"get node {name}", lambda: self._core.read_node(name, _request_timeout=self._timeout))
        except NotFound:
            return False
        return True

    def csi_node_volume_limit(self, name: str, driver: str) -> int | None:
        """``driver``'s attach limit on node ``name`` (see ``csi_node_volume_limit``); None also when the node has
        no CSINode. One GET, bounded by the request timeout and by what is left of the CSI call's deadline."""
        timeout = time_left(self._timeout)
        what = f"get csinode {name}"
        try:
            # Read as JSON, not through the client's model: that refuses a CSINode whose drivers list is null.
            response: Any = self._call(
                what,
                lambda: self._storage.read_csi_node(name, _request_timeout=timeout, _preload_content=False),
            )
        except NotFound:
            return None
        try:
            csi_node = json.loads(response.data)
        except ValueError as error:
            raise Internal(f"{what}: the answer is not JSON: {error}") from error
        if not isinstance(csi_node, dict):
            raise Internal(f"{what}: the answer is not an object")
        return csi_node_volume_limit(csi_node, driver)

    def node_annotations(self, name: str) -> dict[str, str]:
        """The Node's annotations (``NotFound`` when there is no such Node)."""
        node = self._call(f"get node {name}", lambda: self._core.read_node(name, _request_timeout=self._timeout))
        meta = node.metadata
        return dict((meta.annotations if meta is not None else None) or {})

    def annotate_node(self, name: str, annotations: Mapping[str, str | None]) -> None:
        """Set (or, for None, remove) these annotations of the Node and leave every other one alone.

        A JSON merge patch, so no read-modify-write race with other writers; ``NotFound`` when there is no Node.
        """
        body = {"metadata": {"annotations": dict(annotations)}}
        self._call(
            f"patch node {name} annotations",
            lambda: self._core.patch_node(
                name,
                body,
                # The client would otherwise pick application/json-patch+json, which takes a list of operations.
                _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            ),
        )

    def list_nodes(self) -> tuple[list[str], str]:
        result = self._call("list nodes", lambda: self._core.list_node(_request_timeout=self._timeout))
        names = [node.metadata.name for node in result.items if node.metadata is not None and node.metadata.name]
        return names, _list_version(result)

    def watch_nodes(self, resource_version: str, timeout_seconds: int = DEFAULT_WATCH_TIMEOUT) -> WatchStream[str]:
        return WatchStream(
            "watch nodes",
            self._core.list_node,
            lambda node: node.metadata.name if node.metadata is not None else None,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            request_timeout=self._timeout,
        )

    def get_pv(self, name: str) -> PvInfo:
        pv = self._call(
            f"get persistentvolume {name}",
            lambda: self._core.read_persistent_volume(name, _request_timeout=self._timeout),
        )
        return pv_info(pv)

    def list_pvs(self, driver: str) -> list[PvInfo]:
        """The PVs provisioned by ``driver`` (CSI source with that driver name)."""
        result = self._call(
            "list persistentvolumes", lambda: self._core.list_persistent_volume(_request_timeout=self._timeout)
        )
        return [info for info in map(pv_info, result.items) if info.driver == driver]

    def get_claim(self, namespace: str, name: str) -> ClaimRef:
        pvc = self._call(
            f"get persistentvolumeclaim {namespace}/{name}",
            lambda: self._core.read_namespaced_persistent_volume_claim(name, namespace, _request_timeout=self._timeout),
        )
        return ClaimRef(namespace, name, pvc.metadata.uid if pvc.metadata is not None else None)

    def list_custom_objects(self, group: str, version: str, namespace: str, plural: str) -> list[dict[str, Any]]:
        """The objects of a custom resource in ``namespace``, as the API server's JSON (no typed model exists)."""
        result = self._call(
            f"list {plural}.{group} in {namespace}",
            lambda: self._custom.list_namespaced_custom_object(
                group, version, namespace, plural, _request_timeout=self._timeout
            ),
        )
        items = result.get("items") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise Internal(f"list {plural}.{group} in {namespace}: the answer has no list of items")
        return [item for item in items if isinstance(item, dict)]

    def get_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        what = f"get {plural}.{group} {namespace}/{name}"
        result = self._call(
            what,
            lambda: self._custom.get_namespaced_custom_object(
                group, version, namespace, plural, name, _request_timeout=self._timeout
            ),
        )
        if not isinstance(result, dict):
            raise Internal(f"{what}: the answer is not an object")
        return result

    def create_event(self, event: EventSpec, timeout: float | None = None) -> None:
        claim = event.claim
        body = client.CoreV1Event(
            # The recorder's own naming rule (object name + nanosecond clock) keeps names unique without a read.
            metadata=client.V1ObjectMeta(name=f"{claim.name}.{time.time_ns():x}", namespace=claim.namespace),
            involved_object=client.V1ObjectReference(
                api_version=event.api_version,
                kind=event.kind,
                namespace=None if event.cluster_scoped else claim.namespace,
                name=claim.name,
                uid=claim.uid,
            ),
            type="Warning" if event.warning else "Normal",
            reason=event.reason,
            message=truncate_message(event.message),
            source=client.V1EventSource(component=event.component),
            first_timestamp=event.timestamp,
            last_timestamp=event.timestamp,
            count=1,
        )
        self._call(
            f"create event {event.reason} on {claim.namespace}/{claim.name}",
            lambda: self._core.create_namespaced_event(
                claim.namespace, body, _request_timeout=timeout if timeout is not None else self._timeout
            ),
        )


def _list_version(result: Any) -> str:
    meta = result.metadata
    version = meta.resource_version if meta is not None else None
    if not version:
        raise Internal("the API server answered a list without a resourceVersion")
    return str(version)
