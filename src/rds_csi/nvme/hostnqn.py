"""The NVMe host NQN this node's kernel connects with.

The identity lives where nvme-cli keeps it (``/etc/nvme/hostnqn`` by default), so the driver and any nvme-cli run
on the host present the same NQN to the RDS. When the file is missing, one is generated the way ``nvme
gen-hostnqn`` does (``nqn.2014-08.org.nvmexpress:uuid:<uuid>``, the uuid being the machine's DMI product UUID when
that is readable and names a machine, else a random one) and written atomically, so it survives restarts. A file
that is present but does not hold a valid NQN is the operator's to fix: it is reported, never replaced.

The parsing and generation rules are pure functions; the file access takes its paths as arguments.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rds_csi.core import errors
from rds_csi.core.nqn import UUID_NQN_PREFIX, validate_host_nqn
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

DMI_PRODUCT_UUID_FILE = Path("/sys/class/dmi/id/product_uuid")

_ALL_ONES = (1 << 128) - 1


class HostNqnOrigin(StrEnum):
    FILE = "file"  # read from an existing file
    DMI = "dmi-product-uuid"  # generated from the machine's DMI product UUID, then saved
    RANDOM = "random"  # generated from a random UUID (no usable DMI UUID), then saved


@dataclass(frozen=True, slots=True)
class HostNqn:
    nqn: str
    origin: HostNqnOrigin


def parse_host_nqn_file(text: str) -> str:
    """The NQN a host NQN file holds (one line; surrounding whitespace ignored), or ``InvalidArgument``."""
    value = text.strip()
    if not value:
        raise errors.InvalidArgument("host_nqn is empty")
    return validate_host_nqn(value)


def machine_uuid(product_uuid: str) -> uuid.UUID | None:
    """The DMI product UUID as a UUID if it names a machine; None for firmware placeholders (all 0s or all Fs)."""
    try:
        value = uuid.UUID(product_uuid.strip())
    except ValueError:
        return None
    return None if value.int in (0, _ALL_ONES) else value


def uuid_host_nqn(value: uuid.UUID) -> str:
    """The NVMe-defined host NQN for a UUID: ``nqn.2014-08.org.nvmexpress:uuid:<uuid in lower case>``."""
    return validate_host_nqn(UUID_NQN_PREFIX + str(value))


def load_or_create_host_nqn(
    path: Path,
    *,
    product_uuid_file: Path = DMI_PRODUCT_UUID_FILE,
    random_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
) -> HostNqn:
    """Read the host NQN from ``path``, or generate one and save it there when the file does not exist.

    A file that exists but holds no valid NQN raises ``FailedPrecondition`` naming it. Failing file-system calls
    (permissions, a read-only mount) raise ``OSError``: without a stable identity the node must not start.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return _create(path, product_uuid_file, random_uuid)
    try:
        return HostNqn(parse_host_nqn_file(text), HostNqnOrigin.FILE)
    except errors.InvalidArgument as exc:
        raise errors.FailedPrecondition(
            f"{path}: {exc.message}; correct it (or remove it to have one generated)"
        ) from exc


def _create(path: Path, product_uuid_file: Path, random_uuid: Callable[[], uuid.UUID]) -> HostNqn:
    try:
        found = machine_uuid(product_uuid_file.read_text(encoding="ascii", errors="replace"))
    except OSError:  # no DMI on this platform, or not readable without root
        found = None
    if found is not None:
        host = HostNqn(uuid_host_nqn(found), HostNqnOrigin.DMI)
    else:
        host = HostNqn(uuid_host_nqn(random_uuid()), HostNqnOrigin.RANDOM)
    write_atomically(path, host.nqn + "\n")
    log_event(_log, "nvme.host_nqn_generated", path=str(path), host_nqn=host.nqn, origin=host.origin.value)
    return host


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old state or the whole new file, never a partial one, even across a crash."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            os.fchmod(handle.fileno(), 0o644)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)  # the rename itself must reach the disk before we rely on the file at the next start
    finally:
        os.close(directory)
