"""The static-mode state file: what it keeps, how it is written, and what it refuses to read.

Real files in a temp directory; the wall clock is a function the test moves, the manager's clock a ManualClock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rds_csi._native import AccessKind, AttachmentTable, Migration, NodeAttachment, VolumeEntry, available_backends
from rds_csi.attach import AttachmentManager, AttachmentStateFile, PublishRequest, VolumeAttachmentFact
from rds_csi.attach.store import LOCK_FILE, STATE_FILE
from rds_csi.core import errors
from rds_csi.core.clock import ManualClock
from rds_csi.observability.metrics import Metrics

pytestmark = pytest.mark.native

EPOCH = 1_700_000_000.0


class Wall:
    """A wall clock the test sets."""

    def __init__(self, now: float = EPOCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class NoFacts:
    def volume_attachment_exists(self, volume_id: str, node_id: str) -> bool | None:
        return None

    def node_exists(self, node_id: str) -> bool | None:
        return True


class NoEvents:
    def post(self, volume_id: str, reason: str, message: str, *, warning: bool = False) -> None:
        pass


def state_file(directory: Path, clock: ManualClock | None = None, wall: Wall | None = None) -> AttachmentStateFile:
    return AttachmentStateFile(directory, clock or ManualClock(), wall or Wall())


def manager_on(store: AttachmentStateFile, clock: ManualClock, table: AttachmentTable) -> AttachmentManager:
    manager = AttachmentManager(table, NoFacts(), NoEvents(), clock, Metrics(), journal=store)
    manager.rebuild(store.open())
    return manager


@pytest.fixture(params=sorted(available_backends()))
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def new_table(backend: str) -> AttachmentTable:
    table: AttachmentTable = available_backends()[backend].AttachmentTable(stripes=4)
    return table


def test_a_new_directory_has_no_attachments_and_gets_created(tmp_path: Path) -> None:
    store = state_file(tmp_path / "state" / "controller")
    assert store.open() == []
    assert (tmp_path / "state" / "controller" / LOCK_FILE).exists()
    assert not store.path.exists()  # nothing is written until something is attached


def test_records_come_back_with_their_age_after_a_restart(tmp_path: Path) -> None:
    first_clock, wall = ManualClock(500.0), Wall()
    store = state_file(tmp_path, first_clock, wall)
    store.open()
    records = [
        VolumeAttachmentFact("pvc-a", "node-1", 400.0, True, readonly=True),  # 100 s old
        VolumeAttachmentFact("pvc-m", "node-1", 300.0, True, multi_node_block=True),
        VolumeAttachmentFact("pvc-m", "node-2", 450.0, False, True, 120.0, readonly=False),
    ]
    store.save(records)
    store.close()
    wall.now += 3600  # an hour later, on a machine whose monotonic clock started again
    later = state_file(tmp_path, ManualClock(20.0), wall)
    assert later.open() == [
        VolumeAttachmentFact("pvc-a", "node-1", 20.0 - 3700, True, readonly=True),
        VolumeAttachmentFact("pvc-m", "node-1", 20.0 - 3800, True, multi_node_block=True),
        VolumeAttachmentFact("pvc-m", "node-2", 20.0 - 3650, False, True, 120.0, readonly=False),
    ]
    document = json.loads(later.path.read_text())
    assert (document["format"], document["version"]) == ("rds-csi-attachments", 1)
    assert document["attachments"][0]["attached_at"] == EPOCH - 100


def test_a_wall_clock_set_back_never_dates_an_attachment_in_the_future(tmp_path: Path) -> None:
    wall = Wall()
    store = state_file(tmp_path, ManualClock(100.0), wall)
    store.open()
    store.save([VolumeAttachmentFact("pvc-a", "node-1", 100.0, True)])
    store.close()
    wall.now -= 600
    (record,) = state_file(tmp_path, ManualClock(7.0), wall).open()
    assert record.created_at == 7.0


def test_the_manager_table_survives_a_restart_exactly(tmp_path: Path, backend: str) -> None:
    clock, wall = ManualClock(1000.0), Wall()
    store = state_file(tmp_path, clock, wall)
    manager = manager_on(store, clock, new_table(backend))
    manager.publish(PublishRequest("pvc-a", "node-1", readonly=True))
    manager.publish(PublishRequest("pvc-m", "node-1", multi_node_block=True))
    clock.advance(50)
    manager.publish(PublishRequest("pvc-m", "node-2", multi_node_block=True, migration_timeout=600))
    manager.publish(PublishRequest("pvc-gone", "node-3"))
    manager.unpublish("pvc-gone", "node-3")
    store.close()  # the process ends

    restarted_clock = ManualClock(1050.0)  # the same instant, seen by a new process
    table = new_table(backend)
    restarted = AttachmentManager(table, NoFacts(), NoEvents(), restarted_clock, Metrics())
    restarted.rebuild(state_file(tmp_path, restarted_clock, wall).open())
    assert table.get("pvc-a") == VolumeEntry("pvc-a", AccessKind.SINGLE_NODE, (NodeAttachment("node-1", 1000.0),))
    assert table.get("pvc-m") == VolumeEntry(
        "pvc-m",
        AccessKind.MULTI_NODE_BLOCK,
        (NodeAttachment("node-1", 1000.0), NodeAttachment("node-2", 1050.0)),
        Migration("node-1", "node-2", 1050.0, 1650.0),
    )
    assert table.get("pvc-gone") is None
    with pytest.raises(errors.AlreadyExists, match="readonly=True"):
        restarted.publish(PublishRequest("pvc-a", "node-1", readonly=False))
    with pytest.raises(errors.FailedPrecondition):
        restarted.publish(PublishRequest("pvc-a", "node-2"))


def test_a_publish_is_not_answered_ok_when_its_attachment_cannot_be_written(tmp_path: Path, backend: str) -> None:
    clock = ManualClock()
    store = state_file(tmp_path / "state", clock)
    manager = manager_on(store, clock, new_table(backend))
    shutil.rmtree(tmp_path / "state")  # the disk under the state directory is gone
    with pytest.raises(errors.Unavailable, match="could not record attachments"):
        manager.publish(PublishRequest("pvc-a", "node-1"))
    (tmp_path / "state").mkdir()
    manager.publish(PublishRequest("pvc-a", "node-1"))  # the retry writes it, then answers OK
    document = json.loads((tmp_path / "state" / STATE_FILE).read_text())
    assert [(a["volume_id"], a["node_id"]) for a in document["attachments"]] == [("pvc-a", "node-1")]


def test_an_unpublish_is_written_before_it_is_answered(tmp_path: Path, backend: str) -> None:
    clock = ManualClock()
    store = state_file(tmp_path, clock)
    manager = manager_on(store, clock, new_table(backend))
    manager.publish(PublishRequest("pvc-a", "node-1"))
    manager.unpublish("pvc-a", "node-1")
    assert json.loads(store.path.read_text())["attachments"] == []


def test_a_second_controller_cannot_share_the_directory(tmp_path: Path) -> None:
    first = state_file(tmp_path)
    first.open()
    with pytest.raises(errors.FailedPrecondition, match="in use by another rds-csi controller"):
        state_file(tmp_path).open()
    first.close()
    assert state_file(tmp_path).open() == []


def test_a_temp_file_left_by_an_interrupted_write_is_removed_and_never_read(tmp_path: Path) -> None:
    store = state_file(tmp_path)
    store.open()
    store.save([VolumeAttachmentFact("pvc-a", "node-1", 1000.0, True)])
    store.close()
    leftover = tmp_path / ".attachments.k2j3h4.tmp"
    leftover.write_text('{"format": "rds-csi-attachments", "version": 1, "attachments": [')
    (record,) = state_file(tmp_path).open()
    assert record.volume_id == "pvc-a"
    assert not leftover.exists()


VALID = {"volume_id": "pvc-a", "node_id": "node-1", "attached_at": EPOCH, "attached": True,
         "access": "single-node", "migration_timeout": 300.0, "readonly": None}  # fmt: skip


def document(*attachments: object, version: object = 1) -> str:
    return json.dumps({"format": "rds-csi-attachments", "version": version, "attachments": list(attachments)})


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "not JSON"),
        (b"\x00\x17garbage", "not JSON"),
        (b'{"format": "rds-csi-attachme', "not JSON"),
        (b"[]", "not an rds-csi attachment state file"),
        (b'{"version": 1, "attachments": []}', "not an rds-csi attachment state file"),
        (document(version=2).encode(), "version 2; this rds-csi reads version 1"),
        (document(version="1").encode(), "version '1'"),
        (b'{"format": "rds-csi-attachments", "version": 1, "attachments": {}}', '"attachments" is not a list'),
        (document("pvc-a").encode(), "attachment 0 is not an object"),
        (document({**VALID, "attached_at": "yesterday"}).encode(), "attachment 0: attached_at must be a finite"),
        (document({**VALID, "attached_at": True}).encode(), "attached_at must be a finite number"),
        (document(VALID, {**VALID, "node_id": ""}).encode(), "attachment 1: node_id must be a non-empty string"),
        (document({**VALID, "access": "everyone"}).encode(), "access must be one of"),
        (document({**VALID, "attached": "yes"}).encode(), "attached must be true or false"),
        (document({**VALID, "readonly": 0}).encode(), "readonly must be true or false"),
        (document(VALID, VALID).encode(), "listed twice"),
    ],
)
def test_a_state_file_this_version_did_not_write_stops_the_start(tmp_path: Path, content: bytes, why: str) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    store = state_file(tmp_path)
    with pytest.raises(errors.FailedPrecondition) as info:
        store.open()
    assert why in info.value.message
    assert "refusing to start" in info.value.message
    assert (tmp_path / STATE_FILE).read_bytes() == content  # kept for the operator to look at
    with pytest.raises(errors.FailedPrecondition) as again:  # the failed open released the lock: same answer
        state_file(tmp_path).open()
    assert why in again.value.message


def test_an_unreadable_state_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).mkdir()  # unreadable as a file, whoever we run as
    with pytest.raises(errors.FailedPrecondition, match="cannot read state file"):
        state_file(tmp_path).open()


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from rds_csi.attach import AttachmentStateFile, VolumeAttachmentFact
    from rds_csi.core.clock import ManualClock

    store = AttachmentStateFile(Path(sys.argv[1]), ManualClock())
    store.open()
    states = [
        [VolumeAttachmentFact(f"pvc-{i:04d}", "node-a", 1000.0, True) for i in range(400)],
        [VolumeAttachmentFact(f"pvc-{i:04d}", "node-b", 1000.0, True) for i in range(300)],
    ]
    written = 0
    while True:
        store.save(states[written % 2])
        written += 1
        print(written, flush=True)
    """
)


def test_a_write_killed_at_any_point_leaves_one_whole_state(tmp_path: Path) -> None:
    """SIGKILL a process that rewrites the file in a loop: what is left is one of its states, in full."""
    for attempt, writes in enumerate((1, 3, 7, 12, 20)):
        directory = tmp_path / f"run-{attempt}"
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory)], stdout=subprocess.PIPE, text=True, env=_env()
        )
        assert child.stdout is not None
        for _ in range(writes):  # wait (on the child's own word) until it has written this many
            assert child.stdout.readline(), "the writer stopped"
        child.kill()
        child.wait(10)
        records = state_file(directory).open()
        nodes = {record.node_id for record in records}
        assert (nodes, len(records)) in (({"node-a"}, 400), ({"node-b"}, 300)), (nodes, len(records))
        assert not list(directory.glob(".attachments.*.tmp"))


def _env() -> dict[str, str]:
    source = str(Path(__file__).resolve().parents[3] / "src")
    return {**os.environ, "PYTHONPATH": source + os.pathsep + os.environ.get("PYTHONPATH", "")}
