"""KubeApi through the official client against the emulated API server: reads, error mapping, configuration."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rds_csi.core.errors import Internal, NotFound, RdsCsiError, Unavailable
from rds_csi.kube import ClaimRef, KubeApi, KubeSettings
from rds_csi.kube.api import EventSpec
from tests.integration.kube.conftest import DRIVER, TOKEN
from tests.kube_emulator import KubeEmulator


def test_list_volume_attachments_returns_only_our_attacher_with_list_version(
    emulator: KubeEmulator, api: KubeApi
) -> None:
    ours = emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)
    emulator.add_volume_attachment("pvc-2", "worker-1", "other.csi.example.com")
    emulator.add_volume_attachment("pvc-3", "worker-2", DRIVER, attached=False)
    records, version = api.list_volume_attachments(DRIVER)
    assert sorted((r.volume_id, r.node_id, r.attached) for r in records) == [
        ("pvc-1", "worker-1", True),
        ("pvc-3", "worker-2", False),
    ]
    assert ours in {r.name for r in records}
    assert all(r.created_at.tzinfo is not None and not r.deleting for r in records)
    assert int(version) >= 3


def test_get_volume_attachment_reports_deleting_when_deletion_is_pending(emulator: KubeEmulator, api: KubeApi) -> None:
    name = emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)
    emulator.mark_deleting(name)
    record = api.get_volume_attachment(name)
    assert (record.volume_id, record.deleting) == ("pvc-1", True)


def test_get_missing_volume_attachment_is_not_found(api: KubeApi) -> None:
    with pytest.raises(NotFound):
        api.get_volume_attachment("csi-missing")


def test_node_exists_is_true_for_a_node_and_false_after_its_deletion(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_node("worker-1")
    assert api.node_exists("worker-1") is True
    emulator.delete_node("worker-1")
    assert api.node_exists("worker-1") is False


def test_csi_node_volume_limit_reads_the_kubelets_csinode(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_node("worker-1")
    emulator.add_csinode("worker-1", {"other.csi.example.com": 39, DRIVER: 24})
    emulator.add_csinode("worker-2", {DRIVER: None})
    emulator.add_csinode("worker-3", None)
    assert api.csi_node_volume_limit("worker-1", DRIVER) == 24
    assert api.csi_node_volume_limit("worker-2", DRIVER) is None
    assert api.csi_node_volume_limit("worker-3", DRIVER) is None  # drivers: null, which the client model refuses
    assert api.csi_node_volume_limit("worker-4", DRIVER) is None  # no CSINode at all
    assert ("GET", "/apis/storage.k8s.io/v1/csinodes/worker-1") in emulator.requests()


def test_csi_node_volume_limit_with_the_api_down_is_unavailable(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_csinode("worker-1", {DRIVER: 24})
    emulator.down = True
    with pytest.raises(Unavailable):
        api.csi_node_volume_limit("worker-1", DRIVER)


def test_list_nodes_names_every_node(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_node("worker-1")
    emulator.add_node("worker-2")
    names, _ = api.list_nodes()
    assert sorted(names) == ["worker-1", "worker-2"]


def test_get_pv_reads_its_claim(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_pv("pvc-1", driver=DRIVER, claim=("apps", "data"), claim_uid="uid-1", annotations={"k": "v"})
    info = api.get_pv("pvc-1")
    assert (info.claim_namespace, info.claim_name, info.claim_uid, info.driver) == ("apps", "data", "uid-1", DRIVER)
    assert dict(info.annotations) == {"k": "v"}


def test_get_missing_pv_is_not_found(api: KubeApi) -> None:
    with pytest.raises(NotFound):
        api.get_pv("pvc-missing")


def test_list_pvs_keeps_only_the_driver_volumes(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_pv("pvc-1", driver=DRIVER)
    emulator.add_pv("pvc-2", driver="other.csi.example.com")
    assert [pv.name for pv in api.list_pvs(DRIVER)] == ["pvc-1"]


def test_get_claim_reads_the_uid(emulator: KubeEmulator, api: KubeApi) -> None:
    pvc = emulator.add_pvc("apps", "data")
    assert api.get_claim("apps", "data") == ClaimRef("apps", "data", pvc["metadata"]["uid"])


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (503, Unavailable, "503"),
        (500, Unavailable, "500"),
        (429, Unavailable, "429"),
        (401, Unavailable, "RBAC"),
        (403, Unavailable, "RBAC"),
        (400, Internal, "400"),
    ],
)
def test_api_errors_map_to_domain_errors(
    emulator: KubeEmulator, api: KubeApi, status: int, error: type[RdsCsiError], text: str
) -> None:
    emulator.fail_next(1, status)
    with pytest.raises(error, match=text):
        api.list_volume_attachments(DRIVER)


def test_wrong_token_is_unavailable_with_an_rbac_hint(emulator: KubeEmulator) -> None:
    api = KubeApi(KubeSettings(base_url=emulator.url, token="wrong", request_timeout=2.0))
    with pytest.raises(Unavailable, match="RBAC"):
        api.node_exists("worker-1")


def test_api_server_down_is_unavailable(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.down = True
    with pytest.raises(Unavailable):
        api.node_exists("worker-1")


def test_api_server_unreachable_is_unavailable(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.stop()
    with pytest.raises(Unavailable, match="unreachable"):
        api.list_nodes()


def test_hung_request_is_unavailable_after_its_timeout(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.hang_events = True
    event = EventSpec(ClaimRef("apps", "data"), "Test", "m", False, "test", datetime.now(UTC))
    started = time.monotonic()
    with pytest.raises(Unavailable):
        api.create_event(event, timeout=0.3)
    assert time.monotonic() - started < 2.0


def test_kubeconfig_file_configures_server_and_token(emulator: KubeEmulator, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: emu
  cluster: {{server: "{emulator.url}"}}
users:
- name: driver
  user: {{token: "{TOKEN}"}}
contexts:
- name: emu
  context: {{cluster: emu, user: driver}}
current-context: emu
"""
    )
    emulator.add_node("worker-1")
    api = KubeApi(KubeSettings(kubeconfig=str(kubeconfig)))
    assert api.node_exists("worker-1") is True


def test_pv_info_carries_access_mode_volume_mode_and_context(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_pv(
        "pvc-vm-disk",
        driver=DRIVER,
        access_modes=("ReadWriteMany",),
        volume_mode="Block",
        volume_attributes={"migrationTimeoutSeconds": "600"},
        read_only=True,
    )
    info = api.get_pv("pvc-vm-disk")
    assert info.access_modes == ("ReadWriteMany",)
    assert info.volume_mode == "Block"
    assert info.volume_attributes == {"migrationTimeoutSeconds": "600"}
    assert info.read_only
