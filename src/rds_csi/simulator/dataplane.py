"""What the model needs from a data plane: real image files and kernel exports that follow its disks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rds_csi.simulator.images import ImageStore


@dataclass(frozen=True, slots=True)
class Export:
    """What one disk exports: the target NQN, the TCP port, its image (model file name) and allowed hosts
    (empty: any host, as on RouterOS)."""

    nqn: str
    port: int
    image: str
    allowed_hosts: tuple[str, ...]


class DataPlane(Protocol):
    """Applied before the model commits a change: a failure raises ``RdsCsiError`` and changes nothing."""

    @property
    def images(self) -> ImageStore: ...

    def restore(self, images: dict[str, int], exports: dict[int, Export]) -> None:
        """Start-up: make images exist (never shrunk) and export what the model holds, keyed by disk id."""

    def set_export(self, disk_id: int, export: Export | None) -> None:
        """Make one disk's export match ``export`` (None: not exported)."""

    def resized(self, image: str) -> None:
        """``image`` grew: let connected hosts see the new size."""

    def close(self) -> None:
        """Withdraw every export; images stay."""
