"""The ``rds-csi`` console script: argument parsing only; builds a config and hands it to the plugin."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from rds_csi import __version__
from rds_csi.config import PLUGIN_OPTIONS, ConfigError, OptionSpec, load_plugin_config

EXIT_USAGE = 2
EXIT_RUNTIME = 1

_EXAMPLES = """\
examples:
  # controller and node in one process, on a local socket, metrics on :9809
  rds-csi plugin --mode all --node-id worker-1 --endpoints unix:///tmp/rds-csi/csi.sock

  # node plugin as the DaemonSet runs it (settings may also come from RDS_CSI_* variables)
  RDS_CSI_NODE_ID=$(hostname) rds-csi plugin --mode node --endpoints unix:///csi/csi.sock --log-format json
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
    _add_options(plugin, PLUGIN_OPTIONS)
    commands.add_parser(
        "demo",
        help="run the driver end to end on this machine (no hardware) and show each step",
        description="Start the plugin on a private socket and drive it over gRPC like Kubernetes does.",
    )
    return parser


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"rds-csi: error: {message}\n")
    sys.exit(code)


def run_plugin(flags: Mapping[str, str | None], env: Mapping[str, str]) -> int:
    try:
        config = load_plugin_config(flags, env)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)

    # Imported late so that `--help` and config errors stay fast and need no gRPC.
    from rds_csi.csi.server import EndpointInUse
    from rds_csi.observability.logging import configure_logging
    from rds_csi.plugin import Plugin

    configure_logging(config.log_format.value, config.log_level)
    try:
        plugin = Plugin(config)
        plugin.run_until_signalled()
    except (EndpointInUse, OSError) as exc:
        _fail(str(exc), EXIT_RUNTIME)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    if args.command == "plugin":
        return run_plugin(flags, os.environ)
    if args.command == "demo":
        from rds_csi.demo import run_demo

        return run_demo(sys.stdout)
    raise AssertionError(f"unhandled command {args.command}")  # argparse only accepts known commands


if __name__ == "__main__":
    sys.exit(main())
