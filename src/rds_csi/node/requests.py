"""What the node use cases take and answer: validated value objects, made once at the CSI edge.

The CSI layer turns protobuf requests into these (``rds_csi.csi.node_validation``); nothing below it re-checks
the strings. Paths are absolute, the NQN is well formed and under the managed prefix, sizes are non-negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rds_csi.mount import NO_OPTIONS, FsType, MountOptions, VolumeCondition
from rds_csi.nvme import FabricsTarget


@dataclass(frozen=True, slots=True)
class MountAccess:
    """A filesystem volume: the device is formatted (only when blank) and mounted with ``options``."""

    fs_type: FsType
    options: MountOptions = NO_OPTIONS


@dataclass(frozen=True, slots=True)
class BlockAccess:
    """A raw block volume: the device itself is handed to the pod."""


Access = MountAccess | BlockAccess


@dataclass(frozen=True, slots=True)
class StageVolume:
    volume_id: str
    staging_path: Path
    target: FabricsTarget
    access: Access


@dataclass(frozen=True, slots=True)
class PublishVolume:
    volume_id: str
    staging_path: Path
    target_path: Path
    access: Access
    readonly: bool


@dataclass(frozen=True, slots=True)
class UnpublishVolume:
    volume_id: str
    target_path: Path


@dataclass(frozen=True, slots=True)
class UnstageVolume:
    volume_id: str
    staging_path: Path


@dataclass(frozen=True, slots=True)
class VolumeStatsQuery:
    volume_id: str
    volume_path: Path  # a publish target or the staging path
    staging_path: Path | None


@dataclass(frozen=True, slots=True)
class ExpandVolume:
    volume_id: str
    volume_path: Path
    staging_path: Path | None
    required_bytes: int  # 0: whatever the storage now holds
    access: Access | None  # None when the CO did not send a capability


@dataclass(frozen=True, slots=True)
class VolumeStats:
    """Usage of a volume. Filesystems report bytes and inodes; block volumes only their size (``total_bytes``)."""

    total_bytes: int
    available_bytes: int | None
    used_bytes: int | None
    total_inodes: int | None
    available_inodes: int | None
    used_inodes: int | None
    condition: VolumeCondition
