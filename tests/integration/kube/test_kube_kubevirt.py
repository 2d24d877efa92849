"""Strict migration mode's question, asked of the API emulator over the real client: is KubeVirt live-migrating a
VMI that uses this volume's claim to this node?"""

from __future__ import annotations

import pytest

from rds_csi.kube import KubeApi
from rds_csi.kube.kubevirt import KubeVirtMigrations
from tests.integration.kube.conftest import DRIVER
from tests.kube_emulator import KubeEmulator

NS = "vms"
PV = "pvc-0001"
CLAIM = "disk-vm1"
MIGRATIONS_PATH = f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachineinstancemigrations"


@pytest.fixture
def migrations(emulator: KubeEmulator, api: KubeApi) -> KubeVirtMigrations:
    emulator.add_pv(PV, driver=DRIVER, claim=(NS, CLAIM), access_modes=("ReadWriteMany",), volume_mode="Block")
    emulator.add_vmi(NS, "vm1", [CLAIM], "node-a")
    return KubeVirtMigrations(api)


@pytest.mark.parametrize(
    "phase", ["", "Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running"]
)
def test_migration_in_progress_of_the_claims_vmi_is_allowed(
    emulator: KubeEmulator, migrations: KubeVirtMigrations, phase: str
) -> None:
    emulator.add_vmim(NS, "mig1", "vm1", phase)
    assert migrations.migration_allowed(PV, "node-b") is True


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_migration_is_not_allowed(emulator: KubeEmulator, migrations: KubeVirtMigrations, phase: str) -> None:
    emulator.add_vmim(NS, "mig1", "vm1", phase, target_node="node-b")
    assert migrations.migration_allowed(PV, "node-b") is False


def test_migration_stops_counting_once_it_finishes(emulator: KubeEmulator, migrations: KubeVirtMigrations) -> None:
    emulator.add_vmim(NS, "mig1", "vm1", "Running", target_node="node-b")
    assert migrations.migration_allowed(PV, "node-b") is True
    emulator.set_vmim_phase(NS, "mig1", "Failed")
    assert migrations.migration_allowed(PV, "node-b") is False


def test_without_any_migration_is_not_allowed(migrations: KubeVirtMigrations) -> None:
    assert migrations.migration_allowed(PV, "node-b") is False


def test_migration_of_a_vmi_using_another_claim_is_not_allowed(
    emulator: KubeEmulator, migrations: KubeVirtMigrations
) -> None:
    emulator.add_vmi(NS, "vm2", ["disk-vm2"], "node-a")
    emulator.add_vmim(NS, "mig2", "vm2", "Running", target_node="node-b")
    assert migrations.migration_allowed(PV, "node-b") is False


def test_migration_in_another_namespace_is_not_allowed(emulator: KubeEmulator, migrations: KubeVirtMigrations) -> None:
    emulator.add_vmi("other", "vm1", [CLAIM], "node-a")
    emulator.add_vmim("other", "mig1", "vm1", "Running", target_node="node-b")
    assert migrations.migration_allowed(PV, "node-b") is False


def test_vmi_using_the_claim_through_a_data_volume_is_allowed(
    emulator: KubeEmulator, migrations: KubeVirtMigrations
) -> None:
    emulator.add_vmi(NS, "vm1", [], "node-a", data_volumes=[CLAIM])
    emulator.add_vmim(NS, "mig1", "vm1", "Scheduled")
    assert migrations.migration_allowed(PV, "node-b") is True


@pytest.mark.parametrize("mirrored", [True, False], ids=["on-the-migration", "on-the-vmi-only"])
def test_migration_to_another_target_node_is_not_allowed(
    emulator: KubeEmulator, migrations: KubeVirtMigrations, mirrored: bool
) -> None:
    emulator.add_vmim(NS, "mig1", "vm1", "TargetReady", target_node="node-c", mirrored=mirrored)
    assert migrations.migration_allowed(PV, "node-b") is False
    assert migrations.migration_allowed(PV, "node-c") is True


def test_target_left_by_an_earlier_migration_is_ignored(emulator: KubeEmulator, migrations: KubeVirtMigrations) -> None:
    emulator.add_vmim(NS, "mig-old", "vm1", "Succeeded", target_node="node-c", mirrored=False)
    emulator.add_vmim(NS, "mig-new", "vm1", "Pending")
    assert migrations.migration_allowed(PV, "node-b") is True


def test_migration_to_the_node_the_vmi_runs_on_is_not_allowed(
    emulator: KubeEmulator, migrations: KubeVirtMigrations
) -> None:
    emulator.add_vmim(NS, "mig1", "vm1", "Pending")
    assert migrations.migration_allowed(PV, "node-a") is False


def test_migration_of_a_vanished_vmi_is_not_allowed(emulator: KubeEmulator, migrations: KubeVirtMigrations) -> None:
    emulator.add_vmim(NS, "mig1", "vm-gone", "Running")
    assert migrations.migration_allowed(PV, "node-b") is False


def test_unknown_pv_or_pv_without_claim_is_not_allowed(emulator: KubeEmulator, migrations: KubeVirtMigrations) -> None:
    emulator.add_pv("pvc-unbound", driver=DRIVER)
    emulator.add_vmim(NS, "mig1", "vm1", "Running")
    assert migrations.migration_allowed("pvc-missing", "node-b") is False
    assert migrations.migration_allowed("pvc-unbound", "node-b") is False


def test_cluster_without_kubevirt_is_not_allowed(emulator: KubeEmulator, migrations: KubeVirtMigrations) -> None:
    emulator.fail_next(1, 404, path=MIGRATIONS_PATH)
    assert migrations.migration_allowed(PV, "node-b") is False


@pytest.mark.parametrize("status", [503, 403])
def test_api_trouble_is_unknown(emulator: KubeEmulator, migrations: KubeVirtMigrations, status: int) -> None:
    emulator.add_vmim(NS, "mig1", "vm1", "Running")
    emulator.fail_next(1, status, path=MIGRATIONS_PATH)
    assert migrations.migration_allowed(PV, "node-b") is None
    emulator.down = True
    assert migrations.migration_allowed(PV, "node-b") is None


def test_unreadable_vmi_is_unknown_unless_another_migration_proves_it(
    emulator: KubeEmulator, migrations: KubeVirtMigrations
) -> None:
    emulator.add_vmi(NS, "vm2", [CLAIM], "node-a")
    emulator.add_vmim(NS, "mig1", "vm1", "Running")
    vm1 = f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachineinstances/vm1"
    emulator.fail_next(1, 503, path=vm1)
    assert migrations.migration_allowed(PV, "node-b") is None
    emulator.add_vmim(NS, "mig2", "vm2", "Running")
    emulator.fail_next(1, 503, path=vm1)
    assert migrations.migration_allowed(PV, "node-b") is True
