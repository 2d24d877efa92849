from __future__ import annotations

from rds_csi.routeros.models import FileEntry
from rds_csi.routeros.names import parse_router_path
from rds_csi.routeros.orphans import OrphanCandidate, age_candidates, unclaimed
from rds_csi.routeros.volumes import Volume

BASE = parse_router_path("/storage-pool/metal-csi")


def volume(volume_id: str) -> Volume:
    return Volume(volume_id, 1 << 30, f"/storage-pool/metal-csi/{volume_id}.img", None, 4420, True)


def image(name: str) -> FileEntry:
    return FileEntry(name=name, type=".img file", size_bytes=1 << 30)


def test_unclaimed_volumes_and_bare_backing_files_are_candidates() -> None:
    candidates = unclaimed(
        [volume("pvc-claimed"), volume("pvc-orphan")],
        [
            image("storage-pool/metal-csi/pvc-claimed.img"),
            image("storage-pool/metal-csi/pvc-orphan.img"),
            image("storage-pool/metal-csi/pvc-bare.img"),
            image("storage-pool/metal-csi/snap-1f0e7b6c-8a35-5b8a-9c0d-2e3f4a5b6c7d-pvc-orphan.img"),
            image("storage-pool/other/pvc-elsewhere.img"),
            image("storage-pool/metal-csi/notes.txt"),
            FileEntry(name="storage-pool/metal-csi/sub", type="directory"),
        ],
        BASE,
        frozenset({"pvc-claimed"}),
    )
    assert candidates == [
        OrphanCandidate("pvc-bare", "file", "/storage-pool/metal-csi/pvc-bare.img"),
        OrphanCandidate("pvc-orphan", "volume", "/storage-pool/metal-csi/pvc-orphan.img"),
    ]


def test_a_bare_file_whose_id_a_pv_claims_is_not_a_candidate() -> None:
    assert unclaimed([], [image("storage-pool/metal-csi/pvc-1.img")], BASE, frozenset({"pvc-1"})) == []


def test_candidates_ripen_only_after_the_grace_period_and_restart_when_claimed() -> None:
    orphan = OrphanCandidate("pvc-o", "volume", "/x")
    first = age_candidates([orphan], {}, now=100.0, grace_seconds=60)
    assert (first.ripe, first.waiting) == ((), (orphan,))
    later = age_candidates([orphan], first.first_seen, now=159.0, grace_seconds=60)
    assert later.ripe == ()
    ripe = age_candidates([orphan], later.first_seen, now=160.0, grace_seconds=60)
    assert ripe.ripe == (orphan,)
    claimed = age_candidates([], ripe.first_seen, now=170.0, grace_seconds=60)
    assert claimed.first_seen == {}
    again = age_candidates([orphan], claimed.first_seen, now=171.0, grace_seconds=60)
    assert again.ripe == ()
