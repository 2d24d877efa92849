"""KubeAttachmentFacts against the emulated API server: yes, no, and "cannot tell" when the API is down."""

from __future__ import annotations

import pytest

from rds_csi.kube import KubeApi, KubeAttachmentFacts, volume_attachment_name
from tests.integration.kube.conftest import DRIVER
from tests.kube_emulator import KubeEmulator

VA_PATH = "/apis/storage.k8s.io/v1/volumeattachments"


@pytest.fixture
def facts(api: KubeApi) -> KubeAttachmentFacts:
    return KubeAttachmentFacts(api, DRIVER)


def test_volume_attachment_found_by_its_kubernetes_name_without_a_list(
    emulator: KubeEmulator, facts: KubeAttachmentFacts
) -> None:
    emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is True
    expected = f"{VA_PATH}/{volume_attachment_name('pvc-1', DRIVER, 'worker-1')}"
    assert emulator.requests() == [("GET", expected)]


def test_volume_attachment_absent_is_false_after_a_confirming_list(
    emulator: KubeEmulator, facts: KubeAttachmentFacts
) -> None:
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is False
    assert ("GET", VA_PATH) in emulator.requests()


def test_volume_attachment_on_another_node_does_not_count(emulator: KubeEmulator, facts: KubeAttachmentFacts) -> None:
    emulator.add_volume_attachment("pvc-1", "worker-2", DRIVER)
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is False


def test_volume_attachment_of_another_driver_does_not_count(emulator: KubeEmulator, facts: KubeAttachmentFacts) -> None:
    emulator.add_volume_attachment("pvc-1", "worker-1", "other.csi.example.com")
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is False


def test_volume_attachment_under_another_name_is_found_by_the_list(
    emulator: KubeEmulator, facts: KubeAttachmentFacts
) -> None:
    emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER, name="made-by-hand")
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is True


def test_volume_attachment_of_a_pv_named_apart_from_its_handle_is_found(
    emulator: KubeEmulator, facts: KubeAttachmentFacts
) -> None:
    emulator.add_pv("static-data", driver=DRIVER, volume_handle="vol-9")
    emulator.add_volume_attachment("static-data", "worker-1", DRIVER, name="static-attachment")
    assert facts.volume_attachment_exists("vol-9", "worker-1") is True
    assert facts.volume_attachment_exists("vol-8", "worker-1") is False


def test_volume_attachment_being_deleted_still_exists(emulator: KubeEmulator, facts: KubeAttachmentFacts) -> None:
    emulator.mark_deleting(emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER))
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is True


def test_volume_attachment_gone_after_deletion_is_false(emulator: KubeEmulator, facts: KubeAttachmentFacts) -> None:
    emulator.delete_volume_attachment(emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER))
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is False


@pytest.mark.parametrize("status", [503, 500, 429, 403])
def test_volume_attachment_cannot_be_told_when_the_api_fails(
    emulator: KubeEmulator, facts: KubeAttachmentFacts, status: int
) -> None:
    emulator.fail_next(1, status)
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is None


def test_volume_attachment_cannot_be_told_when_the_confirming_list_fails(
    emulator: KubeEmulator, facts: KubeAttachmentFacts
) -> None:
    # The GET by name truthfully says 404; the list that must confirm the absence fails: still no guess.
    emulator.fail_next(1, 503, path=VA_PATH)
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is None


def test_volume_attachment_cannot_be_told_when_the_api_is_down(
    emulator: KubeEmulator, facts: KubeAttachmentFacts
) -> None:
    emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)
    emulator.down = True
    assert facts.volume_attachment_exists("pvc-1", "worker-1") is None


def test_node_exists_yes_then_no_after_deletion(emulator: KubeEmulator, facts: KubeAttachmentFacts) -> None:
    emulator.add_node("worker-1")
    assert facts.node_exists("worker-1") is True
    emulator.delete_node("worker-1")
    assert facts.node_exists("worker-1") is False


def test_node_existence_cannot_be_told_when_the_api_is_down(emulator: KubeEmulator, facts: KubeAttachmentFacts) -> None:
    emulator.add_node("worker-1")
    emulator.down = True
    assert facts.node_exists("worker-1") is None
