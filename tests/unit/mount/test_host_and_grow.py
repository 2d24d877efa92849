"""Host paths (injectable roots, capabilities from the process status) and the grow commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from rds_csi.mount import DeviceNumber, FsType, HostPaths, grow_command
from rds_csi.mount.host import effective_capabilities

STATUS = "Name:\tpython3\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n"


def test_effective_capabilities_come_from_the_cap_eff_line() -> None:
    mask = effective_capabilities(STATUS)
    assert mask == 0x000001FFFEFFFFFF
    assert mask >> 21 & 1  # CAP_SYS_ADMIN
    assert not mask >> 24 & 1  # CAP_SYS_RESOURCE: what such a sandbox lacks
    with pytest.raises(ValueError):
        effective_capabilities("Name:\tpython3\n")


def test_has_capability_reads_the_injected_status(tmp_path: Path) -> None:
    (tmp_path / "status").write_text(STATUS)
    paths = HostPaths(status=tmp_path / "status")
    assert paths.has_capability(21) is True
    assert paths.has_capability(24) is False


def test_device_nodes_and_sysfs_directories_live_under_the_injected_roots(tmp_path: Path) -> None:
    paths = HostPaths(dev=tmp_path / "dev", sys=tmp_path / "sys")
    assert paths.device_node("/dev/nvme1n1") == tmp_path / "dev" / "nvme1n1"
    assert paths.device_node("/dev/disk/by-id/nvme-x") == tmp_path / "dev" / "disk" / "by-id" / "nvme-x"
    assert paths.device_node("tmpfs") is None
    assert paths.sysfs_block_device(DeviceNumber(259, 3)) == tmp_path / "sys" / "dev" / "block" / "259:3"


@pytest.mark.parametrize(
    ("fs_type", "argv"),
    [
        (FsType.EXT4, ["resize2fs", "/dev/nvme1n1"]),
        (FsType.EXT3, ["resize2fs", "/dev/nvme1n1"]),
        (FsType.XFS, ["xfs_growfs", "/staging"]),  # xfs grows through its mount point only
    ],
)
def test_ext_grows_by_device_and_xfs_by_mount_point(fs_type: FsType, argv: list[str]) -> None:
    assert grow_command(fs_type, Path("/dev/nvme1n1"), "/staging") == argv
