"""How the mount layer runs external tools (blkid, mkfs, resize2fs, xfs_growfs): a small injectable protocol.

Tests pass a runner that times out, fails or answers garbage; production uses ``SubprocessRunner``.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# A fixed environment: C-locale messages (callers read them), and a PATH that finds the system tools wherever the
# distribution puts them, never one inherited from whoever started the plugin.
TOOL_ENVIRONMENT = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

# After a timeout the tool is killed; a process stuck in uninterruptible I/O (a dead NVMe path) cannot die until
# that I/O ends, and waiting for it would hang the caller just as long.
_REAP_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Completed:
    """A tool that ran to its end: exit status and what it printed (decoded, undecodable bytes replaced)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandTimeout(Exception):
    """The tool did not finish in time; it was killed (or is being reaped in the background)."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        super().__init__(f"{argv[0]} did not finish within {timeout:g}s")
        self.argv = tuple(argv)
        self.timeout = timeout


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], *, timeout: float) -> Completed:
        """Run ``argv`` (no shell) with stdin closed; ``CommandTimeout`` after ``timeout`` seconds, ``OSError`` if
        it cannot be started."""
        ...


class SubprocessRunner:
    """Runs tools as child processes with ``TOOL_ENVIRONMENT`` and a timeout."""

    def run(self, argv: Sequence[str], *, timeout: float) -> Completed:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=TOOL_ENVIRONMENT,
            close_fds=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            try:
                process.communicate(timeout=_REAP_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                threading.Thread(target=process.wait, name=f"reap-{argv[0]}", daemon=True).start()
            raise CommandTimeout(argv, timeout) from None
        return Completed(
            argv=tuple(argv),
            returncode=process.returncode,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
        )
