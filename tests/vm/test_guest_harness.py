"""The qemu guest harness itself: exact output and status, the kernel NVMe/TCP stack, the host's files."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.vm.guest import GuestImage, GuestUnavailable, guest_unavailable_reason, prepare_guest, run_in_guest

# One loopback NVMe/TCP round trip through the guest kernel: nvmet exports a file on the scratch tmpfs, nvme-tcp
# connects to it through /dev/nvme-fabrics, data goes through the block device and lands in the file.
ROUND_TRIP = r"""
set -eu
cfg=/sys/kernel/config/nvmet
nqn=nqn.2000-02.com.mikrotik:harness-round-trip
hostnqn=nqn.2014-08.org.nvmexpress:uuid:5b2c0e44-7a35-4d0a-9f51-3c4e1f0a7d21
port=4420
scratch=$RDS_CSI_GUEST_SCRATCH
mib=1048576

wait_for() {  # wait_for SECONDS COMMAND...: poll COMMAND until it succeeds or the deadline passes
    deadline=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then echo "timed out waiting for: $*" >&2; return 1; fi
        sleep 0.1
    done
}
subsystem_dir() {  # the /sys/class/nvme-subsystem entry whose subsysnqn is $nqn
    for s in /sys/class/nvme-subsystem/*; do
        if [ -r "$s/subsysnqn" ] && [ "$(cat "$s/subsysnqn")" = "$nqn" ]; then echo "$s"; return 0; fi
    done
    return 1
}
namespace_device() {  # nvmeXnY under the subsystem (not the per-path nvmeXcYnZ), once its node exists
    s=$(subsystem_dir) || return 1
    for entry in "$s"/nvme*n*; do
        name=${entry##*/}
        case $name in *c*) continue ;; esac
        if [ -b "/dev/$name" ]; then echo "$name"; return 0; fi
    done
    return 1
}
controller() {  # nvmeX under the subsystem
    s=$(subsystem_dir) || return 1
    for entry in "$s"/nvme*; do
        name=${entry##*/}
        case ${name#nvme} in *n*) continue ;; esac
        echo "$name"; return 0
    done
    return 1
}
subsystem_gone() { ! subsystem_dir >/dev/null; }

test -d "$cfg"
truncate -s 64M "$scratch/namespace.img"
sub="$cfg/subsystems/$nqn"
mkdir "$sub"
echo 1 > "$sub/attr_allow_any_host"
mkdir "$sub/namespaces/1"
printf '%s' "$scratch/namespace.img" > "$sub/namespaces/1/device_path"
echo 1 > "$sub/namespaces/1/buffered_io"
echo 1 > "$sub/namespaces/1/enable"
mkdir "$cfg/ports/1"
echo tcp > "$cfg/ports/1/addr_trtype"
echo ipv4 > "$cfg/ports/1/addr_adrfam"
echo 127.0.0.1 > "$cfg/ports/1/addr_traddr"
echo "$port" > "$cfg/ports/1/addr_trsvcid"
ln -s "$sub" "$cfg/ports/1/subsystems/$nqn"

# The reply to a connect is read from the same open file that received the option string.
exec 3<>/dev/nvme-fabrics
printf 'nqn=%s,transport=tcp,traddr=127.0.0.1,trsvcid=%s,hostnqn=%s' "$nqn" "$port" "$hostnqn" >&3
read -r reply <&3
exec 3>&-
echo "connected: $reply"

wait_for 30 namespace_device >/dev/null
dev=$(namespace_device)
echo "device: $dev bytes=$(( $(cat "/sys/block/$dev/size") * 512 ))"

head -c "$mib" /dev/urandom > "$scratch/pattern"
dd if="$scratch/pattern" of="/dev/$dev" bs="$mib" seek=3 oflag=direct conv=fsync status=none
dd if="/dev/$dev" of="$scratch/read-back" bs="$mib" skip=3 count=1 iflag=direct status=none
cmp "$scratch/pattern" "$scratch/read-back"
dd if="$scratch/namespace.img" of="$scratch/in-file" bs="$mib" skip=3 count=1 status=none
cmp "$scratch/pattern" "$scratch/in-file"
echo "data: read back and found in the backing file"

echo 1 > "/sys/class/nvme/$(controller)/delete_controller"
wait_for 30 subsystem_gone
rm "$cfg/ports/1/subsystems/$nqn"
rmdir "$cfg/ports/1" "$sub/namespaces/1" "$sub"
echo "disconnected and torn down"
"""


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    reason = guest_unavailable_reason()
    if reason is None:
        try:
            return prepare_guest()
        except GuestUnavailable as error:
            reason = str(error)
    if os.environ.get("RDS_CSI_REQUIRE_VM") == "1":
        pytest.fail(f"RDS_CSI_REQUIRE_VM=1 but no guest can run here: {reason}")
    pytest.skip(reason)


def child_pids() -> set[int]:
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may contain spaces and parentheses; the fields after its closing ")" are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid():
            children.add(int(stat.parent.name))
    return children


@pytest.mark.usefixtures("guest_image")
def test_command_output_environment_and_exit_status_come_back_exactly(tmp_path: Path) -> None:
    script = 'echo "out 1"; echo "err 2" >&2; printf "%s|%s\\n" "$GREETING" "$1"; printf "no newline"; exit 7'
    argv = ["/bin/sh", "-c", script, "sh", 'it\'s "quoted" and spaced']

    result = run_in_guest(argv, cwd=str(tmp_path), env={"GREETING": "hello\tworld"})

    assert result.status == 7
    assert result.output == 'out 1\nerr 2\nhello\tworld|it\'s "quoted" and spaced\nno newline'


@pytest.mark.usefixtures("guest_image")
def test_guest_kernel_round_trips_data_over_loopback_nvme_tcp(tmp_path: Path) -> None:
    result = run_in_guest(["/bin/sh", "-c", ROUND_TRIP], cwd=str(tmp_path), timeout=240)

    assert result.status == 0, result.output
    assert "connected: instance=" in result.output
    assert f"bytes={64 * 1024 * 1024}" in result.output
    assert result.output.endswith("data: read back and found in the backing file\ndisconnected and torn down\n")


@pytest.mark.usefixtures("guest_image")
def test_guest_runs_host_python_in_cwd_with_shared_files_and_private_scratch(tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("12")
    program = (
        "import os, pathlib\n"
        "n = int(pathlib.Path('input.txt').read_text())\n"
        "pathlib.Path('output.txt').write_text(str(n * n))\n"
        "scratch = pathlib.Path(os.environ['RDS_CSI_GUEST_SCRATCH'])\n"
        "(scratch / 'marker').write_text('guest only')\n"
        "print(os.getcwd(), os.environ['RDS_CSI_IN_GUEST'], scratch, sum(range(n)))\n"
    )

    result = run_in_guest([sys.executable, "-c", program], cwd=str(tmp_path))

    assert result.status == 0, result.output
    cwd, in_guest, scratch, total = result.output.split()
    assert (cwd, in_guest, total) == (str(tmp_path), "1", "66")
    assert (tmp_path / "output.txt").read_text() == "144"
    assert not (Path(scratch) / "marker").exists()


@pytest.mark.usefixtures("guest_image")
def test_timeout_kills_the_guest_and_raises_with_the_console(tmp_path: Path) -> None:
    before = child_pids()
    started = time.monotonic()

    with pytest.raises(TimeoutError, match="did not finish within 3"):
        run_in_guest(["sleep", "600"], cwd=str(tmp_path), timeout=3)

    assert time.monotonic() - started < 30
    assert child_pids() <= before


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64", reason="other hosts fail earlier")
def test_unavailable_reason_names_qemu_when_it_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    reason = guest_unavailable_reason()

    assert reason is not None
    assert "qemu-system-x86_64 not found" in reason
