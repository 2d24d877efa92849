from __future__ import annotations

import pytest

from rds_csi.core import errors
from rds_csi.csi.proto import csi_pb2
from rds_csi.csi.validation import (
    AccessType,
    CapacityLimits,
    GiB,
    ParameterDefaults,
    UnsupportedCapability,
    allocation_bytes,
    capability_record,
    check_against_record,
    parse_parameters,
    size_satisfies,
    validate_capabilities,
    validate_volume_name,
)

# Reaches rds_csi._native, directly or not: the pure-twin pass runs it too (tests/unit/ci/test_pure_twin_pass.py).
pytestmark = pytest.mark.native

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
MiB = 1 << 20
DEFAULTS = ParameterDefaults(volume_path="/storage-pool/metal-csi", nvme_address="10.0.0.5")


def cap(
    mode: csi_pb2.VolumeCapability.AccessMode.Mode, block: bool = False, fs_type: str = ""
) -> csi_pb2.VolumeCapability:
    c = csi_pb2.VolumeCapability(access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode))
    if block:
        c.block.SetInParent()
    else:
        c.mount.fs_type = fs_type
    return c


@pytest.mark.parametrize("name", ["pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8", "a", "sanity-1-A", "x" * 128])
def test_safe_volume_names_are_accepted(name: str) -> None:
    assert validate_volume_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 129, "pvc_1", "pvc 1", "a;b", "../x", 'q"'])
def test_unsafe_volume_names_are_invalid_argument(name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        validate_volume_name(name)


def test_mount_capability_defaults_to_ext4() -> None:
    summary = validate_capabilities([cap(Mode.SINGLE_NODE_WRITER)])
    assert summary.fs_type == "ext4"
    assert summary.access_types == {AccessType.MOUNT}
    assert not summary.multi_node


@pytest.mark.parametrize("fs", ["ext4", "xfs", "ext3", "XFS"])
def test_supported_filesystems(fs: str) -> None:
    assert validate_capabilities([cap(Mode.SINGLE_NODE_WRITER, fs_type=fs)]).fs_type == fs.lower()


def test_block_multi_writer_is_the_migration_mode() -> None:
    summary = validate_capabilities([cap(Mode.MULTI_NODE_MULTI_WRITER, block=True)])
    assert summary.multi_node
    assert summary.fs_type is None


@pytest.mark.parametrize(
    ("capabilities", "message"),
    [
        ([cap(Mode.MULTI_NODE_MULTI_WRITER)], "only supported with volumeMode: Block"),
        ([cap(Mode.MULTI_NODE_READER_ONLY, block=True)], "not supported"),
        ([cap(Mode.MULTI_NODE_SINGLE_WRITER)], "not supported"),
        ([cap(Mode.SINGLE_NODE_WRITER, fs_type="btrfs")], "btrfs"),
        ([cap(Mode.SINGLE_NODE_WRITER, fs_type="ext4"), cap(Mode.SINGLE_NODE_WRITER, fs_type="xfs")], "conflicting"),
    ],
)
def test_unsupported_capabilities_tell_the_user_what_to_change(
    capabilities: list[csi_pb2.VolumeCapability], message: str
) -> None:
    with pytest.raises(UnsupportedCapability, match=message):
        validate_capabilities(capabilities)


@pytest.mark.parametrize(
    ("capabilities", "message"),
    [
        ([], "at least one"),
        ([cap(Mode.UNKNOWN)], "needs an access mode"),
        ([cap(99)], "access mode 99 is not a CSI access mode"),  # type: ignore[arg-type]
        ([cap(Mode.SINGLE_NODE_WRITER), cap(-1, block=True)], "access mode -1 is not a CSI access mode"),  # type: ignore[arg-type]
        (
            [csi_pb2.VolumeCapability(access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER))],
            "access type this driver knows",
        ),
    ],
)
def test_capabilities_the_driver_cannot_read_are_invalid_not_merely_unsupported(
    capabilities: list[csi_pb2.VolumeCapability], message: str
) -> None:
    with pytest.raises(errors.InvalidArgument, match=message) as refused:
        validate_capabilities(capabilities)
    assert not isinstance(refused.value, UnsupportedCapability)


def test_the_capability_record_names_access_types_filesystem_and_modes() -> None:
    ext4 = capability_record(validate_capabilities([cap(Mode.SINGLE_NODE_WRITER)]))
    assert ext4 == {"accessTypes": "mount", "fsType": "ext4", "accessModes": "SINGLE_NODE_WRITER"}
    both = capability_record(
        validate_capabilities([cap(Mode.MULTI_NODE_MULTI_WRITER, block=True), cap(Mode.SINGLE_NODE_WRITER, block=True)])
    )
    assert both == {"accessTypes": "block", "accessModes": "MULTI_NODE_MULTI_WRITER,SINGLE_NODE_WRITER"}


EXT4_RWO = capability_record(validate_capabilities([cap(Mode.SINGLE_NODE_WRITER, fs_type="ext4")]))
BLOCK_RWX = capability_record(validate_capabilities([cap(Mode.MULTI_NODE_MULTI_WRITER, block=True)]))


@pytest.mark.parametrize(
    ("created", "requested", "refused"),
    [
        (EXT4_RWO, cap(Mode.SINGLE_NODE_WRITER, fs_type="ext4"), None),
        (EXT4_RWO, cap(Mode.SINGLE_NODE_WRITER), None),  # no fs_type: ext4, as at create time
        (EXT4_RWO, cap(Mode.SINGLE_NODE_MULTI_WRITER, fs_type="EXT4"), None),
        (EXT4_RWO, cap(Mode.MULTI_NODE_MULTI_WRITER, block=True), "created for mount"),
        (EXT4_RWO, cap(Mode.SINGLE_NODE_WRITER, block=True), "created for mount"),
        (EXT4_RWO, cap(Mode.SINGLE_NODE_WRITER, fs_type="xfs"), "filesystem xfs, but the volume was created for ext4"),
        (BLOCK_RWX, cap(Mode.MULTI_NODE_MULTI_WRITER, block=True), None),
        (BLOCK_RWX, cap(Mode.SINGLE_NODE_WRITER, block=True), None),  # asks for less
        (BLOCK_RWX, cap(Mode.SINGLE_NODE_WRITER, fs_type="ext4"), "created for block"),
        ({"accessModes": "SINGLE_NODE_WRITER"}, cap(Mode.MULTI_NODE_MULTI_WRITER, block=True), "created for a single"),
        ({}, cap(Mode.MULTI_NODE_MULTI_WRITER, block=True), None),  # no record (Go driver, earlier releases)
        ({"accessTypes": "tape"}, cap(Mode.SINGLE_NODE_WRITER), "not a record this driver writes"),
        ({"accessModes": "EVERYONE"}, cap(Mode.SINGLE_NODE_WRITER), "not a record this driver writes"),
    ],
)
def test_a_capability_the_volume_was_not_created_for_is_invalid_argument(
    created: dict[str, str], requested: csi_pb2.VolumeCapability, refused: str | None
) -> None:
    summary = validate_capabilities([requested])
    if refused is None:
        check_against_record(summary, created)
    else:
        with pytest.raises(errors.InvalidArgument, match=refused):
            check_against_record(summary, created)


def test_parameters_default_from_the_driver_config() -> None:
    params = parse_parameters({}, DEFAULTS)
    assert params.volume_path == "/storage-pool/metal-csi"
    assert params.nvme_address == "10.0.0.5"
    assert (params.nvme_port, params.ctrl_loss_tmo, params.reconnect_delay) == (4420, -1, 5)
    assert params.keep_alive_tmo is None
    assert params.migration_timeout_seconds == 300


def test_parameters_and_provisioner_metadata_are_read() -> None:
    params = parse_parameters(
        {
            "volumePath": "/storage-pool/metal-csi/fast/",
            "nvmeAddress": "rds.lan",
            "nvmePort": "4421",
            "ctrlLossTmo": "600",
            "reconnectDelay": "2",
            "keepAliveTmo": "10",
            "migrationTimeoutSeconds": "3600",
            "csi.storage.k8s.io/pvc/name": "data",
            "csi.storage.k8s.io/pvc/namespace": "vms",
            "csi.storage.k8s.io/pv/name": "pvc-1",
            "csi.storage.k8s.io/fstype": "xfs",
        },
        DEFAULTS,
    )
    assert params.volume_path == "/storage-pool/metal-csi/fast"
    assert params.nvme_address == "rds.lan"
    assert (params.nvme_port, params.ctrl_loss_tmo, params.reconnect_delay, params.keep_alive_tmo) == (4421, 600, 2, 10)
    assert (params.pvc_name, params.pvc_namespace) == ("data", "vms")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"volumepath": "/x"}, "unknown StorageClass parameter"),
        ({"nvmePort": "http"}, "nvmePort"),
        ({"nvmePort": "0"}, "between 1 and 65535"),
        ({"migrationTimeoutSeconds": "10"}, "between 30 and 3600"),
        ({"migrationTimeoutSeconds": "7200"}, "between 30 and 3600"),
        ({"volumePath": "/storage-pool/other"}, "must be /storage-pool/metal-csi or below"),
        ({"volumePath": "/storage-pool/metal-csi-evil"}, "must be /storage-pool/metal-csi or below"),
        ({"volumePath": "/storage-pool/metal-csi/../../etc"}, "'..'"),
        ({"nvmeAddress": "a b;c"}, "nvmeAddress"),
        ({"csi.storage.k8s.io/fstype": "zfs"}, "fstype"),
        ({"fencing": "yes"}, "fencing"),
    ],
)
def test_bad_parameters_are_invalid_argument(params: dict[str, str], message: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=message):
        parse_parameters(params, DEFAULTS)


def rng(required: int = 0, limit: int = 0) -> csi_pb2.CapacityRange:
    return csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit)


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        (None, GiB),
        (rng(), GiB),
        (rng(required=1), GiB),
        (rng(required=3 * GiB // 2), 3 * GiB // 2),
        (rng(required=10 * GiB + 1), 10 * GiB + MiB),
        (rng(limit=2 * GiB), GiB),
        (rng(required=GiB + 5, limit=GiB + MiB), GiB + MiB),
    ],
)
def test_allocation_is_raised_to_minimum_and_rounded_up(capacity: csi_pb2.CapacityRange | None, expected: int) -> None:
    assert allocation_bytes(capacity, CapacityLimits()) == expected


def test_allocation_that_cannot_fit_the_limit_is_out_of_range() -> None:
    with pytest.raises(errors.OutOfRange):
        allocation_bytes(rng(required=GiB + 5, limit=GiB + 10), CapacityLimits())
    with pytest.raises(errors.OutOfRange):
        allocation_bytes(rng(limit=GiB // 2), CapacityLimits())
    with pytest.raises(errors.OutOfRange):
        allocation_bytes(rng(required=20 * GiB), CapacityLimits(maximum_bytes=10 * GiB))


@pytest.mark.parametrize("required", [(1 << 63) - 1, (1 << 60) + 1, 16 * (1 << 40) + 1])
def test_a_size_beyond_any_volume_is_out_of_range_not_invalid(required: int) -> None:
    with pytest.raises(errors.OutOfRange, match="maximum volume size"):
        allocation_bytes(rng(required=required), CapacityLimits())
    # A configured maximum above what RouterOS is ever asked for is held to that instead.
    with pytest.raises(errors.OutOfRange, match=f"maximum volume size {1 << 60}"):
        allocation_bytes(rng(required=(1 << 63) - 1), CapacityLimits(maximum_bytes=1 << 62))


def test_required_above_limit_is_invalid_argument() -> None:
    with pytest.raises(errors.InvalidArgument):
        allocation_bytes(rng(required=2 * GiB, limit=GiB), CapacityLimits())


def test_a_content_source_raises_the_size_and_is_held_to_every_limit() -> None:
    assert allocation_bytes(rng(required=GiB), CapacityLimits(), source_bytes=3 * GiB) == 3 * GiB
    with pytest.raises(errors.OutOfRange, match="content source is"):
        allocation_bytes(rng(limit=2 * GiB), CapacityLimits(), source_bytes=3 * GiB)
    with pytest.raises(errors.OutOfRange, match="maximum volume size"):  # was not re-checked before
        allocation_bytes(None, CapacityLimits(maximum_bytes=2 * GiB), source_bytes=3 * GiB)


def test_existing_size_satisfies_compatible_requests_only() -> None:
    assert size_satisfies(2 * GiB, None)
    assert size_satisfies(2 * GiB, rng(required=GiB))
    assert size_satisfies(2 * GiB, rng(required=2 * GiB, limit=2 * GiB))
    assert not size_satisfies(GiB, rng(required=2 * GiB))
    assert not size_satisfies(3 * GiB, rng(limit=2 * GiB))


def test_fencing_is_off_unless_asked_for() -> None:
    assert parse_parameters({}, DEFAULTS).fencing is False
    assert parse_parameters({"fencing": "true"}, DEFAULTS).fencing is True
    assert parse_parameters({"fencing": "False"}, DEFAULTS).fencing is False
