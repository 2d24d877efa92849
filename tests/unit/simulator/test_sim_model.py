"""Model rules: thin provisioning, copy-on-write copies, failures in RouterOS's words, persistence."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from rds_csi.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from rds_csi.simulator.model import INITIAL_ALLOCATION, CopyFromAccepts, Model, parse_size

GIB = 1024**3


def make_model(free: int = 100 * GIB, persist: Path | None = None) -> Model:
    return Model(
        pool_size=200 * GIB,
        pool_free=free,
        base_directories=["storage-pool/metal-csi"],
        persist_file=persist,
        wall_clock=lambda: datetime(2025, 11, 11, 16, 47, 7),
    )


def add(model: Model, slot: str, size: str = "10G", **extra: str) -> dict[str, object]:
    params = {"type": "file", "slot": slot, "file-path": f"/storage-pool/metal-csi/{slot}.img", "file-size": size}
    params.update(extra)
    return model.add_disk(params)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1073741824", GIB), ("1G", GIB), ("1GiB", GIB), ("512M", 512 * 1024**2), ("2T", 2 * 1024**4), ("4k", 4096)],
)
def test_parse_size_units_are_binary(text: str, expected: int) -> None:
    assert parse_size("file-size", text) == expected


@pytest.mark.parametrize("text", ["", "1.5G", "-1", "0", "10X", "G"])
def test_parse_size_malformed_is_invalid_value(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid value for argument file-size"):
        parse_size("file-size", text)


def test_add_new_image_is_sparse_and_takes_only_initial_allocation() -> None:
    model = make_model()
    before = model.free
    record = add(model, "pvc-a", "50G")
    assert record["file-size"] == 50 * GIB
    assert model.allocated("storage-pool/metal-csi/pvc-a.img") == INITIAL_ALLOCATION
    assert before - model.free == INITIAL_ALLOCATION


def test_add_larger_than_free_space_is_not_enough_space() -> None:
    model = make_model(free=10 * GIB)
    with pytest.raises(ResourceExhausted, match=r"^not enough space$"):
        add(model, "pvc-a", "11G")
    assert [r["slot"] for r in model.disk_records()] == ["storage-pool"]


def test_add_duplicate_slot_is_already_exists() -> None:
    model = make_model()
    add(model, "pvc-a")
    with pytest.raises(AlreadyExists, match="disk with such slot already exists"):
        model.add_disk({"type": "file", "slot": "pvc-a", "file-path": "/storage-pool/x.img", "file-size": "1G"})


def test_add_with_size_over_existing_file_is_file_already_exists() -> None:
    model = make_model()
    add(model, "pvc-a")
    model.remove_disk(model.disk_id("pvc-a"))
    with pytest.raises(AlreadyExists, match="file already exists"):
        add(model, "pvc-b", **{"file-path": "/storage-pool/metal-csi/pvc-a.img"})


def test_add_without_size_reattaches_existing_image() -> None:
    model = make_model()
    add(model, "pvc-a", "3G")
    model.remove_disk(model.disk_id("pvc-a"))
    record = model.add_disk({"type": "file", "slot": "pvc-a", "file-path": "/storage-pool/metal-csi/pvc-a.img"})
    assert record["file-size"] == 3 * GIB


def test_add_creates_missing_parent_directories() -> None:
    model = make_model()
    model.add_disk({"type": "file", "slot": "v", "file-path": "/storage-pool/a/b/v.img", "file-size": "1G"})
    names = {r["name"]: r["type"] for r in model.file_records()}
    assert names["storage-pool/a"] == "directory"
    assert names["storage-pool/a/b"] == "directory"
    assert names["storage-pool/a/b/v.img"] == ".img file"


@pytest.mark.parametrize("path", ["storage-pool/x.img", "/storage-pool/../x.img", "/storage-pool", "/a\nb/x.img"])
def test_add_bad_file_path_is_invalid_value(path: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid value for argument file-path"):
        make_model().add_disk({"type": "file", "slot": "v", "file-path": path, "file-size": "1G"})


def test_add_outside_every_mount_point_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="not on a mounted disk"):
        make_model().add_disk({"type": "file", "slot": "v", "file-path": "/elsewhere/v.img", "file-size": "1G"})


def test_add_unknown_parameter_is_reported_by_name() -> None:
    with pytest.raises(InvalidArgument, match="unknown parameter colour"):
        make_model().add_disk({"type": "file", "colour": "red"})


def test_add_defaults_nqn_from_slot_and_port_4420() -> None:
    record = add(make_model(), "PVC-Up")
    assert record["nvme-tcp-server-nqn"] == "nqn.2000-02.com.mikrotik:pvc-up"
    assert record["nvme-tcp-server-port"] == 4420


def test_resize_growth_beyond_free_space_is_not_enough_space() -> None:
    model = make_model(free=20 * GIB)
    add(model, "pvc-a", "10G")
    with pytest.raises(ResourceExhausted, match="not enough space"):
        model.set_disk(model.disk_id("pvc-a"), {"file-size": "31G"})
    record = model.set_disk(model.disk_id("pvc-a"), {"file-size": "29G"})
    assert record["file-size"] == 29 * GIB


def test_resize_smaller_is_invalid_value() -> None:
    model = make_model()
    add(model, "pvc-a", "10G")
    with pytest.raises(InvalidArgument, match="file-size"):
        model.set_disk(model.disk_id("pvc-a"), {"file-size": "5G"})


def test_copy_from_shares_blocks_until_written() -> None:
    model = make_model()
    add(model, "src", "10G")
    model.write("storage-pool/metal-csi/src.img", 4 * GIB)
    free_before = model.free
    copy = model.add_disk(
        {"type": "file", "slot": "dst", "file-path": "/storage-pool/metal-csi/dst.img", "copy-from": "src"}
    )
    assert copy["file-size"] == 10 * GIB
    assert model.free == free_before
    model.write("storage-pool/metal-csi/dst.img", GIB)
    assert model.free == free_before - GIB


@pytest.mark.parametrize(
    ("accepts", "source", "refusal"),
    [
        (CopyFromAccepts.FILE, "src", (NotFound, "no such file")),
        (CopyFromAccepts.FILE, "/storage-pool/metal-csi/src.img", None),
        (CopyFromAccepts.DISK, "/storage-pool/metal-csi/src.img", (InvalidArgument, "does not match any value")),
        (CopyFromAccepts.DISK, "src", None),
        (CopyFromAccepts.ANY, "src", None),
        (CopyFromAccepts.ANY, "/storage-pool/metal-csi/src.img", None),
    ],
)
def test_copy_from_can_be_restricted_to_one_form(
    accepts: CopyFromAccepts, source: str, refusal: tuple[type[Exception], str] | None
) -> None:
    model = Model(pool_size=200 * GIB, pool_free=100 * GIB, copy_from_accepts=accepts)
    add(model, "src", "10G")
    params = {"type": "file", "slot": "dst", "file-path": "/storage-pool/metal-csi/dst.img", "copy-from": source}
    if refusal is None:
        assert model.add_disk(params)["file-size"] == 10 * GIB
        return
    error, text = refusal
    with pytest.raises(error, match=text):
        model.add_disk(params)
    assert [r["slot"] for r in model.disk_records()] == ["storage-pool", "src"]  # a refusal creates nothing
    assert "storage-pool/metal-csi/dst.img" not in {f["name"] for f in model.file_records()}


def test_copy_from_shared_extent_is_freed_only_with_last_reference() -> None:
    model = make_model()
    add(model, "src", "10G")
    model.write("storage-pool/metal-csi/src.img", 4 * GIB)
    model.add_disk({"type": "file", "slot": "dst", "file-path": "/storage-pool/metal-csi/dst.img", "copy-from": "src"})
    free_with_both = model.free
    for slot in ("src", "dst"):
        model.remove_disk(model.disk_id(slot))
    model.remove_file(model.file_id("storage-pool/metal-csi/src.img"))
    assert model.free == free_with_both
    model.remove_file(model.file_id("storage-pool/metal-csi/dst.img"))
    assert model.free == free_with_both + 4 * GIB + INITIAL_ALLOCATION


def test_copy_from_path_of_image_is_accepted() -> None:
    model = make_model()
    add(model, "src", "2G")
    copy = model.add_disk(
        {
            "type": "file",
            "slot": "dst",
            "file-path": "/storage-pool/metal-csi/dst.img",
            "copy-from": "/storage-pool/metal-csi/src.img",
        }
    )
    assert copy["size"] == 2 * GIB


def test_short_copy_fault_copies_half_of_the_source() -> None:
    model = make_model()
    add(model, "src", "2G")
    copy = model.add_disk(
        {"type": "file", "slot": "dst", "file-path": "/storage-pool/metal-csi/dst.img", "copy-from": "src"},
        short_copy=True,
    )
    assert copy["size"] == GIB
    assert model.disk_records()[1]["size"] == 2 * GIB  # the source is untouched


def test_copy_from_unknown_source_is_no_such_item() -> None:
    with pytest.raises(NotFound, match="no such item"):
        make_model().add_disk({"type": "file", "slot": "d", "file-path": "/storage-pool/d.img", "copy-from": "ghost"})


def test_write_beyond_free_space_is_not_enough_space() -> None:
    model = make_model(free=2 * GIB)
    add(model, "a", "2G")
    add(model, "b", "1G")
    model.write("storage-pool/metal-csi/a.img", GIB)
    with pytest.raises(ResourceExhausted):
        model.write("storage-pool/metal-csi/b.img", GIB)


def test_remove_disk_keeps_backing_file() -> None:
    model = make_model()
    add(model, "pvc-a")
    model.remove_disk(model.disk_id("pvc-a"))
    assert "storage-pool/metal-csi/pvc-a.img" in {r["name"] for r in model.file_records()}


def test_remove_file_backing_a_disk_is_refused() -> None:
    model = make_model()
    add(model, "pvc-a")
    with pytest.raises(FailedPrecondition, match="file is in use"):
        model.remove_file(model.file_id("storage-pool/metal-csi/pvc-a.img"))


def test_remove_unknown_disk_is_no_such_item() -> None:
    with pytest.raises(NotFound, match=r"^no such item$"):
        make_model().remove_disk(999)


def test_partition_cannot_be_removed_or_changed() -> None:
    model = make_model()
    with pytest.raises(FailedPrecondition):
        model.remove_disk(model.pool.id)
    with pytest.raises(FailedPrecondition):
        model.set_disk(model.pool.id, {"disabled": "yes"})


def test_partition_reports_use_percent_of_pool() -> None:
    model = Model(pool_size=100 * GIB, pool_free=75 * GIB)
    assert model.disk_records()[0]["use"] == 25


def test_persisted_state_is_reloaded_by_a_new_model(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    model = make_model(persist=state)
    add(model, "pvc-a", "3G")
    model.write("storage-pool/metal-csi/pvc-a.img", GIB)
    reloaded = make_model(persist=state)
    assert reloaded.disk_records() == model.disk_records()
    assert reloaded.file_records() == model.file_records()
    assert reloaded.free == model.free


def test_corrupt_state_file_is_reported(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"pool": {}}')
    with pytest.raises(InvalidArgument, match="not valid"):
        make_model(persist=state)
