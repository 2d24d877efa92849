"""The fabrics rules without I/O: the connect target from volume_context, the option string, the kernel's reply,
"already connected", and what each kernel errno means."""

from __future__ import annotations

import errno
import os

import pytest

from rds_csi._native import NvmeController, NvmeSubsystem
from rds_csi.core import errors
from rds_csi.nvme import FabricsTarget, HostIdentity, target_from_volume_context
from rds_csi.nvme.fabrics import (
    build_connect_options,
    connect_error,
    disconnect_error,
    matching_controller,
    parse_address,
    parse_connect_reply,
)

pytestmark = pytest.mark.native  # rds_csi.nvme loads the sysfs scanner and ioctls of rds_csi._native

NQN = "nqn.2000-02.com.mikrotik:pvc-3f1c2a9e-8d1b-4c7e-9f00-1a2b3c4d5e6f"
HOST = HostIdentity(
    "nqn.2014-08.org.nvmexpress:uuid:5b2c0e44-7a35-4d0a-9f51-3c4e1f0a7d21", "5b2c0e44-7a35-4d0a-9f51-3c4e1f0a7d21"
)
# What the controller freezes into a created volume's context (rds_csi.csi.controller), spelled out: renaming a
# key on either side breaks this contract test.
CONTROLLER_CONTEXT = {
    "nvmeAddress": "10.0.0.5",
    "nvmePort": "4420",
    "nqn": NQN,
    "volumePath": "/storage-pool/metal-csi",
    "ctrlLossTmo": "-1",
    "reconnectDelay": "5",
    "migrationTimeoutSeconds": "300",
    "keepAliveTmo": "15",
    "fencing": "true",
}


# --- volume_context -----------------------------------------------------------------------------------------


def test_the_controllers_volume_context_is_a_full_target() -> None:
    assert target_from_volume_context(CONTROLLER_CONTEXT) == FabricsTarget(
        nqn=NQN, address="10.0.0.5", port=4420, ctrl_loss_tmo=-1, reconnect_delay=5, keep_alive_tmo=15
    )


def test_unset_options_are_left_to_the_kernel_and_the_port_defaults_to_4420() -> None:
    # A pre-provisioned PV's volumeAttributes may carry only what locates the subsystem.
    target = target_from_volume_context({"nqn": NQN, "nvmeAddress": "rds.example.net"})
    assert target == FabricsTarget(nqn=NQN, address="rds.example.net", port=4420)


def test_nr_io_queues_from_a_pv_attribute_is_passed_on() -> None:
    assert target_from_volume_context({**CONTROLLER_CONTEXT, "nrIoQueues": "4"}).nr_io_queues == 4


@pytest.mark.parametrize("missing", ["nqn", "nvmeAddress"])
def test_a_missing_locator_is_invalid_argument_naming_it(missing: str) -> None:
    context = {k: v for k, v in CONTROLLER_CONTEXT.items() if k != missing}
    with pytest.raises(errors.InvalidArgument, match=f"volume_context {missing} is required"):
        target_from_volume_context(context)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("nqn", f"{NQN},hostnqn=nqn.2014-08.com.evil:x"),  # an option smuggled in through a value
        ("nqn", "pvc-1"),
        ("nvmeAddress", "10.0.0.5,trsvcid=1"),
        ("nvmeAddress", "10.0.0.5=x"),
        ("nvmePort", "4420,nqn=x"),
        ("nvmePort", "0"),
        ("nvmePort", "65536"),
        ("nvmePort", "1_000"),
        ("nvmePort", "+4420"),
        ("nvmePort", "\u0664\u0664\u0662\u0660"),  # Arabic-Indic digits: int() takes them, the kernel would not
        ("ctrlLossTmo", "-2"),
        ("ctrlLossTmo", "86401"),
        ("reconnectDelay", "0"),
        ("keepAliveTmo", "soon"),
        ("nrIoQueues", "0"),
    ],
)
def test_a_bad_value_is_invalid_argument_naming_its_key(key: str, value: str) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        target_from_volume_context({**CONTROLLER_CONTEXT, key: value})
    assert info.value.message.startswith(f"volume_context {key}")


# --- the option string --------------------------------------------------------------------------------------


def test_options_carry_every_set_value_in_the_kernels_syntax() -> None:
    target = target_from_volume_context({**CONTROLLER_CONTEXT, "nrIoQueues": "2"})

    assert build_connect_options(target, "10.0.0.5", HOST) == (
        f"nqn={NQN},transport=tcp,traddr=10.0.0.5,trsvcid=4420,hostnqn={HOST.nqn},hostid={HOST.id},"
        "ctrl_loss_tmo=-1,reconnect_delay=5,keep_alive_tmo=15,nr_io_queues=2"
    )


def test_options_leave_out_what_is_not_set_and_spell_ipv6_compressed() -> None:
    target = FabricsTarget(nqn=NQN, address="rds.example.net", port=4421)

    assert build_connect_options(target, "fd00:0:0::0005", HOST) == (
        f"nqn={NQN},transport=tcp,traddr=fd00::5,trsvcid=4421,hostnqn={HOST.nqn},hostid={HOST.id}"
    )


def test_options_need_an_ip_literal() -> None:
    with pytest.raises(ValueError):
        build_connect_options(FabricsTarget(nqn=NQN, address="rds"), "rds.example.net", HOST)


def test_a_value_that_bypassed_its_type_still_cannot_add_an_option() -> None:
    target = FabricsTarget(nqn=NQN, address="10.0.0.5", port="4420,hostnqn=x")  # type: ignore[arg-type]
    with pytest.raises(errors.Internal, match="refusing"):
        build_connect_options(target, "10.0.0.5", HOST)


@pytest.mark.parametrize(
    ("nqn", "host_id"),
    [("nqn.2014-08.com.example,x=y", HOST.id), (HOST.nqn, "not-a-uuid"), (HOST.nqn, HOST.id + ",x")],
)
def test_host_identity_is_validated_when_made(nqn: str, host_id: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        HostIdentity(nqn, host_id)


@pytest.mark.parametrize(("reply", "instance"), [("instance=0,cntlid=1\n", 0), ("instance=12,cntlid=7", 12)])
def test_reply_names_the_new_controller(reply: str, instance: int) -> None:
    assert parse_connect_reply(reply).controller == f"nvme{instance}"


@pytest.mark.parametrize("reply", ["", "instance=-1,cntlid=-1\n", "instance=a,cntlid=1", "ok"])
def test_any_other_reply_is_internal(reply: str) -> None:
    with pytest.raises(errors.Internal):
        parse_connect_reply(reply)


# --- already connected --------------------------------------------------------------------------------------


def controller(**changes: str) -> NvmeController:
    fields = {
        "name": "nvme3",
        "state": "live",
        "transport": "tcp",
        "address": "traddr=10.0.0.5,trsvcid=4420,src_addr=10.0.0.9",
        "host_nqn": HOST.nqn,
    } | changes
    return NvmeController(**fields)


def subsystem(*controllers: NvmeController) -> NvmeSubsystem:
    return NvmeSubsystem("nvme-subsys3", NQN, controllers, ())


def test_address_attribute_is_read_as_its_fields() -> None:
    assert parse_address("traddr=fd00::5,trsvcid=4420,src_addr=fd00::9") == {
        "traddr": "fd00::5",
        "trsvcid": "4420",
        "src_addr": "fd00::9",
    }


@pytest.mark.parametrize("state", ["live", "connecting", "resetting", "new"])
def test_a_controller_of_this_host_to_that_address_is_the_connection(state: str) -> None:
    # Reconnecting counts: the kernel keeps trying, and would refuse a second connect as a duplicate.
    existing = controller(state=state)
    assert matching_controller(subsystem(existing), "10.0.0.5", 4420, HOST) == existing


def test_the_same_ipv6_address_spelled_otherwise_matches() -> None:
    existing = controller(address="traddr=fd00:0::5,trsvcid=4420")
    assert matching_controller(subsystem(existing), "fd00::5", 4420, HOST) == existing


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "deleting"},
        {"state": "deleting (no IO)"},
        {"state": "dead"},
        {"address": "traddr=10.0.0.6,trsvcid=4420"},
        {"address": "traddr=10.0.0.5,trsvcid=4421"},
        {"host_nqn": "nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555"},
        {"transport": "rdma"},
    ],
)
def test_any_other_controller_is_not_the_connection(changes: dict[str, str]) -> None:
    assert matching_controller(subsystem(controller(**changes)), "10.0.0.5", 4420, HOST) is None


def test_no_subsystem_is_no_connection() -> None:
    assert matching_controller(None, "10.0.0.5", 4420, HOST) is None


# --- errno -> domain error ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "says"),
    [
        (errno.EIO, errors.FailedPrecondition, "not allowed"),  # what the VM's kernel answers a refused host
        (errno.ECONNREFUSED, errors.Unavailable, "retrying"),
        (errno.ETIMEDOUT, errors.Unavailable, "retrying"),
        (errno.ENETUNREACH, errors.Unavailable, "retrying"),
        (errno.EHOSTUNREACH, errors.Unavailable, "retrying"),
        (errno.EINVAL, errors.FailedPrecondition, "host ID"),
        (errno.ENOENT, errors.FailedPrecondition, "nvme-tcp"),
        (errno.EACCES, errors.FailedPrecondition, "privileged"),
        (errno.EMSGSIZE, errors.Internal, "EMSGSIZE"),
    ],
)
def test_connect_errno_becomes_a_domain_error(code: int, kind: type[errors.RdsCsiError], says: str) -> None:
    target = FabricsTarget(nqn=NQN, address="10.0.0.5")
    error = connect_error(OSError(code, os.strerror(code)), target, "10.0.0.5", HOST)
    assert type(error) is kind
    assert says in error.message
    assert f"{NQN} at 10.0.0.5:4420" in error.message


@pytest.mark.parametrize(
    ("code", "kind"),
    [(errno.EBUSY, errors.FailedPrecondition), (errno.EIO, errors.Unavailable), (errno.EPERM, errors.Internal)],
)
def test_disconnect_errno_becomes_a_domain_error(code: int, kind: type[errors.RdsCsiError]) -> None:
    error = disconnect_error(OSError(code, os.strerror(code)), "flushing nvme3n1")
    assert type(error) is kind
    assert error.message.startswith("flushing nvme3n1")
