"""KubeVirt live migrations, the proof strict migration mode (``--require-kubevirt-migration``) asks for.

Without it, a second node attaching a Block RWX volume is taken to be a live migration. In strict mode the second
node is admitted only while a ``VirtualMachineInstanceMigration`` (``kubevirt.io/v1``) that has not finished moves a
``VirtualMachineInstance`` whose volumes include the volume's claim, and, once KubeVirt has picked the target
node, only to that node. Answers are yes, no, or None when the API server cannot tell; the attachment rules
refuse on anything but yes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from rds_csi.core.errors import NotFound, RdsCsiError
from rds_csi.kube.api import KubeApi
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

GROUP: Final = "kubevirt.io"
VERSION: Final = "v1"
MIGRATIONS: Final = "virtualmachineinstancemigrations"
INSTANCES: Final = "virtualmachineinstances"

# Every other phase, including the empty one KubeVirt has not filled in yet and phases newer releases add, is a
# migration still under way.
_FINISHED_PHASES: Final = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class MigrationRecord:
    """One VirtualMachineInstanceMigration. ``target_node`` comes from its ``status.migrationState``, which newer
    KubeVirt releases copy from the VMI; older ones leave it unset and only the VMI's own state names the target."""

    name: str
    uid: str | None
    vmi_name: str
    phase: str
    target_node: str | None

    @property
    def in_progress(self) -> bool:
        return self.phase not in _FINISHED_PHASES


@dataclass(frozen=True, slots=True)
class VmiRecord:
    """One VirtualMachineInstance: the claims its volumes use (a DataVolume's claim carries the DataVolume's name),
    the node it runs on, and the migration its ``status.migrationState`` describes (the latest one, maybe over)."""

    name: str
    claims: frozenset[str]
    node: str | None
    migration_uid: str | None
    migration_target: str | None


def _field(obj: Mapping[str, Any], *path: str) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _text(obj: Mapping[str, Any], *path: str) -> str | None:
    value = _field(obj, *path)
    return value if isinstance(value, str) and value else None


def parse_migration(obj: Mapping[str, Any]) -> MigrationRecord | None:
    """The migration, or None when it names no VMI (such an object can move nothing)."""
    vmi_name = _text(obj, "spec", "vmiName")
    if vmi_name is None:
        return None
    return MigrationRecord(
        name=_text(obj, "metadata", "name") or "",
        uid=_text(obj, "metadata", "uid"),
        vmi_name=vmi_name,
        phase=_text(obj, "status", "phase") or "",
        target_node=_text(obj, "status", "migrationState", "targetNode"),
    )


def parse_vmi(obj: Mapping[str, Any]) -> VmiRecord:
    volumes = _field(obj, "spec", "volumes")
    names = (
        _text(volume, "persistentVolumeClaim", "claimName") or _text(volume, "dataVolume", "name")
        for volume in (volumes if isinstance(volumes, list) else ())
        if isinstance(volume, Mapping)
    )
    return VmiRecord(
        name=_text(obj, "metadata", "name") or "",
        claims=frozenset(name for name in names if name is not None),
        node=_text(obj, "status", "nodeName"),
        migration_uid=_text(obj, "status", "migrationState", "migrationUid"),
        migration_target=_text(obj, "status", "migrationState", "targetNode"),
    )


def migration_target(migration: MigrationRecord, vmi: VmiRecord) -> str | None:
    """The node ``migration`` moves ``vmi`` to, if KubeVirt has chosen it yet.

    The VMI's migration state may still describe an earlier migration; it counts only when it names this one (or
    names none, which leaves the stricter reading)."""
    if migration.target_node is not None:
        return migration.target_node
    if vmi.migration_uid in (None, migration.uid):
        return vmi.migration_target
    return None


def moves_claim_to(migration: MigrationRecord, vmi: VmiRecord, claim: str, target_node: str) -> bool:
    if not migration.in_progress or claim not in vmi.claims:
        return False
    if vmi.node == target_node:  # a migration never lands on the node the VMI already runs on
        return False
    target = migration_target(migration, vmi)
    return target is None or target == target_node


class KubeVirtMigrations:
    """``migration_allowed`` for the attachment manager's strict migration mode, asked of the API server."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api

    def migration_allowed(self, volume_id: str, target_node: str) -> bool | None:
        """True iff a live migration under way moves a VMI using the claim of PV ``volume_id`` to ``target_node``;
        None when the API server cannot tell."""
        try:
            allowed = self._allowed(volume_id, target_node)
        except RdsCsiError as error:
            log_event(_log, "kubevirt.migration.unknown", logging.WARNING, volume_id=volume_id,
                      target_node=target_node, error=error.message)  # fmt: skip
            return None
        log_event(_log, "kubevirt.migration.checked", volume_id=volume_id, target_node=target_node,
                  allowed="unknown" if allowed is None else allowed)  # fmt: skip
        return allowed

    def _allowed(self, volume_id: str, target_node: str) -> bool | None:
        try:
            pv = self._api.get_pv(volume_id)
        except NotFound:
            return False
        if pv.claim_namespace is None or pv.claim_name is None:
            return False
        try:
            listed = self._api.list_custom_objects(GROUP, VERSION, pv.claim_namespace, MIGRATIONS)
        except NotFound:  # the API server serves no KubeVirt: nothing can be migrating
            return False
        migrations = [m for m in map(parse_migration, listed) if m is not None and m.in_progress]
        unknown = False
        for migration in migrations:
            try:
                vmi = parse_vmi(
                    self._api.get_custom_object(GROUP, VERSION, pv.claim_namespace, INSTANCES, migration.vmi_name)
                )
            except NotFound:  # the VMI is gone, so this migration moves nothing
                continue
            except RdsCsiError as error:
                # Another migration may still prove the case; only if none does is the answer "cannot tell".
                log_event(_log, "kubevirt.vmi.unknown", logging.WARNING, migration=migration.name,
                          vmi=migration.vmi_name, error=error.message)  # fmt: skip
                unknown = True
                continue
            if moves_claim_to(migration, vmi, pv.claim_name, target_node):
                return True
        return None if unknown else False
