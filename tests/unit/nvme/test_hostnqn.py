"""The host NQN: read from nvme-cli's file, or generated once and kept; a bad file is never replaced."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.nvme import (
    HostNqn,
    HostNqnOrigin,
    load_or_create_host_nqn,
    machine_uuid,
    parse_host_nqn_file,
    uuid_host_nqn,
)

pytestmark = pytest.mark.native  # rds_csi.nvme loads the sysfs scanner and ioctls of rds_csi._native

DMI_UUID = "4c4c4544-0037-3510-8052-b4c04f4e3832"
RANDOM_UUID = uuid.UUID("0f923194-922a-4dd8-b376-c2c6ccb56dd8")
VENDOR_NQN = "nqn.2014-08.com.example:host:worker-1"


def product_uuid_file(directory: Path, text: str) -> Path:
    path = directory / "product_uuid"
    path.write_text(text)
    return path


def load(path: Path, product_uuid: Path) -> HostNqn:
    return load_or_create_host_nqn(path, product_uuid_file=product_uuid, random_uuid=lambda: RANDOM_UUID)


@pytest.mark.parametrize("text", [VENDOR_NQN, VENDOR_NQN + "\n", f"  {VENDOR_NQN}\r\n\n"])
def test_parse_host_nqn_file_surrounding_whitespace_is_ignored(text: str) -> None:
    assert parse_host_nqn_file(text) == VENDOR_NQN


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "worker-1",  # the grammar's other refusals are validate_host_nqn's own tests
        f"{VENDOR_NQN}\n{VENDOR_NQN}\n",  # two identities: which one would the kernel use?
    ],
)
def test_parse_host_nqn_file_anything_but_one_nqn_is_invalid_argument(text: str) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        parse_host_nqn_file(text)
    assert info.value.message.startswith("host_nqn")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DMI_UUID + "\n", uuid.UUID(DMI_UUID)),
        (DMI_UUID.upper(), uuid.UUID(DMI_UUID)),
        ("00000000-0000-0000-0000-000000000000\n", None),
        ("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\n", None),
        ("ffffffff-ffff-ffff-ffff-ffffffffffff", None),
        ("Not Settable", None),
        ("", None),
    ],
)
def test_machine_uuid_firmware_placeholders_and_garbage_are_none(text: str, expected: uuid.UUID | None) -> None:
    assert machine_uuid(text) == expected


def test_uuid_host_nqn_is_the_nvme_defined_lower_case_form() -> None:
    value = uuid.UUID(DMI_UUID.upper())
    assert uuid_host_nqn(value) == f"nqn.2014-08.org.nvmexpress:uuid:{DMI_UUID}"


def test_existing_file_is_read_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "hostnqn"
    path.write_text(VENDOR_NQN + "\n")
    before = path.stat()
    host = load(path, product_uuid_file(tmp_path, DMI_UUID))
    assert host == HostNqn(VENDOR_NQN, HostNqnOrigin.FILE)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_missing_file_is_generated_from_the_dmi_uuid_and_saved_for_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "nvme" / "hostnqn"  # the directory does not exist yet either
    dmi = product_uuid_file(tmp_path, DMI_UUID + "\n")
    first = load(path, dmi)
    expected = f"nqn.2014-08.org.nvmexpress:uuid:{DMI_UUID}"
    assert first == HostNqn(expected, HostNqnOrigin.DMI)
    assert path.read_text() == expected + "\n"  # one line, as nvme-cli writes it
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["hostnqn"]  # no temporary file left behind
    assert load(path, dmi) == HostNqn(expected, HostNqnOrigin.FILE)


@pytest.mark.parametrize("dmi_text", ["00000000-0000-0000-0000-000000000000", None])
def test_missing_file_without_a_usable_dmi_uuid_gets_a_random_one_that_is_kept(
    tmp_path: Path, dmi_text: str | None
) -> None:
    path = tmp_path / "hostnqn"
    dmi = product_uuid_file(tmp_path, dmi_text) if dmi_text is not None else tmp_path / "no-dmi-on-this-machine"
    expected = f"nqn.2014-08.org.nvmexpress:uuid:{RANDOM_UUID}"
    assert load(path, dmi) == HostNqn(expected, HostNqnOrigin.RANDOM)
    # A later start draws another random uuid, but reads the saved one instead.
    later = load_or_create_host_nqn(path, product_uuid_file=dmi, random_uuid=uuid.uuid4)
    assert later == HostNqn(expected, HostNqnOrigin.FILE)


@pytest.mark.parametrize("content", ["", "worker-1\n", "nqn.2014-08.org.nvmexpress:uuid:1234\n"])
def test_present_but_invalid_file_is_failed_precondition_and_never_replaced(tmp_path: Path, content: str) -> None:
    path = tmp_path / "hostnqn"
    path.write_text(content)
    with pytest.raises(errors.FailedPrecondition) as info:
        load(path, product_uuid_file(tmp_path, DMI_UUID))
    assert str(path) in info.value.message
    assert "host_nqn" in info.value.message
    assert path.read_text() == content


def test_unwritable_location_raises_os_error_and_creates_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "nvme"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(OSError):
        load(blocker / "hostnqn", product_uuid_file(tmp_path, DMI_UUID))
    assert blocker.read_text() == "a file where the directory should be"
