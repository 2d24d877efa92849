"""Run a command from this machine's filesystem inside a qemu guest with the real Linux NVMe/TCP stack.

The host kernel may lack nvmet and nvme-tcp; the guest boots Debian's own kernel (fetched with apt, unpacked into
a cache, never installed) from a tiny busybox initramfs that loads nvmet, nvmet-tcp and nvme-tcp, mounts this
machine's root over virtio-9p and chroots into it. Tests therefore run the venv, the sources and the simulator
exactly as they are on the host, but against a kernel with the NVMe-oF target and host drivers.

Inside the guest the command sees the host's files read-write, except that /proc, /sys, /dev and /run are the
guest's own; ``RDS_CSI_GUEST_SCRATCH`` names a private tmpfs (for sockets, nvmet backing files and other throwaway
data: it is fast and vanishes with the guest) and ``RDS_CSI_IN_GUEST=1`` is set. Files the command writes on the
host's filesystems are flushed before ``run_in_guest`` returns.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import gzip
import hashlib
import lzma
import os
import platform
import re
import secrets
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

# Loaded eagerly at boot, dependencies first: the guest has no modprobe, and the host root it chroots into has
# no modules for this kernel, so anything the tests need must be here.
GUEST_MODULES = (
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "configfs",
    "nvmet",
    "nvmet_tcp",
    "nvme_tcp",
    "loop",
    # ext4 asks the crypto API for crc32c at mount time (a soft dependency, absent from "depends=").
    "crc32c_generic",
    "ext4",
    "xfs",
)

_INIT_SCRIPT = Path(__file__).with_name("guest-init.sh")
_KERNEL_METAPACKAGE = "linux-image-amd64"
_QEMU = "qemu-system-x86_64"
_KVM_API_VERSION = 12
_KVM_GET_API_VERSION = 0xAE00
_XZ_MAGIC = b"\xfd7zXZ\x00"
# The guest mounts its own filesystems over these, so host paths beneath them are invisible to the command.
_GUEST_OWNED = ("/proc", "/sys", "/dev", "/run")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GUEST_SET_ENV = ("RDS_CSI_IN_GUEST", "RDS_CSI_GUEST_SCRATCH")
# After the end sentinel the guest only syncs and powers off; this bounds a guest that fails to stop.
_POWEROFF_GRACE = 15.0
_STALE_AFTER = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class GuestResult:
    status: int  # the command's exit status inside the guest (128 + N when killed by signal N)
    output: str  # its stdout and stderr, interleaved as written, without the guest's boot messages


@dataclass(frozen=True, slots=True)
class GuestImage:
    kernel: Path
    initramfs: Path
    kernel_version: str


class GuestUnavailable(Exception):
    """A guest cannot be built or booted on this machine; the message says why."""


def cache_dir() -> Path:
    configured = os.environ.get("RDS_CSI_VM_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "rds-csi" / "vm"


def kvm_usable() -> bool:
    """True when /dev/kvm is backed by hardware virtualization (kvm_intel or kvm_amd).

    Other KVM providers exist: a host that is itself a PVM guest offers /dev/kvm through kvm_pvm, which runs only
    PVM-enabled kernels and crawls through a stock Debian one far slower than qemu's TCG emulation.
    """
    if not any(Path("/sys/module", module).exists() for module in ("kvm_intel", "kvm_amd")):
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, _KVM_GET_API_VERSION) == _KVM_API_VERSION
    except OSError:
        return False
    finally:
        os.close(fd)


def guest_unavailable_reason() -> str | None:
    """Why ``run_in_guest`` cannot work here, or None; checks tools and the cache only, boots nothing."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"the guest harness needs an x86_64 Linux host, not {sys.platform}/{platform.machine()}"
    if shutil.which(_QEMU) is None:
        return f"{_QEMU} not found (apt-get install --no-install-recommends qemu-system-x86)"
    if not Path("/bin/sh").exists():
        return "the guest runs jobs with the host's /bin/sh, which is missing"
    cache = cache_dir()
    if any(ch.isspace() for ch in str(cache)) or _hidden_in_guest(str(cache)):
        return f"cache dir {cache} must have no whitespace and not lie under {', '.join(_GUEST_OWNED)}"
    apt = all(shutil.which(tool) for tool in ("apt-get", "apt-cache", "dpkg-deb"))
    if not apt and not _cached_kernels(cache):
        return "no cached guest kernel and no apt-get/apt-cache/dpkg-deb to fetch one"
    if not apt and _static_busybox(cache) is None:
        return "no static busybox (apt-get install busybox-static) and no apt-get to fetch one"
    return None


def prepare_guest() -> GuestImage:
    """Fetch the kernel and busybox and build the initramfs, unless the cache already holds them."""
    reason = guest_unavailable_reason()
    if reason is not None:
        raise GuestUnavailable(reason)
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with _cache_lock(cache):
        kernel_root = _kernel_root(cache)
        version = _kernel_version(kernel_root)
        busybox = _static_busybox(cache) or _fetch_busybox(cache)
        init = _INIT_SCRIPT.read_bytes()
        key = hashlib.sha256()
        # This file's source is part of the key: a change to how the image is assembled must rebuild it.
        for part in (version.encode(), init, busybox.read_bytes(), Path(__file__).read_bytes()):
            key.update(hashlib.sha256(part).digest())
        initramfs = cache / f"initramfs-{version}-{key.hexdigest()[:16]}.cpio"
        if not initramfs.exists():
            _build_initramfs(kernel_root, version, busybox, init, initramfs)
        initramfs.touch()
        _prune(cache)
        kernel = _bootable_kernel(kernel_root, version)
    return GuestImage(kernel, initramfs, version)


def run_in_guest(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    memory_mib: int = 1536,
    cpus: int = 2,
) -> GuestResult:
    """Boot a guest, run ``argv`` in ``cwd`` there, power off.

    ``timeout`` covers the boot and the command; past it qemu is killed and TimeoutError carries the console.
    ``env`` is added to PATH and HOME (taken from this process unless ``env`` sets them).
    """
    return _run(argv, cwd=cwd, env=env, timeout=timeout, memory_mib=memory_mib, cpus=cpus, on_output=None)


def _run(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str] | None,
    timeout: float,
    memory_mib: int,
    cpus: int,
    on_output: Callable[[str], None] | None,
) -> GuestResult:
    job = _job_script(argv, cwd, env)
    image = prepare_guest()
    token = secrets.token_hex(16)
    runs = cache_dir() / "runs"
    runs.mkdir(exist_ok=True)
    job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=runs))
    try:
        (job_dir / "job.sh").write_text(job)
        console = _Console(token, on_output)
        with (job_dir / "qemu.log").open("w+b") as qemu_log:
            finished = _boot(_qemu_argv(image, job_dir, token, memory_mib, cpus), console, qemu_log, timeout)
            qemu_log.seek(0)
            qemu_errors = qemu_log.read().decode(errors="replace")
        report = f"console:\n{console.transcript()}\nqemu stderr:\n{qemu_errors}"
        if not finished:
            raise TimeoutError(f"guest command did not finish within {timeout} s; {report}")
        if console.status is None:
            stage = "the command finished" if console.started else "the command started"
            raise RuntimeError(f"guest stopped before {stage}; {report}")
        return GuestResult(console.status, console.output())
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def _boot(qemu: list[str], console: _Console, qemu_log: BinaryIO, timeout: float) -> bool:
    """Run qemu until the console ends or ``timeout`` passes (False); qemu is gone when this returns or raises."""
    proc = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=qemu_log, bufsize=0)
    assert proc.stdout is not None
    reader = threading.Thread(target=console.pump, args=(proc.stdout.fileno(),), name="guest-console", daemon=True)
    try:
        reader.start()
        finished = console.done.wait(timeout)
        if finished:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_POWEROFF_GRACE)
    finally:
        # Reached on every path, KeyboardInterrupt included: a guest never outlives the call that started it.
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join()
        proc.stdout.close()
    return finished


def _qemu_argv(image: GuestImage, job_dir: Path, token: str, memory_mib: int, cpus: int) -> list[str]:
    accel = ["-accel", "kvm", "-cpu", "host"] if kvm_usable() else ["-accel", "tcg", "-cpu", "Nehalem"]
    # mitigations=off: page-table isolation and friends only cost time in a throwaway test guest (a lot under TCG).
    cmdline = f"console=ttyS0 quiet panic=-1 mitigations=off rds_csi.job={job_dir} rds_csi.token={token}"
    qemu = [
        _QEMU,
        "-name",
        "rds-csi-guest",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        *accel,
        "-m",
        str(memory_mib),
        "-smp",
        str(cpus),
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initramfs),
        "-append",
        cmdline,
        "-serial",
        "stdio",
        # remap: the exported tree spans several host filesystems whose inode numbers would otherwise collide.
        "-fsdev",
        "local,id=hostroot,path=/,security_model=none,multidevs=remap",
        "-device",
        "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
    ]
    setpriv = shutil.which("setpriv")
    # The kernel kills qemu if this process dies without cleaning up (SIGKILL, a crashed test runner).
    return [setpriv, "--pdeathsig", "KILL", "--", *qemu] if setpriv else qemu


def _job_script(argv: Sequence[str], cwd: str, env: Mapping[str, str] | None) -> str:
    if not argv:
        raise ValueError("argv must name a command")
    if not os.path.isabs(cwd) or not os.path.isdir(cwd):
        raise ValueError(f"cwd must be an existing absolute directory, got {cwd!r}")
    if _hidden_in_guest(cwd):
        raise ValueError(f"cwd {cwd!r} lies under {', '.join(_GUEST_OWNED)}, which the guest replaces")
    merged = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    merged.update(env or {})
    for name in merged:
        if not _ENV_NAME.fullmatch(name) or name in _GUEST_SET_ENV:
            raise ValueError(f"environment variable name {name!r} is invalid or set by the guest itself")
    lines = [f"export {shlex.quote(f'{name}={value}')}" for name, value in merged.items()]
    lines.append(f"cd -- {shlex.quote(cwd)} || exit 125")
    lines.append("exec " + shlex.join(argv))
    return "\n".join(lines) + "\n"


def _hidden_in_guest(path: str) -> bool:
    return any(path == top or path.startswith(top + "/") for top in _GUEST_OWNED)


class _Console:
    """Reads the serial console and cuts the command's output out from between the init script's sentinels."""

    def __init__(self, token: str, on_output: Callable[[str], None] | None) -> None:
        self._begin = f"{token}-begin\n"
        self._end = f"{token}-end:"
        self._on_output = on_output
        self._partial = b""
        self._newline_held = False
        self._lines: list[str] = []
        self._output: list[str] = []
        self.started = False
        self.status: int | None = None
        self.done = threading.Event()

    def pump(self, fd: int) -> None:
        try:
            while chunk := os.read(fd, 65536):
                self._feed(chunk)
            if self._partial:
                self._lines.append(self._partial.decode(errors="replace"))
        finally:
            self.done.set()

    def transcript(self) -> str:
        return "".join(self._lines)

    def output(self) -> str:
        return "".join(self._output)

    def _feed(self, chunk: bytes) -> None:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for raw in lines:
            # The tty turns every "\n" into "\r\n" (ONLCR); dropping one "\r" per line restores the bytes exactly.
            self._line(raw.removesuffix(b"\r").decode(errors="replace") + "\n")

    def _line(self, line: str) -> None:
        self._lines.append(line)
        if self.status is not None:
            return
        if not self.started:
            self.started = line == self._begin
            return
        if line.startswith(self._end):
            self.status = int(line[len(self._end) :])
            self.done.set()
            return
        # A line's newline is passed on only once the next line arrives: the newline right before the end marker
        # is the init script's, not the command's.
        if self._newline_held:
            self._emit("\n")
        self._emit(line[:-1])
        self._newline_held = True

    def _emit(self, text: str) -> None:
        self._output.append(text)
        if self._on_output is not None and text:
            self._on_output(text)


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _prune(cache: Path) -> None:
    """Drop images unused for a week and job dirs a killed run left behind.

    Age, not "not the current key", decides: checkouts with different versions of this file share the cache.
    """
    cutoff = time.time() - _STALE_AFTER
    for stale in (*cache.glob("initramfs-*.cpio"), *cache.glob("runs/job-*")):
        with contextlib.suppress(OSError):
            if stale.stat().st_mtime < cutoff:
                if stale.is_dir():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()


def _cached_kernels(cache: Path) -> list[Path]:
    return sorted(cache.glob("linux-image-*/boot"), key=lambda boot: boot.stat().st_mtime)


def _kernel_root(cache: Path) -> Path:
    package = _kernel_package()
    if package is None:
        cached = _cached_kernels(cache)
        if not cached:
            raise GuestUnavailable(f"apt-cache cannot resolve {_KERNEL_METAPACKAGE} and no kernel is cached")
        return cached[-1].parent
    root = cache / package
    if not root.exists():
        _fetch_package(package, cache, root)
    return root


@functools.cache
def _kernel_package() -> str | None:
    """The ABI package ``linux-image-amd64`` depends on for this machine's release, e.g. linux-image-6.1.0-56-amd64."""
    if shutil.which("apt-cache") is None:
        return None
    shown = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", _KERNEL_METAPACKAGE], capture_output=True, text=True, check=False
    )
    for line in shown.stdout.splitlines():
        if line.startswith("Depends:"):
            for dependency in line.removeprefix("Depends:").split(","):
                name = dependency.split()[0]
                if name.startswith("linux-image-"):
                    return name
    return None


def _kernel_version(root: Path) -> str:
    versions = [entry.name for entry in (root / "lib" / "modules").iterdir() if entry.is_dir()]
    if len(versions) != 1:
        raise GuestUnavailable(f"expected one kernel under {root}/lib/modules, found {versions}")
    return versions[0]


def _bootable_kernel(root: Path, version: str) -> Path:
    """The uncompressed vmlinux when the kernel supports PVH entry, else the bzImage.

    qemu starts a PVH kernel directly, skipping the firmware and the in-guest decompression: under TCG that is
    about 6 s of a 15 s boot.
    """
    boot = root / "boot"
    bz_image = boot / f"vmlinuz-{version}"
    if "CONFIG_PVH=y\n" not in (boot / f"config-{version}").read_text():
        return bz_image
    vmlinux = boot / f"vmlinux-{version}"
    if vmlinux.exists():
        return vmlinux
    data = bz_image.read_bytes()
    start = data.find(_XZ_MAGIC)
    if start < 0:
        return bz_image
    # The payload is followed by the rest of the bzImage, which the decompressor leaves in unused_data.
    image = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    if not image.startswith(b"\x7fELF"):
        return bz_image
    partial = boot / f"vmlinux-{version}.partial"
    partial.write_bytes(image)
    partial.replace(vmlinux)
    return vmlinux


def _fetch_package(package: str, cache: Path, dest: Path) -> None:
    """``apt-get download`` + ``dpkg-deb -x`` into ``dest``: the package is never installed into this machine."""
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=cache) as work:
        # As root, apt's download sandbox user cannot write into a private temp dir.
        sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
        _checked(["apt-get", "download", "-q", *sandbox, package], cwd=work)
        debs = list(Path(work).glob("*.deb"))
        if len(debs) != 1:
            raise GuestUnavailable(f"apt-get download {package} produced {debs}")
        unpacked = Path(work) / "root"
        _checked(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], cwd=work)
        unpacked.rename(dest)


def _checked(command: list[str], *, cwd: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise GuestUnavailable(f"{shlex.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


def _static_busybox(cache: Path) -> Path | None:
    found = shutil.which("busybox")
    for candidate in (found, "/bin/busybox", *_unpacked_busybox(cache)):
        if candidate is not None and _is_static_elf(Path(candidate)):
            return Path(candidate)
    return None


def _unpacked_busybox(cache: Path) -> tuple[str, ...]:
    root = cache / "busybox-static"
    return (str(root / "bin" / "busybox"), str(root / "usr" / "bin" / "busybox"))


def _fetch_busybox(cache: Path) -> Path:
    _fetch_package("busybox-static", cache, cache / "busybox-static")
    found = _static_busybox(cache)
    if found is None:
        raise GuestUnavailable("the busybox-static package holds no static busybox binary")
    return found


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit ELF without a PT_INTERP header: it runs in an initramfs with no dynamic loader."""
    try:
        with path.open("rb") as f:
            header = f.read(64)
            if len(header) < 64 or header[:5] != b"\x7fELF\x02":
                return False
            (phoff,) = struct.unpack_from("<Q", header, 0x20)
            entry_size, count = struct.unpack_from("<HH", header, 0x36)
            f.seek(phoff)
            table = f.read(entry_size * count)
    except OSError:
        return False
    pt_interp = 3
    return all(struct.unpack_from("<I", table, i * entry_size)[0] != pt_interp for i in range(count))


def _module_name(path: Path) -> str:
    return path.name.split(".ko")[0].replace("-", "_")


def _module_image(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko"):
        return data
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        if shutil.which("zstd") is None:
            raise GuestUnavailable("the kernel's modules are zstd-compressed: apt-get install zstd")
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    raise GuestUnavailable(f"unknown kernel module format: {path}")


def _module_depends(image: bytes, name: str) -> tuple[str, ...]:
    """The ``depends=`` entry of the module's .modinfo section.

    It is what depmod turns into modules.dep; Debian's kernel package ships no modules.dep (its postinst runs
    depmod), and an unpacked, uninstalled package never had one written, so it is read at the source.
    """
    if image[:5] != b"\x7fELF\x02":
        raise GuestUnavailable(f"module {name} is not a 64-bit ELF object")
    (section_table,) = struct.unpack_from("<Q", image, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", image, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name_offset, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", image, section_table + index * entry_size
        )
        return name_offset, offset, size

    _, names, _ = section(names_index)
    for index in range(count):
        name_offset, offset, size = section(index)
        if image[names + name_offset : image.index(b"\0", names + name_offset)] == b".modinfo":
            for entry in image[offset : offset + size].split(b"\0"):
                if entry.startswith(b"depends="):
                    listed = entry.removeprefix(b"depends=").decode()
                    return tuple(dep.replace("-", "_") for dep in listed.split(",") if dep)
            return ()
    raise GuestUnavailable(f"module {name} has no .modinfo section")


def _modules_in_load_order(module_dir: Path, wanted: Sequence[str]) -> list[tuple[str, bytes]]:
    """``wanted`` plus everything they depend on, each after its dependencies, as (name, uncompressed .ko)."""
    index = {_module_name(path): path for path in (module_dir / "kernel").rglob("*.ko*")}
    builtin = {_module_name(Path(line)) for line in (module_dir / "modules.builtin").read_text().split()}
    ordered: list[tuple[str, bytes]] = []
    placed: set[str] = set()

    def place(name: str, chain: tuple[str, ...]) -> None:
        if name in placed or name in builtin:
            return
        if name in chain:
            raise GuestUnavailable(f"module dependency cycle: {' -> '.join((*chain, name))}")
        path = index.get(name)
        if path is None:
            raise GuestUnavailable(f"kernel module {name} is neither in {module_dir} nor built in")
        image = _module_image(path)
        for dependency in _module_depends(image, name):
            place(dependency, (*chain, name))
        placed.add(name)
        ordered.append((name, image))

    for name in wanted:
        place(name, ())
    return ordered


def _build_initramfs(kernel_root: Path, version: str, busybox: Path, init: bytes, dest: Path) -> None:
    modules = _modules_in_load_order(kernel_root / "lib" / "modules" / version, GUEST_MODULES)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix="initramfs-", delete=False) as out:
        try:
            archive = _Cpio(out)
            for directory in ("bin", "dev", "etc", "host", "lib", "lib/modules", "proc", "sys"):
                archive.directory(directory)
            # The kernel opens /dev/console for PID 1 before /init can mount devtmpfs.
            archive.char_device("dev/console", 5, 1)
            archive.file("bin/busybox", busybox.read_bytes(), 0o755)
            archive.file("init", init, 0o755)
            for name, image in modules:
                archive.file(f"lib/modules/{name}.ko", image, 0o644)
            archive.file("etc/modules", "".join(f"{name}.ko\n" for name, _ in modules).encode(), 0o644)
            archive.close()
            out.flush()
            os.fsync(out.fileno())
        except BaseException:
            os.unlink(out.name)
            raise
    os.replace(out.name, dest)


class _Cpio:
    """Writes the "newc" cpio format the kernel unpacks into its initial rootfs."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._inode = 0

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755, b"")

    def file(self, name: str, data: bytes, mode: int) -> None:
        self._entry(name, 0o100000 | mode, data)

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, b"", rdev=(major, minor))

    def close(self) -> None:
        self._entry("TRAILER!!!", 0, b"")

    def _entry(self, name: str, mode: int, data: bytes, rdev: tuple[int, int] = (0, 0)) -> None:
        self._inode += 1
        encoded = name.encode() + b"\0"
        fields = (self._inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % field for field in fields)
        self._write_padded(header + encoded)
        self._write_padded(data)

    def _write_padded(self, data: bytes) -> None:
        self._out.write(data + b"\0" * (-len(data) % 4))


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vm-run", description="Run a command in the qemu test guest (real nvmet/nvme-tcp) from this directory."
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before the guest is killed")
    parser.add_argument("--memory", type=int, default=1536, help="guest memory in MiB")
    parser.add_argument("--cpus", type=int, default=2, help="guest vCPUs")
    parser.add_argument("command", nargs="+", help="the command and its arguments (after --)")
    options = parser.parse_args(args)

    def show(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        result = _run(
            options.command,
            cwd=os.getcwd(),
            env=None,
            timeout=options.timeout,
            memory_mib=options.memory,
            cpus=options.cpus,
            on_output=show,
        )
    except (GuestUnavailable, TimeoutError, RuntimeError) as error:
        print(f"vm-run: {error}", file=sys.stderr)
        return 124 if isinstance(error, TimeoutError) else 125
    return result.status


if __name__ == "__main__":
    sys.exit(main())
