"""The NVMe host ID this node's kernel connects with, kept consistent with the host NQN.

The kernel identifies a host by the pair (host NQN, host ID): a connect whose ID disagrees with the one an existing
connection of the same NQN used is refused, so every connect from this node (ours and any nvme-cli run) must send
the same pair. The ID therefore lives where nvme-cli keeps it (``/etc/nvme/hostid`` by default). When the file is
missing it is generated the way nvme-cli derives it: for a host NQN of the ``nqn.2014-08.org.nvmexpress:uuid:<uuid>``
form the ID *is* that UUID; for any other NQN a random UUID is drawn. Either way it is written atomically and read
back at every start. A file that is present but holds no UUID is the operator's to fix: it is reported, never
replaced. A valid file that disagrees with a UUID host NQN is used as it is (nvme-cli on this host sends the same
pair, which is what the kernel checks) and logged, since replacing it would break connections made with it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rds_csi.core import errors
from rds_csi.core.nqn import UUID_NQN_PREFIX
from rds_csi.nvme.hostnqn import write_atomically
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)


class HostIdOrigin(StrEnum):
    FILE = "file"  # read from an existing file
    HOST_NQN = "host-nqn-uuid"  # generated: the UUID of a uuid-form host NQN, then saved
    RANDOM = "random"  # generated: a random UUID (the host NQN names no UUID), then saved


@dataclass(frozen=True, slots=True)
class HostId:
    id: str  # lower-case canonical UUID text, as the kernel prints it in /sys/class/nvme/nvmeN/hostid
    origin: HostIdOrigin


def parse_host_id_file(text: str) -> str:
    """The host ID a host ID file holds (one UUID; surrounding whitespace ignored), lower-cased and canonical, or
    ``InvalidArgument``."""
    value = text.strip()
    if not value:
        raise errors.InvalidArgument("host_id is empty")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise errors.InvalidArgument(f"host_id is not a UUID: {value[:80]!r}") from None
    if str(parsed) != value.lower():  # uuid.UUID also takes braces, "urn:uuid:" and bare hex; the kernel does not
        raise errors.InvalidArgument(f"host_id must be a UUID in the 8-4-4-4-12 form, got {value[:80]!r}")
    return str(parsed)


def host_nqn_uuid(host_nqn: str) -> str | None:
    """The UUID a ``nqn.2014-08.org.nvmexpress:uuid:<uuid>`` host NQN names (lower case), else None."""
    if not host_nqn.startswith(UUID_NQN_PREFIX):
        return None
    try:
        return parse_host_id_file(host_nqn[len(UUID_NQN_PREFIX) :])
    except errors.InvalidArgument:
        return None


def load_or_create_host_id(path: Path, host_nqn: str, *, random_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> HostId:
    """Read the host ID from ``path``, or derive one from ``host_nqn`` (see the module docstring) and save it there
    when the file does not exist.

    A file that exists but holds no valid ID raises ``FailedPrecondition`` naming it. Failing file-system calls
    raise ``OSError``: without a stable identity the node must not start.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return _create(path, host_nqn, random_uuid)
    try:
        host_id = HostId(parse_host_id_file(text), HostIdOrigin.FILE)
    except errors.InvalidArgument as exc:
        raise errors.FailedPrecondition(
            f"{path}: {exc.message}; correct it (or remove it to have one generated)"
        ) from exc
    expected = host_nqn_uuid(host_nqn)
    if expected is not None and expected != host_id.id:
        log_event(
            _log,
            "nvme.host_id_differs_from_host_nqn",
            logging.WARNING,
            path=str(path),
            host_id=host_id.id,
            host_nqn=host_nqn,
            effect="used as it is: every connect from this node sends this pair",
        )
    return host_id


def _create(path: Path, host_nqn: str, random_uuid: Callable[[], uuid.UUID]) -> HostId:
    derived = host_nqn_uuid(host_nqn)
    if derived is not None:
        host_id = HostId(derived, HostIdOrigin.HOST_NQN)
    else:
        host_id = HostId(str(random_uuid()), HostIdOrigin.RANDOM)
    write_atomically(path, host_id.id + "\n")
    log_event(_log, "nvme.host_id_generated", path=str(path), host_id=host_id.id, origin=host_id.origin.value)
    return host_id
