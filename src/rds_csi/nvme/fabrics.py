"""NVMe over Fabrics (TCP) connect and disconnect rules, without I/O.

- ``target_from_volume_context``: the connect parameters the controller froze into a volume's context (or an
  administrator wrote into a pre-provisioned PV), each validated and typed.
- ``build_connect_options``: the option string the kernel's ``/dev/nvme-fabrics`` takes
  (``nqn=...,transport=tcp,traddr=...,...``). Every value comes from a validated type, so none can carry the
  ``,`` or ``=`` that would smuggle in another option; the builder still refuses one, as a last line.
- ``parse_connect_reply``: the kernel's ``instance=N,cntlid=M`` answer.
- ``matching_controller``: whether the kernel already holds this connection (what it would refuse with EALREADY).
- ``connect_error`` / ``disconnect_error``: the kernel's errno, as the domain error the CSI layer maps to a code.
"""

from __future__ import annotations

import errno
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rds_csi._native import NvmeController, NvmeSubsystem
from rds_csi.core import errors
from rds_csi.core.addresses import is_host
from rds_csi.core.nqn import validate_host_nqn, validate_nqn
from rds_csi.nvme.hostid import parse_host_id_file

# volume_context keys (the StorageClass parameter names the controller copies there; rds_csi.csi.validation and
# the controller take them from here).
NQN_KEY = "nqn"
ADDRESS_KEY = "nvmeAddress"
PORT_KEY = "nvmePort"
CTRL_LOSS_TMO_KEY = "ctrlLossTmo"
RECONNECT_DELAY_KEY = "reconnectDelay"
KEEP_ALIVE_TMO_KEY = "keepAliveTmo"
NR_IO_QUEUES_KEY = "nrIoQueues"  # no StorageClass parameter yet: only a pre-provisioned PV's attributes set it

# Accepted ranges, in seconds (queues for nr_io_queues). ctrl_loss_tmo -1: reconnect forever.
CTRL_LOSS_TMO_RANGE = (-1, 86400)
RECONNECT_DELAY_RANGE = (1, 3600)
KEEP_ALIVE_TMO_RANGE = (1, 3600)
NR_IO_QUEUES_RANGE = (1, 1024)
PORT_RANGE = (1, 65535)
DEFAULT_PORT = 4420  # the IANA port of NVMe/TCP

DELETING_STATES = frozenset({"deleting", "deleting (no IO)", "dead"})
"""Controller states the kernel no longer counts as a connection (a new connect to the same target is allowed)."""

_REPLY_RE = re.compile(r"instance=([0-9]+),cntlid=([0-9]+)\s*")
_FORBIDDEN_IN_VALUES = (",", "=", "\n", "\x00")


@dataclass(frozen=True, slots=True)
class FabricsTarget:
    """Where a volume's subsystem is exported, and how the kernel should hold the connection."""

    nqn: str
    address: str  # an IP address or a host name (resolved to an IP before the connect)
    port: int = DEFAULT_PORT
    ctrl_loss_tmo: int | None = None  # None: the kernel's default
    reconnect_delay: int | None = None
    keep_alive_tmo: int | None = None
    nr_io_queues: int | None = None


@dataclass(frozen=True, slots=True)
class HostIdentity:
    """The pair the kernel identifies this host by; see ``rds_csi.nvme.hostid``."""

    nqn: str
    id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "nqn", validate_host_nqn(self.nqn))
        object.__setattr__(self, "id", parse_host_id_file(self.id))


@dataclass(frozen=True, slots=True)
class ConnectReply:
    instance: int  # the controller is /sys/class/nvme/nvme<instance>
    cntlid: int

    @property
    def controller(self) -> str:
        return f"nvme{self.instance}"


def _int_value(context: Mapping[str, str], key: str, bounds: tuple[int, int]) -> int | None:
    raw = context.get(key)
    if raw is None:
        return None
    text = raw.strip()
    low, high = bounds
    # int() alone would take "1_000", "+5" and non-ASCII digits; only plain decimal reaches the option string.
    if not re.fullmatch(r"-?[0-9]{1,10}", text) or not low <= int(text) <= high:
        raise errors.InvalidArgument(
            f"volume_context {key}={errors.quote_input(raw)}: must be an integer between {low} and {high}"
        )
    return int(text)


def target_from_volume_context(context: Mapping[str, str]) -> FabricsTarget:
    """The connect target of a volume from its ``volume_context``; ``InvalidArgument`` naming the bad key."""
    nqn = context.get(NQN_KEY, "")
    if not nqn:
        raise errors.InvalidArgument(f"volume_context {NQN_KEY} is required (the volume's subsystem NQN)")
    validate_nqn(nqn, f"volume_context {NQN_KEY}")
    address = context.get(ADDRESS_KEY, "").strip().strip("[]")
    if not address:
        raise errors.InvalidArgument(f"volume_context {ADDRESS_KEY} is required (the NVMe/TCP target address)")
    if not is_host(address):
        raise errors.InvalidArgument(
            f"volume_context {ADDRESS_KEY}={errors.quote_input(address)}: not a host name or IP address"
        )
    port = _int_value(context, PORT_KEY, PORT_RANGE)
    return FabricsTarget(
        nqn=nqn,
        address=address,
        port=DEFAULT_PORT if port is None else port,
        ctrl_loss_tmo=_int_value(context, CTRL_LOSS_TMO_KEY, CTRL_LOSS_TMO_RANGE),
        reconnect_delay=_int_value(context, RECONNECT_DELAY_KEY, RECONNECT_DELAY_RANGE),
        keep_alive_tmo=_int_value(context, KEEP_ALIVE_TMO_KEY, KEEP_ALIVE_TMO_RANGE),
        nr_io_queues=_int_value(context, NR_IO_QUEUES_KEY, NR_IO_QUEUES_RANGE),
    )


def _option(key: str, value: str | int) -> str:
    text = str(value)
    if not text or any(c in text for c in _FORBIDDEN_IN_VALUES):
        raise errors.Internal(f"refusing to send the kernel option {key}={errors.quote_input(text)}")
    return f"{key}={text}"


def build_connect_options(target: FabricsTarget, traddr: str, host: HostIdentity) -> str:
    """The option string for ``/dev/nvme-fabrics``; ``traddr`` is the target's address as an IP literal."""
    address = ipaddress.ip_address(traddr)  # ValueError: the caller resolves host names first
    options = [
        _option("nqn", validate_nqn(target.nqn)),
        _option("transport", "tcp"),
        _option("traddr", address.compressed),
        _option("trsvcid", target.port),
        _option("hostnqn", host.nqn),
        _option("hostid", host.id),
    ]
    for key, value in (
        ("ctrl_loss_tmo", target.ctrl_loss_tmo),
        ("reconnect_delay", target.reconnect_delay),
        ("keep_alive_tmo", target.keep_alive_tmo),
        ("nr_io_queues", target.nr_io_queues),
    ):
        if value is not None:
            options.append(_option(key, value))
    return ",".join(options)


def parse_connect_reply(text: str) -> ConnectReply:
    """The controller the kernel made, from its ``instance=N,cntlid=M`` reply; ``Internal`` for anything else."""
    match = _REPLY_RE.fullmatch(text)
    if match is None:
        raise errors.Internal(f"unexpected reply from /dev/nvme-fabrics: {errors.quote_input(text)}")
    return ConnectReply(int(match.group(1)), int(match.group(2)))


def parse_address(text: str) -> dict[str, str]:
    """A controller's ``address`` attribute (``traddr=10.0.0.5,trsvcid=4420,src_addr=...``) as a mapping."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _same_address(left: str, right: str) -> bool:
    try:
        return ipaddress.ip_address(left) == ipaddress.ip_address(right)
    except ValueError:
        return left.lower() == right.lower()


def matching_controller(
    subsystem: NvmeSubsystem | None, traddr: str, port: int, host: HostIdentity
) -> NvmeController | None:
    """The controller that already connects this host to the subsystem at ``traddr``:``port``, if any.

    It is what the kernel itself would call a duplicate (same subsystem, transport, address, port and host NQN) and
    not being torn down: one that is reconnecting (``connecting``, ``resetting``) counts, since the kernel keeps
    trying and a new connect would be refused.
    """
    if subsystem is None:
        return None
    for controller in subsystem.controllers:
        if controller.transport != "tcp" or controller.state in DELETING_STATES:
            continue
        fields = parse_address(controller.address)
        if (
            _same_address(fields.get("traddr", ""), traddr)
            and fields.get("trsvcid") == str(port)
            and controller.host_nqn == host.nqn
        ):
            return controller
    return None


_RETRYABLE_CONNECT = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ETIMEDOUT,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EAGAIN,
        errno.EINTR,
        errno.ENOMEM,
        errno.EBUSY,
    }
)


def _describe(error: OSError) -> str:
    name = errno.errorcode.get(error.errno or 0, str(error.errno))
    return f"{name}: {error.strerror or error}"


def connect_error(error: OSError, target: FabricsTarget, traddr: str, host: HostIdentity) -> errors.RdsCsiError:
    """The domain error for a failed connect (EALREADY, "already connected", is the caller's to handle)."""
    where = f"{target.nqn} at {traddr}:{target.port}"
    code = error.errno
    if code in _RETRYABLE_CONNECT:
        return errors.Unavailable(f"NVMe/TCP connect to {where} failed ({_describe(error)}); retrying may succeed")
    if code == errno.EIO:
        return errors.FailedPrecondition(
            f"the NVMe/TCP target refused {where} ({_describe(error)}): the subsystem is not exported there, "
            f"or host {host.nqn} is not allowed to connect to it"
        )
    if code == errno.EINVAL:
        return errors.FailedPrecondition(
            f"the kernel refused the connect options for {where} ({_describe(error)}; the kernel log says which): "
            f"typically host NQN {host.nqn} with host ID {host.id} disagrees with an existing connection's pair, "
            "or this kernel lacks an option"
        )
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return errors.FailedPrecondition(
            f"no NVMe over Fabrics support to connect {where} ({_describe(error)}): load the nvme-tcp kernel module"
        )
    if code in (errno.EACCES, errno.EPERM):
        return errors.FailedPrecondition(
            f"not allowed to connect {where} ({_describe(error)}): the node plugin must run privileged"
        )
    return errors.Internal(f"NVMe/TCP connect to {where} failed ({_describe(error)})")


def disconnect_error(error: OSError, what: str) -> errors.RdsCsiError:
    """The domain error for a failed flush or controller deletion of ``what``."""
    if error.errno == errno.EBUSY:
        return errors.FailedPrecondition(f"{what} is in use (mounted, or held by another device): not disconnected")
    if error.errno in (errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR):
        return errors.Unavailable(f"{what} failed ({_describe(error)}): not disconnected, retrying may succeed")
    return errors.Internal(f"{what} failed ({_describe(error)}): not disconnected")
