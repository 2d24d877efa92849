"""The model drives its data plane: real image files, exports following disks, and failures that change nothing.

The kernel side (nvmet) cannot run on this machine's kernel; ``KernelStandIn`` records exports as the kernel would
hold them and fails when told to, like nvmet refusing a subsystem. The real nvmet is exercised inside a VM by
tests/e2e/test_simulator_nvmet.py.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from rds_csi.core.errors import FailedPrecondition, Internal, ResourceExhausted
from rds_csi.simulator.dataplane import Export
from rds_csi.simulator.images import ImageStore
from rds_csi.simulator.model import Model

GIB = 1024**3
MIB = 1024**2
IMAGE = "storage-pool/metal-csi/pvc-a.img"


class KernelStandIn:
    """Holds exports by disk id like nvmet's configfs would; ``fail_next`` makes the next change fail."""

    def __init__(self, images: ImageStore) -> None:
        self._images = images
        self.exports: dict[int, Export] = {}
        self.resized_images: list[str] = []
        self.fail_next = False
        self.closed = False

    @property
    def images(self) -> ImageStore:
        return self._images

    def restore(self, images: dict[str, int], exports: dict[int, Export]) -> None:
        for name, size in images.items():
            if not self._images.exists(name):
                self._images.create(name, size)
        self.exports = dict(exports)

    def set_export(self, disk_id: int, export: Export | None) -> None:
        if self.fail_next:
            self.fail_next = False
            raise Internal("nvmet: cannot export: Address already in use")
        if export is None:
            self.exports.pop(disk_id, None)
        else:
            self.exports[disk_id] = export

    def resized(self, image: str) -> None:
        self.resized_images.append(image)

    def close(self) -> None:
        self.exports.clear()
        self.closed = True


@pytest.fixture
def plane(tmp_path: Path) -> KernelStandIn:
    return KernelStandIn(ImageStore(tmp_path / "data"))


def make_model(plane: KernelStandIn, persist: Path | None = None) -> Model:
    return Model(
        pool_size=200 * GIB,
        pool_free=100 * GIB,
        base_directories=["storage-pool/metal-csi"],
        persist_file=persist,
        wall_clock=lambda: datetime(2025, 11, 11, 16, 47, 7),
        data_plane=plane,
    )


def add(model: Model, slot: str = "pvc-a", **extra: str) -> int:
    params = {
        "type": "file",
        "slot": slot,
        "file-path": f"/storage-pool/metal-csi/{slot}.img",
        "file-size": "64M",
        "nvme-tcp-export": "yes",
        "nvme-tcp-server-port": "4420",
        "nvme-tcp-server-nqn": f"nqn.2000-02.com.mikrotik:{slot}",
    }
    params.update(extra)
    if "copy-from" in extra:
        del params["file-size"]
    return int(str(model.add_disk(params)[".id"])[1:], 16)


def test_add_creates_the_real_image_and_exports_it(plane: KernelStandIn) -> None:
    model = make_model(plane)
    disk_id = add(model, **{"nvme-tcp-server-allow-host-name": "nqn.2014-08.org.nvmexpress:uuid:a"})
    assert plane.images.size(IMAGE) == 64 * MIB
    assert plane.exports == {
        disk_id: Export("nqn.2000-02.com.mikrotik:pvc-a", 4420, IMAGE, ("nqn.2014-08.org.nvmexpress:uuid:a",))
    }


def test_a_disk_without_export_or_disabled_is_not_exported(plane: KernelStandIn) -> None:
    model = make_model(plane)
    add(model, "pvc-a", **{"nvme-tcp-export": "no"})
    add(model, "pvc-b", disabled="yes")
    assert plane.exports == {}


def test_copy_from_copies_the_real_content(plane: KernelStandIn) -> None:
    model = make_model(plane)
    add(model, "pvc-a")
    with open(plane.images.path(IMAGE), "r+b") as image:
        image.seek(MIB)
        image.write(b"filesystem superblock")
    add(model, "pvc-b", **{"copy-from": "pvc-a"})
    assert plane.images.path("storage-pool/metal-csi/pvc-b.img").read_bytes() == plane.images.path(IMAGE).read_bytes()


def test_a_short_copy_cuts_the_real_image_too(plane: KernelStandIn) -> None:
    model = make_model(plane)
    add(model, "pvc-a")
    params = {"type": "file", "slot": "pvc-b", "file-path": "/storage-pool/metal-csi/pvc-b.img", "copy-from": "pvc-a"}
    model.add_disk(params, short_copy=True)
    assert plane.images.size("storage-pool/metal-csi/pvc-b.img") == 32 * MIB


def test_a_failed_export_leaves_no_disk_no_file_and_no_image(plane: KernelStandIn) -> None:
    model = make_model(plane)
    free, files = model.free, model.file_records()
    plane.fail_next = True
    with pytest.raises(Internal, match="Address already in use"):
        add(model)
    assert [r["slot"] for r in model.disk_records()] == ["storage-pool"]
    assert model.file_records() == files
    assert model.free == free
    assert not plane.images.exists(IMAGE)
    add(model)  # and the same request works once the kernel does


def test_a_failed_export_of_a_copy_keeps_the_source(plane: KernelStandIn) -> None:
    model = make_model(plane)
    add(model, "pvc-a")
    plane.fail_next = True
    with pytest.raises(Internal):
        add(model, "pvc-b", **{"copy-from": "pvc-a"})
    assert plane.images.exists(IMAGE)
    assert not plane.images.exists("storage-pool/metal-csi/pvc-b.img")
    assert [r["slot"] for r in model.disk_records()] == ["storage-pool", "pvc-a"]
    assert [r["name"] for r in model.file_records() if r["name"].endswith(".img")] == [IMAGE]


def test_resize_grows_the_image_and_revalidates(plane: KernelStandIn) -> None:
    model = make_model(plane)
    disk_id = add(model)
    model.set_disk(disk_id, {"file-size": "128M"})
    assert plane.images.size(IMAGE) == 128 * MIB
    assert plane.resized_images == [IMAGE]


def test_a_refused_resize_touches_nothing(plane: KernelStandIn) -> None:
    model = make_model(plane)
    disk_id = add(model)
    with pytest.raises(ResourceExhausted):
        model.set_disk(disk_id, {"file-size": "1000G"})
    assert plane.images.size(IMAGE) == 64 * MIB
    assert plane.resized_images == []


def test_a_disk_exported_later_reaches_the_data_plane_under_the_nqn_set_with_it(plane: KernelStandIn) -> None:
    model = make_model(plane)
    disk_id = add(model, **{"nvme-tcp-export": "no", "nvme-tcp-server-nqn": "nqn.2000-02.com.mikrotik:marked.x"})
    assert plane.exports == {}
    model.set_disk(disk_id, {"nvme-tcp-export": "yes", "nvme-tcp-server-nqn": "nqn.2000-02.com.mikrotik:pvc-a"})
    assert plane.exports == {disk_id: Export("nqn.2000-02.com.mikrotik:pvc-a", 4420, IMAGE, ())}


def test_allow_list_changes_reach_the_export_and_a_failure_keeps_the_old_list(plane: KernelStandIn) -> None:
    model = make_model(plane)
    disk_id = add(model)
    host = "nqn.2014-08.org.nvmexpress:uuid:b"
    model.set_disk(disk_id, {"nvme-tcp-server-allow-host-name": host})
    assert plane.exports[disk_id].allowed_hosts == (host,)
    plane.fail_next = True
    with pytest.raises(Internal):
        model.set_disk(disk_id, {"nvme-tcp-server-allow-host-name": ""})
    assert model.disk_records()[1]["nvme-tcp-server-allow-host-name"] == host


def test_remove_withdraws_the_export_and_file_remove_deletes_the_image(plane: KernelStandIn) -> None:
    model = make_model(plane)
    disk_id = add(model)
    plane.fail_next = True
    with pytest.raises(Internal):
        model.remove_disk(disk_id)
    assert disk_id in plane.exports and len(model.disk_records()) == 2
    model.remove_disk(disk_id)
    assert plane.exports == {}
    assert plane.images.exists(IMAGE)  # /disk remove keeps the file, as RouterOS does
    model.remove_file(model.file_id(IMAGE))
    assert not plane.images.exists(IMAGE)


def test_a_persisted_model_restores_images_and_exports_at_start(plane: KernelStandIn, tmp_path: Path) -> None:
    state = tmp_path / "model.json"
    model = make_model(plane, state)
    disk_id = add(model)
    model.close()
    assert plane.closed and plane.exports == {}
    plane.images.remove(IMAGE)  # e.g. a fresh data directory
    make_model(plane, state)
    assert plane.images.size(IMAGE) == 64 * MIB
    assert set(plane.exports) == {disk_id}


def test_pool_free_space_follows_what_hosts_really_wrote(plane: KernelStandIn) -> None:
    model = make_model(plane)
    add(model)
    before = model.free
    with open(plane.images.path(IMAGE), "r+b") as image:
        image.seek(MIB)
        image.write(b"\xa5" * 8 * MIB)
        os.fsync(image.fileno())
    assert model.allocated(IMAGE) >= 8 * MIB
    assert before - model.free >= 8 * MIB
    with pytest.raises(FailedPrecondition, match="writes arrive over NVMe/TCP"):
        model.write(IMAGE, MIB)
