"""Image files of the data plane: sparse, confined to the data directory, copied without filling holes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rds_csi.core.errors import Internal, InvalidArgument
from rds_csi.simulator.images import ImageStore

MIB = 1024**2


def test_create_makes_a_sparse_file_of_the_logical_size(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "data")
    store.create("storage-pool/metal-csi/pvc-a.img", 512 * MIB)
    path = tmp_path / "data" / "storage-pool" / "metal-csi" / "pvc-a.img"
    assert path.stat().st_size == 512 * MIB
    assert store.allocated("storage-pool/metal-csi/pvc-a.img") < MIB


def test_create_refuses_an_existing_image(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    store.create("pool/a.img", MIB)
    with pytest.raises(Internal, match=r"cannot create image pool/a\.img"):
        store.create("pool/a.img", MIB)


@pytest.mark.parametrize("name", ["", "../outside.img", "pool/../../outside.img", "pool//a.img", "pool/./a.img"])
def test_names_that_would_leave_the_data_directory_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgument):
        ImageStore(tmp_path / "data").path(name)


def test_a_symlink_planted_under_the_root_does_not_lead_out(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pool").symlink_to(tmp_path)
    with pytest.raises(InvalidArgument, match="outside the data directory"):
        ImageStore(tmp_path / "data").path("pool/a.img")


def test_copy_keeps_content_and_holes(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    store.create("pool/src.img", 256 * MIB)
    with open(store.path("pool/src.img"), "r+b") as src:
        src.seek(100 * MIB)
        src.write(b"written by a guest" * 1000)
    store.copy("pool/src.img", "pool/dst.img")
    source, copy = store.path("pool/src.img").read_bytes(), store.path("pool/dst.img").read_bytes()
    assert copy == source
    assert store.allocated("pool/dst.img") < 4 * MIB  # the holes stayed holes (or the extents are shared)


def test_copy_of_a_missing_source_fails_and_leaves_no_target(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with pytest.raises(Internal, match="cannot copy image"):
        store.copy("pool/none.img", "pool/dst.img")
    assert not store.exists("pool/dst.img")


def test_resize_grows_and_remove_is_idempotent(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    store.create("pool/a.img", MIB)
    store.resize("pool/a.img", 3 * MIB)
    assert store.size("pool/a.img") == 3 * MIB
    store.remove("pool/a.img")
    store.remove("pool/a.img")
    assert not os.path.exists(store.path("pool/a.img"))
