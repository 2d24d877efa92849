"""The default command runner: a clean environment, no stdin, a timeout that kills."""

from __future__ import annotations

from pathlib import Path

import pytest

from rds_csi.mount import CommandTimeout, SubprocessRunner


def test_tools_run_in_a_clean_c_locale_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("PATH", "/nowhere")
    result = SubprocessRunner().run(["env"], timeout=30)
    assert result.returncode == 0
    assert sorted(result.stdout.splitlines()) == ["LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


def test_a_tool_reads_no_stdin() -> None:
    result = SubprocessRunner().run(["cat"], timeout=30)
    assert (result.returncode, result.stdout) == (0, "")


def test_exit_status_and_both_streams_are_reported() -> None:
    result = SubprocessRunner().run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")


def _running_with_argument(marker: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes().split(b"\0"):
                found.append(cmdline.parent.name)
        except OSError:  # the process ended while we looked
            continue
    return found


def test_a_tool_past_its_timeout_is_killed_and_reaped() -> None:
    marker = "617.25"  # an odd sleep length names this test's child among the machine's processes
    with pytest.raises(CommandTimeout) as info:
        SubprocessRunner().run(["sleep", marker], timeout=0.5)
    assert info.value.argv == ("sleep", marker)
    assert "0.5s" in str(info.value)
    assert _running_with_argument(marker) == []


def test_a_missing_tool_is_an_os_error() -> None:
    with pytest.raises(FileNotFoundError):
        SubprocessRunner().run(["rds-csi-no-such-tool"], timeout=30)
