"""The host ID: read from nvme-cli's file, or derived from the host NQN once and kept; a bad file is never
replaced."""

from __future__ import annotations

import logging
import stat
import uuid
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.nvme import HostId, HostIdOrigin, host_nqn_uuid, load_or_create_host_id, parse_host_id_file

pytestmark = pytest.mark.native  # rds_csi.nvme loads the sysfs scanner and ioctls of rds_csi._native

NQN_UUID = "4c4c4544-0037-3510-8052-b4c04f4e3832"
UUID_NQN = f"nqn.2014-08.org.nvmexpress:uuid:{NQN_UUID}"
VENDOR_NQN = "nqn.2014-08.com.example:host:worker-1"
RANDOM_UUID = uuid.UUID("0f923194-922a-4dd8-b376-c2c6ccb56dd8")
OTHER_ID = "9a1f0c3e-5b7d-4e21-8c6a-2f4d8e0b1a73"


def load(path: Path, host_nqn: str) -> HostId:
    return load_or_create_host_id(path, host_nqn, random_uuid=lambda: RANDOM_UUID)


@pytest.mark.parametrize("text", [NQN_UUID, NQN_UUID + "\n", f"  {NQN_UUID.upper()}\r\n\n"])
def test_parse_host_id_file_is_the_lower_case_uuid_whatever_the_whitespace(text: str) -> None:
    assert parse_host_id_file(text) == NQN_UUID


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "worker-1",
        "4c4c4544003735108052b4c04f4e3832",  # uuid.UUID takes bare hex; the kernel's hostid= option does not
        "{4c4c4544-0037-3510-8052-b4c04f4e3832}",
        "urn:uuid:4c4c4544-0037-3510-8052-b4c04f4e3832",
        f"{NQN_UUID}\n{OTHER_ID}\n",  # two identities: which one would the kernel use?
    ],
)
def test_parse_host_id_file_anything_but_one_dashed_uuid_is_invalid_argument(text: str) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        parse_host_id_file(text)
    assert info.value.message.startswith("host_id")


@pytest.mark.parametrize(
    ("host_nqn", "expected"),
    [
        (UUID_NQN, NQN_UUID),
        (UUID_NQN.upper().replace("NQN.2014-08.ORG.NVMEXPRESS:UUID:", "nqn.2014-08.org.nvmexpress:uuid:"), NQN_UUID),
        (VENDOR_NQN, None),
        ("nqn.2014-08.org.nvmexpress:uuid:1234", None),
    ],
)
def test_host_nqn_uuid_is_the_uuid_of_the_uuid_form_only(host_nqn: str, expected: str | None) -> None:
    assert host_nqn_uuid(host_nqn) == expected


def test_missing_file_with_a_uuid_host_nqn_gets_that_uuid_saved_for_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "nvme" / "hostid"  # the directory does not exist yet either
    assert load(path, UUID_NQN) == HostId(NQN_UUID, HostIdOrigin.HOST_NQN)
    assert path.read_text() == NQN_UUID + "\n"  # one line, as nvme-cli writes it
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["hostid"]  # no temporary file left behind
    assert load(path, UUID_NQN) == HostId(NQN_UUID, HostIdOrigin.FILE)


def test_missing_file_with_a_vendor_host_nqn_gets_a_random_uuid_that_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "hostid"
    assert load(path, VENDOR_NQN) == HostId(str(RANDOM_UUID), HostIdOrigin.RANDOM)
    # A later start would draw another random uuid, but reads the saved one instead.
    later = load_or_create_host_id(path, VENDOR_NQN, random_uuid=uuid.uuid4)
    assert later == HostId(str(RANDOM_UUID), HostIdOrigin.FILE)


def test_existing_file_is_read_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "hostid"
    path.write_text(NQN_UUID.upper() + "\n")
    before = path.stat()
    assert load(path, UUID_NQN) == HostId(NQN_UUID, HostIdOrigin.FILE)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert path.read_text() == NQN_UUID.upper() + "\n"


def test_existing_file_that_disagrees_with_a_uuid_host_nqn_is_kept_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # nvme-cli on this host sends the same pair, and connections made with it exist: rewriting it would break them.
    path = tmp_path / "hostid"
    path.write_text(OTHER_ID + "\n")
    caplog.set_level(logging.WARNING, logger="rds_csi")
    assert load(path, UUID_NQN) == HostId(OTHER_ID, HostIdOrigin.FILE)
    assert path.read_text() == OTHER_ID + "\n"
    assert [r.getMessage() for r in caplog.records] == ["nvme.host_id_differs_from_host_nqn"]


def test_existing_file_with_a_vendor_host_nqn_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "hostid"
    path.write_text(OTHER_ID + "\n")
    caplog.set_level(logging.WARNING, logger="rds_csi")
    assert load(path, VENDOR_NQN) == HostId(OTHER_ID, HostIdOrigin.FILE)
    assert caplog.records == []


@pytest.mark.parametrize("content", ["", "worker-1\n", "1234-5678\n"])
def test_present_but_invalid_file_is_failed_precondition_and_never_replaced(tmp_path: Path, content: str) -> None:
    path = tmp_path / "hostid"
    path.write_text(content)
    with pytest.raises(errors.FailedPrecondition) as info:
        load(path, UUID_NQN)
    assert str(path) in info.value.message
    assert "host_id" in info.value.message
    assert path.read_text() == content


def test_unwritable_location_raises_os_error_and_creates_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "nvme"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(OSError):
        load(blocker / "hostid", UUID_NQN)
    assert blocker.read_text() == "a file where the directory should be"
