"""The ``rds-csi`` console script: argument parsing only; builds a config and hands it to the plugin."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from rds_csi import __version__
from rds_csi.plugin.config import ALL_OPTIONS, ConfigError, OptionSpec, load_plugin_config

EXIT_USAGE = 2
EXIT_RUNTIME = 1

_EXAMPLES = """\
examples:
  # controller and node in one process, on a local socket, metrics on :9809
  rds-csi plugin --mode all --node-id worker-1 --endpoint unix:///tmp/rds-csi/csi.sock

  # node plugin as the DaemonSet runs it (settings may also come from RDS_CSI_* variables)
  RDS_CSI_NODE_ID=$(hostname) rds-csi plugin --mode node --endpoint unix:///csi/csi.sock --log-format json
"""


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors are one line naming the flag, exit status 2 (the full usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_options(parser: argparse.ArgumentParser, specs: Sequence[OptionSpec]) -> None:
    for spec in specs:
        parser.add_argument(
            spec.flag,
            dest=spec.field,
            metavar=spec.metavar,
            default=None,
            help=f"{spec.help} [env {spec.env}, default {spec.default!r}]",
        )


def _port(raw: str) -> int:
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, got {raw!r}")
    return int(raw)


def _add_simulator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--allow-non-loopback", action="store_true", help="allow a non-loopback --host")
    parser.add_argument("--ssh-port", type=_port, default=2222, help="SSH port (0 = any free port)")
    parser.add_argument("--rest-port", type=_port, default=8443, help="REST (HTTPS) port (0 = any free port)")
    parser.add_argument("--control-port", type=_port, default=None, help="fault-injection control port (off)")
    parser.add_argument("--no-tls", action="store_true", help="serve REST over plain HTTP")
    parser.add_argument(
        "--state-dir", help="keep the host key and TLS certificate here (default: a private temp dir, gone at exit)"
    )
    parser.add_argument(
        "--persist", action="store_true", help="keep disks and files in <state-dir>/model.json (needs --state-dir)"
    )
    parser.add_argument("--user", default="admin", help="login name (default admin)")
    parser.add_argument("--password-file", help="password for --user (SSH password auth and REST basic auth)")
    parser.add_argument("--authorized-keys", action="append", default=[], help="OpenSSH public key file")
    parser.add_argument("--profile", choices=("realistic", "zero"), default="realistic", help="latency profile")
    parser.add_argument("--faults-file", help="fault plan JSON, reloaded on SIGHUP")
    parser.add_argument("--console-width", type=int, default=80, help="default console width (80)")
    parser.add_argument(
        "--disk-flags",
        choices=("disabled", "documented"),
        default="disabled",
        help="flag letters of /disk entries: only X for a disabled one (default), or every documented letter that "
        "applies (X, B, M, lower-case t for an NVMe/TCP export)",
    )
    parser.add_argument("--no-flags-legend", action="store_true", help="print flag letters without the Flags: legend")
    parser.add_argument(
        "--routeros-version",
        help="the RouterOS release /system resource reports, e.g. '7.21.2 (stable)' (default: a current one)",
    )
    parser.add_argument(
        "--copy-from-accepts",
        choices=("any", "file", "disk"),
        default="any",
        help="which copy-from form /disk add takes: both (default), an image path only, or a disk reference only",
    )
    parser.add_argument(
        "--nvmet-data-dir",
        help="optional data plane: keep images as sparse files here and export disks as real NVMe/TCP targets "
        "through the kernel's nvmet (needs root and the nvmet, nvmet-tcp modules)",
    )
    parser.add_argument(
        "--nvmet-address", default="127.0.0.1", help="address the nvmet TCP ports listen on (default 127.0.0.1)"
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="rds-csi",
        description="Kubernetes CSI driver for MikroTik ROSE Data Server (NVMe/TCP).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rds-csi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    commands.required = True
    plugin = commands.add_parser(
        "plugin",
        help="run the CSI plugin (controller, node or both)",
        description="Run the CSI plugin. Every option can also be set with its RDS_CSI_* environment variable.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_options(plugin, ALL_OPTIONS)
    simulator = commands.add_parser(
        "simulator",
        help="run the RouterOS (RDS) simulator: real SSH and REST servers on loopback",
        description="A RouterOS stand-in for running the driver without hardware. Listens on loopback only "
        "unless --allow-non-loopback is given.",
        epilog="example:\n  rds-csi simulator --ssh-port 2222 --rest-port 8443 --password-file pw.txt\n"
        "  ssh -p 2222 admin@127.0.0.1 '/disk print detail'\n"
        "  curl -k -u admin:$(cat pw.txt) https://127.0.0.1:8443/rest/disk",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_simulator_options(simulator)
    commands.add_parser(
        "demo",
        help="run the driver end to end on this machine (no hardware) and show each step",
        description="Start the plugin on a private socket and drive it over gRPC like Kubernetes does.",
    )
    return parser


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"rds-csi: error: {message}\n")
    sys.exit(code)


@contextlib.contextmanager
def _start_up_failures_as_one_line() -> Iterator[None]:
    """The one place a start-up failure becomes a single line: bad configuration (a flag, or a file a flag
    names) exits 2, anything else that stops the start (an endpoint in use, a missing kernel module) exits 1."""
    from rds_csi.core.errors import InvalidArgument, RdsCsiError
    from rds_csi.csi.server import EndpointInUse

    try:
        yield
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except InvalidArgument as exc:  # the simulator's own settings check
        _fail(exc.message, EXIT_USAGE)
    except RdsCsiError as exc:  # e.g. --nvmet-data-dir without the nvmet modules
        _fail(exc.message, EXIT_RUNTIME)
    except (EndpointInUse, OSError) as exc:
        _fail(str(exc), EXIT_RUNTIME)


def _read_named_file(flag: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
        raise ConfigError(flag, f"cannot read {path}: {reason}") from None


def run_plugin(flags: Mapping[str, str | None], env: Mapping[str, str]) -> int:
    with _start_up_failures_as_one_line():
        config = load_plugin_config(flags, env)
        # Imported late so that `--help` and config errors stay fast and need no gRPC.
        from rds_csi.observability.logging import configure_logging
        from rds_csi.plugin.lifecycle import Plugin

        configure_logging(config.log_format.value, config.log_level)
        Plugin(config).run_until_signalled()
    return 0


@contextlib.contextmanager
def _simulator_state_dir(args: argparse.Namespace) -> Iterator[Path]:
    """The directory the user named, else a private one (host key, TLS key) removed however the run ends."""
    if args.state_dir is not None:
        yield Path(args.state_dir)
        return
    if args.persist:
        raise ConfigError("--persist", "needs --state-dir: the disks are kept in <state-dir>/model.json")
    with tempfile.TemporaryDirectory(prefix="rds-csi-sim-") as private:
        yield Path(private)


def run_simulator(args: argparse.Namespace) -> int:
    from rds_csi.observability.logging import configure_logging
    from rds_csi.simulator import (
        CopyFromAccepts,
        FaultPlan,
        FlagColumn,
        FlagStyle,
        Simulator,
        SimulatorConfig,
        SystemInfo,
        run_forever,
    )

    with _start_up_failures_as_one_line():
        if not args.password_file and not args.authorized_keys:
            _fail("--password-file or --authorized-keys is required (nobody could log in)", EXIT_USAGE)
        password = _read_named_file("--password-file", args.password_file).strip() if args.password_file else None
        for public_keys in args.authorized_keys:
            _read_named_file("--authorized-keys", public_keys)
        if args.faults_file:
            _read_named_file("--faults-file", args.faults_file)
        configure_logging(args.log_format, args.log_level)
        with _simulator_state_dir(args) as state_dir:
            config = SimulatorConfig(
                state_dir=state_dir,
                host=args.host,
                allow_non_loopback=args.allow_non_loopback,
                ssh_port=args.ssh_port,
                rest_port=args.rest_port,
                control_port=args.control_port,
                rest_tls=not args.no_tls,
                persist_file=state_dir / "model.json" if args.persist else None,
                console_width=args.console_width,
                flags=FlagColumn(FlagStyle(args.disk_flags), legend=not args.no_flags_legend),
                copy_from_accepts=CopyFromAccepts(args.copy_from_accepts),
                system=SystemInfo(version=args.routeros_version) if args.routeros_version else SystemInfo(),
                faults=FaultPlan(profile=args.profile),
                faults_file=Path(args.faults_file) if args.faults_file else None,
                users={args.user: password},
                authorized_keys=tuple(Path(p) for p in args.authorized_keys),
                nvmet_data_dir=Path(args.nvmet_data_dir) if args.nvmet_data_dir else None,
                nvmet_address=args.nvmet_address,
            )

            def ready(sim: Simulator) -> None:
                parts = [f"ssh={args.host}:{sim.ssh_port}"]
                if config.rest_port is not None:
                    parts.append(f"rest={sim.rest_url}")
                if config.control_port is not None:
                    parts.append(f"control=http://{args.host}:{sim.control_port}/sim")
                parts.append(f"host_key={sim.host_key_fingerprint}")
                print("simulator ready " + " ".join(parts), flush=True)

            run_forever(config, on_ready=ready)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    if args.command == "plugin":
        return run_plugin(flags, os.environ)
    if args.command == "simulator":
        return run_simulator(args)
    if args.command == "demo":
        from rds_csi.tools.demo import run_demo

        return run_demo(sys.stdout)
    raise AssertionError(f"unhandled command {args.command}")  # argparse only accepts known commands


if __name__ == "__main__":
    sys.exit(main())
