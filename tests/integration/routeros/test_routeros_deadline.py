"""An answer that trickles in (one byte at a time, each well within any per-read timeout) is cut at the deadline of
the call it serves, over REST as over SSH: the call fails retryably and its connection is really closed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rds_csi.core import errors
from rds_csi.core.deadlines import call_deadline
from rds_csi.routeros.client import RouterOSClient
from rds_csi.routeros.names import backing_file_path
from rds_csi.routeros.rest import RestSettings, RestTransport
from rds_csi.routeros.ssh import SshPool, SshSettings, SshTransport
from rds_csi.routeros.transport import Transport
from rds_csi.simulator import FaultRule
from tests.support import SIM_PASSWORD, SIM_USER, SimulatorAccess, start_simulator, wait_until

# A byte every 0.2 s: ~200 bytes of answer take 40 s, while no single read ever waits near the call's 1 s.
INTERVAL = 0.2
DEADLINE = 1.0
BASE = "/storage-pool/metal-csi"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorAccess]:
    directory = tmp_path_factory.mktemp("deadline")
    access = start_simulator(directory)
    yield access
    access.simulator.stop()


def transport(sim: SimulatorAccess, backend: str) -> Transport:
    simulator = sim.simulator
    if backend == "ssh":
        settings = SshSettings(
            host="127.0.0.1",
            port=simulator.ssh_port,
            username=SIM_USER,
            key_file=str(sim.key_file),
            pinned_host_key=simulator.host_public_key,
        )
        return SshTransport(SshPool(settings))
    rest = RestSettings(
        base_url=simulator.rest_url.removesuffix("/rest"),
        username=SIM_USER,
        password=SIM_PASSWORD,
        ca_file=str(simulator.rest_certificate),
    )
    return RestTransport(rest)


# An SSH set prints nothing, so only REST has a change whose answer can trickle.
@pytest.mark.parametrize(("backend", "op"), [("ssh", "print"), ("rest", "print"), ("rest", "set")])
def test_a_trickling_answer_is_cut_at_the_calls_deadline(sim: SimulatorAccess, backend: str, op: str) -> None:
    simulator = sim.simulator
    client = RouterOSClient(transport(sim, backend), command_timeout=30)
    slot = f"pvc-dl-{backend}-{op}"
    if op == "set":
        client.create_disk(slot=slot, file_path=backing_file_path(BASE, slot), size_bytes=1 << 30, port=4420)
    before = len(simulator.trickles)
    simulator.faults.add_rule(FaultRule(op=op, kind="trickle", interval=INTERVAL, times=1))
    try:
        # A read fails UNAVAILABLE; a change's lost answer is repeated once, which the passed deadline refuses.
        with call_deadline(DEADLINE), pytest.raises((errors.Unavailable, errors.DeadlineExceeded)):
            if op == "print":
                client.list_disks()
            else:
                client.set_allowed_hosts(slot, ["nqn.2014-08.org.nvmexpress:uuid:0f923194-922a-5dd8-b376-c2c6ccb56dd8"])
        # The call is back while the server is still sending (or has just seen the client go): never finished.
        assert not any(t.finished for t in simulator.trickles[before:])
        assert wait_until(lambda: len(simulator.trickles) > before, timeout=10)  # the connection was really cut
        (trickle,) = simulator.trickles[before:]
        assert trickle.transport == backend and 0 < trickle.sent < trickle.total
        assert client.get_disk("pvc-none") is None  # and the transport works on
    finally:
        simulator.faults.clear_rules()
        if op == "set":
            client.remove_disk(slot)
            client.remove_file(backing_file_path(BASE, slot))
        client.transport.close()
