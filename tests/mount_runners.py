"""Command runners for failure injection in the mount tests: chosen tools answer what the test says, the rest run
for real (or are refused, in unit tests where nothing may run)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rds_csi.mount.runner import CommandRunner, CommandTimeout, Completed, SubprocessRunner

Answer = Callable[[Sequence[str], float], Completed]


def exits(returncode: int, stdout: str = "", stderr: str = "") -> Answer:
    """An answer: the tool ran and exited like this."""
    return lambda argv, timeout: Completed(tuple(argv), returncode, stdout, stderr)


def times_out(argv: Sequence[str], timeout: float) -> Completed:
    """An answer: the tool never finished."""
    raise CommandTimeout(argv, timeout)


def cannot_start(argv: Sequence[str], timeout: float) -> Completed:
    """An answer: the tool is not installed."""
    raise FileNotFoundError(2, "No such file or directory", argv[0])


@dataclass
class ScriptedRunner:
    """Answers for the tools in ``answers`` (by program name); every other tool goes to ``fallback``, or fails the
    test when there is none. ``calls`` records every argv, answered or not."""

    answers: dict[str, Answer]
    fallback: CommandRunner | None = None
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, timeout: float) -> Completed:
        self.calls.append(tuple(argv))
        answer = self.answers.get(argv[0])
        if answer is not None:
            return answer(argv, timeout)
        if self.fallback is None:
            raise AssertionError(f"unexpected command: {list(argv)}")
        return self.fallback.run(argv, timeout=timeout)

    def ran(self, program: str) -> bool:
        return any(call[0] == program for call in self.calls)


def real_except(answers: dict[str, Answer]) -> ScriptedRunner:
    """Every tool runs for real except the named ones (``real_except({"blkid": times_out})``)."""
    return ScriptedRunner(answers=answers, fallback=SubprocessRunner())
