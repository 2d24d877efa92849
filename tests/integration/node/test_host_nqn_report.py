"""The Node annotation patch through the official client, and the reporter that keeps the host NQN there."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from rds_csi.core.errors import NotFound
from rds_csi.kube import KubeApi
from rds_csi.nvme import HOST_NQN_ANNOTATION, HostNqnReporter, ReportSchedule
from tests.integration.kube.conftest import TOKEN
from tests.kube_emulator import KubeEmulator
from tests.support import wait_until

NQN = "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0037-3510-8052-b4c04f4e3832"
FAST = ReportSchedule(recheck_interval=60, initial_backoff=0.01, max_backoff=0.05)


def node_patches(emulator: KubeEmulator) -> int:
    return emulator.requests().count(("PATCH", "/api/v1/nodes/worker-1"))


def test_annotate_node_sets_and_removes_only_the_named_annotations(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_node("worker-1", annotations={"team": "storage", "old": "x"})
    api.annotate_node("worker-1", {"new": "y", "old": None})
    assert api.node_annotations("worker-1") == {"team": "storage", "new": "y"}


def test_annotate_missing_node_is_not_found(api: KubeApi) -> None:
    with pytest.raises(NotFound):
        api.annotate_node("worker-9", {"a": "b"})


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json-patch+json", [{"op": "add", "path": "/metadata/labels/a", "value": "b"}], 415),
        ("application/merge-patch+json", {"spec": {"unschedulable": True}}, 422),
        ("application/merge-patch+json", {"metadata": {"annotations": {"a": 1}}}, 400),
    ],
)
def test_emulator_refuses_node_patches_it_does_not_model(
    emulator: KubeEmulator, content_type: str, body: object, status: int
) -> None:
    emulator.add_node("worker-1")
    request = urllib.request.Request(
        f"{emulator.url}/api/v1/nodes/worker-1",
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Content-Type": content_type, "Authorization": f"Bearer {TOKEN}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == status
    node = emulator.get("nodes", "worker-1")
    assert node is not None
    assert node["metadata"]["annotations"] == {}  # nothing was half-applied


def test_reporter_writes_only_when_the_annotation_is_missing_or_wrong(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_node("worker-1")
    reporter = HostNqnReporter(api, "worker-1", NQN, FAST)
    assert reporter.ensure() is True
    assert reporter.ensure() is False
    assert node_patches(emulator) == 1  # a correct annotation costs a read, never a write
    emulator.annotate_node("worker-1", {HOST_NQN_ANNOTATION: "nqn.2014-08.com.example:stale"})
    assert reporter.ensure() is True
    assert api.node_annotations("worker-1")[HOST_NQN_ANNOTATION] == NQN
    assert reporter.writes == 2


def test_reporter_retries_refused_requests_until_the_api_server_accepts(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.add_node("worker-1")
    emulator.fail_next(3, 403)  # e.g. the RBAC rules are applied after the DaemonSet
    reporter = HostNqnReporter(api, "worker-1", NQN, FAST)
    reporter.start()
    try:
        assert reporter.reported.wait(5)
    finally:
        assert reporter.stop()
    assert api.node_annotations("worker-1")[HOST_NQN_ANNOTATION] == NQN
    assert reporter.writes == 1


def test_reporter_stops_promptly_while_backing_off(emulator: KubeEmulator, api: KubeApi) -> None:
    emulator.down = True
    reporter = HostNqnReporter(api, "worker-1", NQN, ReportSchedule(initial_backoff=300, max_backoff=300))
    reporter.start()
    try:
        assert wait_until(lambda: bool(emulator.requests())), "the first attempt is made at once"
    finally:
        assert reporter.stop(timeout=5)  # well before the 300 s backoff ends
    assert not reporter.reported.is_set()
