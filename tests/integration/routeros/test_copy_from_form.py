"""``copy-from`` in either form, over real SSH and REST: the configured one, the other one once when RouterOS refuses
it, then the accepted one for good; and never a second form after a lost reply."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.observability.metrics import Metrics
from rds_csi.routeros.client import RouterOSClient
from rds_csi.routeros.commands import CopyFromForm
from rds_csi.routeros.rest import RestSettings, RestTransport
from rds_csi.routeros.ssh import SshPool, SshSettings, SshTransport
from rds_csi.routeros.transport import Transport
from rds_csi.routeros.volumes import ContentSource, VolumeBackend
from rds_csi.simulator import CopyFromAccepts, FaultPlan, FaultRule, Simulator, SimulatorConfig
from tests.support import SIM_PASSWORD, SIM_USER, write_client_key

GiB = 1 << 30
BASE = "/storage-pool/metal-csi"


@dataclass
class Rig:
    simulator: Simulator
    client: RouterOSClient
    volumes: VolumeBackend
    metrics: Metrics

    def copy_adds(self) -> list[CopyFromForm]:
        """The form of every ``/disk add copy-from`` the simulator received, in order."""
        forms = []
        for entry in self.simulator.commands.entries():
            text = entry.command
            if entry.op != "add" or "copy-from" not in text:
                continue
            by_file = 'copy-from="/' in text or '"copy-from": "/' in text
            forms.append(CopyFromForm.FILE if by_file else CopyFromForm.DISK)
        return forms

    def form_gauge(self, form: CopyFromForm) -> float | None:
        return self.metrics.registry.get_sample_value("rds_csi_routeros_copy_from_form", {"form": form.value})

    def fresh_volume(self) -> str:
        volume_id = f"pvc-cf-{os.urandom(4).hex()}"
        self.volumes.create_volume(volume_id, volume_path=BASE, size_bytes=GiB, port=4420, size_ok=bool)
        return volume_id


MakeRig = Callable[[str, CopyFromAccepts, CopyFromForm], Rig]


@pytest.fixture
def make_rig(short_tmp: Path) -> Iterator[MakeRig]:
    made: list[Rig] = []

    def make(backend: str, accepts: CopyFromAccepts, configured: CopyFromForm) -> Rig:
        key_file, public_file = write_client_key(short_tmp)
        simulator = Simulator(
            SimulatorConfig(
                state_dir=short_tmp / f"sim-{len(made)}",
                control_port=None,
                faults=FaultPlan(profile="zero"),
                users={SIM_USER: SIM_PASSWORD},
                authorized_keys=(public_file,),
                copy_from_accepts=accepts,
            )
        ).start()
        transport: Transport
        if backend == "ssh":
            settings = SshSettings(
                host="127.0.0.1",
                port=simulator.ssh_port,
                username=SIM_USER,
                key_file=str(key_file),
                pinned_host_key=simulator.host_public_key,
            )
            transport = SshTransport(SshPool(settings))
        else:
            rest = RestSettings(
                base_url=simulator.rest_url.removesuffix("/rest"),
                username=SIM_USER,
                password=SIM_PASSWORD,
                ca_file=str(simulator.rest_certificate),
            )
            transport = RestTransport(rest)
        metrics = Metrics()
        client = RouterOSClient(transport, command_timeout=5, metrics=metrics, copy_from_form=configured)
        rig = Rig(simulator, client, VolumeBackend(client, base_path=BASE), metrics)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.client.transport.close()
        rig.simulator.stop()


BACKENDS = pytest.mark.parametrize("backend", ["ssh", "rest"])


@BACKENDS
@pytest.mark.parametrize(
    ("accepts", "configured"),
    [(CopyFromAccepts.DISK, CopyFromForm.FILE), (CopyFromAccepts.FILE, CopyFromForm.DISK)],
    ids=["rds-takes-disk", "rds-takes-file"],
)
def test_a_refused_form_is_replaced_by_the_other_once_and_remembered(
    make_rig: MakeRig, backend: str, accepts: CopyFromAccepts, configured: CopyFromForm
) -> None:
    rig = make_rig(backend, accepts, configured)
    taken = configured.other
    source = rig.fresh_volume()
    assert rig.form_gauge(configured) == 1 and rig.form_gauge(taken) == 0  # the configured one, until proven

    snapshot = rig.volumes.create_snapshot("cf-snap", source)
    assert rig.copy_adds() == [configured, taken]  # refused, then the other form once
    assert rig.client.copy_from_form is taken
    assert rig.form_gauge(taken) == 1 and rig.form_gauge(configured) == 0

    clone = rig.volumes.create_volume(
        "pvc-cf-clone", volume_path=BASE, size_bytes=2 * GiB, port=4420,
        source=ContentSource("snapshot", snapshot.snapshot_id), size_ok=bool,
    )  # fmt: skip
    assert clone.capacity_bytes == 2 * GiB
    assert rig.copy_adds() == [configured, taken, taken]  # straight to the form this RDS takes


@BACKENDS
def test_the_configured_form_when_accepted_is_kept_without_trying_the_other(make_rig: MakeRig, backend: str) -> None:
    rig = make_rig(backend, CopyFromAccepts.ANY, CopyFromForm.DISK)
    rig.volumes.create_snapshot("cf-snap", rig.fresh_volume())
    rig.volumes.create_snapshot("cf-snap-2", rig.fresh_volume())
    assert rig.copy_adds() == [CopyFromForm.DISK, CopyFromForm.DISK]
    assert rig.form_gauge(CopyFromForm.DISK) == 1


@BACKENDS
@pytest.mark.parametrize("kind", ["lost-reply", "drop"])
def test_a_copy_whose_reply_was_lost_is_never_repeated_in_the_other_form(
    make_rig: MakeRig, backend: str, kind: str
) -> None:
    rig = make_rig(backend, CopyFromAccepts.DISK, CopyFromForm.FILE)
    source = rig.fresh_volume()
    rig.simulator.faults.add_rule(FaultRule(op="add", kind=kind, times=1))
    with pytest.raises(errors.Unavailable, match="safe to retry"):
        rig.volumes.create_snapshot("cf-snap", source)
    assert rig.copy_adds() == [CopyFromForm.FILE]  # one command, whose outcome was settled by re-reading
    assert rig.client.copy_from_form is CopyFromForm.FILE and rig.form_gauge(CopyFromForm.FILE) == 1

    rig.volumes.create_snapshot("cf-snap", source)  # the CO's retry: now a clear refusal, then the other form
    assert rig.copy_adds() == [CopyFromForm.FILE, CopyFromForm.FILE, CopyFromForm.DISK]


@BACKENDS
def test_once_a_form_is_proven_a_refusal_is_the_answer(make_rig: MakeRig, backend: str) -> None:
    rig = make_rig(backend, CopyFromAccepts.ANY, CopyFromForm.FILE)
    rig.volumes.create_snapshot("cf-snap", rig.fresh_volume())
    source = rig.fresh_volume()
    rig.simulator.faults.add_rule(FaultRule(op="add", kind="error", message="no such item", times=1))
    with pytest.raises(errors.NotFound, match="no such item"):
        rig.volumes.create_snapshot("cf-snap-2", source)
    assert rig.copy_adds() == [CopyFromForm.FILE, CopyFromForm.FILE]
    assert rig.client.copy_from_form is CopyFromForm.FILE
