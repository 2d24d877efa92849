"""The transport interface the RouterOS client talks through.

A transport executes one :class:`~rds_csi.routeros.commands.Command` and returns the records RouterOS answered
(property name -> value, as strings). SSH (``rds_csi.routeros.ssh``) renders the command for the console and
parses the text; REST (``rds_csi.routeros.rest``) maps it onto ``/rest``. Both raise the same ``rds_csi.core.errors``.
"""

from __future__ import annotations

from typing import Protocol

from rds_csi.core import errors
from rds_csi.routeros.commands import Command

Record = dict[str, str]


class CommandOutcomeUnknown(errors.Unavailable):
    """The command was sent but its reply was lost: it may or may not have run. Re-read state to decide."""


class CredentialsRefused(errors.Unavailable):
    """RouterOS refused the user's key or password (SSH) or basic credentials (REST, 401/403). The same class for
    both transports: UNAVAILABLE, so the sidecars keep retrying and a corrected Secret takes effect without a
    restart, with a message (and the ``credentials_refused`` command result) that tells the operator what to fix."""


class Transport(Protocol):
    name: str

    def execute(self, command: Command, timeout: float) -> list[Record]:
        """Run ``command``; raise ``rds_csi.core.errors`` exceptions for RouterOS failures and transport trouble."""
        ...

    def close(self) -> None: ...
