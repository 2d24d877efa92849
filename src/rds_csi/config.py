"""Typed settings, built once at start-up from flags, then ``RDS_CSI_*`` environment variables, then defaults.

Every option is declared once in ``PLUGIN_OPTIONS``: the CLI turns the declarations into flags, and
``load_plugin_config`` turns raw strings into a validated ``PluginConfig``. Nothing reads ``os.environ`` after this.
A bad value raises ``ConfigError`` naming the flag (and its environment variable).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rds_csi import DEFAULT_DRIVER_NAME

ENV_PREFIX = "RDS_CSI_"


class ConfigError(ValueError):
    """A configuration value is invalid. ``option`` is the flag name, e.g. ``--grpc-workers``."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


class Mode(StrEnum):
    CONTROLLER = "controller"
    NODE = "node"
    ALL = "all"

    @property
    def runs_controller(self) -> bool:
        return self in (Mode.CONTROLLER, Mode.ALL)

    @property
    def runs_node(self) -> bool:
        return self in (Mode.NODE, Mode.ALL)


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the CSI gRPC server listens: a unix socket path or a TCP host:port."""

    scheme: str  # "unix" or "tcp"
    address: str  # socket path, or "host:port"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}"


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PluginConfig:
    mode: Mode
    endpoints: tuple[Endpoint, ...]
    node_id: str
    driver_name: str
    grpc_workers: int
    shutdown_timeout: float
    metrics_address: HostPort | None
    log_format: LogFormat
    log_level: str


# ---- value parsers: each takes the raw string and returns the typed value or raises ValueError(reason) ----

_DRIVER_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
_NODE_ID_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")
_LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_endpoint(raw: str) -> Endpoint:
    if raw.startswith("unix://"):
        path = raw[len("unix://") :]
        if not path.startswith("/"):
            raise ValueError("unix endpoints need an absolute path, e.g. unix:///csi/csi.sock")
        if len(path.encode()) > 107:  # sun_path is 108 bytes including the NUL
            raise ValueError("unix socket path longer than 107 bytes")
        return Endpoint("unix", path)
    if raw.startswith("tcp://"):
        hp = parse_host_port(raw[len("tcp://") :])
        return Endpoint("tcp", str(hp))
    raise ValueError("expected unix:///path/to/csi.sock or tcp://host:port")


def parse_endpoints(raw: str) -> tuple[Endpoint, ...]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise ValueError("at least one endpoint is required")
    endpoints = tuple(parse_endpoint(p) for p in parts)
    if len(set(endpoints)) != len(endpoints):
        raise ValueError("duplicate endpoint")
    return endpoints


def parse_host_port(raw: str) -> HostPort:
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        raise ValueError("expected host:port (use :PORT for all interfaces)")
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port must be 0..65535, got {port_text!r}")
    return HostPort(host or "0.0.0.0", int(port_text))


def parse_metrics_address(raw: str) -> HostPort | None:
    if raw.strip().lower() in ("", "off", "none", "disabled"):
        return None
    return parse_host_port(raw)


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, got {value:g}")
        return value

    return parse


def _choice(enum: type[StrEnum]) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            return enum(raw.strip().lower())
        except ValueError:
            allowed = "|".join(m.value for m in enum)
            raise ValueError(f"must be one of {allowed}, got {raw!r}") from None

    return parse


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw):
            raise ValueError(f"{raw!r} is not a valid {what}")
        return raw

    return parse


def _log_level(raw: str) -> str:
    level = raw.strip().lower()
    if level not in _LOG_LEVELS:
        raise ValueError(f"must be one of {'|'.join(_LOG_LEVELS)}, got {raw!r}")
    return level


def _node_id(raw: str) -> str:
    if raw == "":
        return raw  # required-ness depends on the mode; checked in load_plugin_config
    return _matching(_NODE_ID_RE, "node id (a Kubernetes node name)")(raw)


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One setting: its field, flag, default (as the string a user would type), parser and help text."""

    field: str
    default: str
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.field.upper()


PLUGIN_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("mode", "all", _choice(Mode), "which services to run: controller, node or all", "MODE"),
    OptionSpec(
        "endpoints",
        "unix:///csi/csi.sock",
        parse_endpoints,
        "CSI gRPC endpoints, comma separated: unix:///path or tcp://host:port",
        "ENDPOINT",
    ),
    OptionSpec("node_id", "", _node_id, "this node's name (required in node and all modes)", "NAME"),
    OptionSpec(
        "driver_name",
        DEFAULT_DRIVER_NAME,
        _matching(_DRIVER_NAME_RE, "CSI driver name (a DNS name)"),
        "CSI driver name reported by GetPluginInfo",
        "NAME",
    ),
    OptionSpec("grpc_workers", "16", _int_between(1, 1024), "gRPC server worker threads", "N"),
    OptionSpec(
        "shutdown_timeout",
        "10",
        _float_between(0, 600),
        "seconds in-flight calls may take to finish after SIGTERM",
        "SECONDS",
    ),
    OptionSpec(
        "metrics_address",
        ":9809",
        parse_metrics_address,
        "serve /metrics and /healthz on HOST:PORT (':9809' = all interfaces; 'off' disables)",
        "HOST:PORT",
    ),
    OptionSpec("log_format", "text", _choice(LogFormat), "log line format: text (key=value) or json", "FORMAT"),
    OptionSpec("log_level", "info", _log_level, "debug, info, warning or error", "LEVEL"),
)


def resolve(specs: tuple[OptionSpec, ...], flags: Mapping[str, str | None], env: Mapping[str, str]) -> dict[str, Any]:
    """Parse every option from its flag, else its env variable, else its default; name the source on error."""
    values: dict[str, Any] = {}
    for spec in specs:
        raw = flags.get(spec.field)
        source = spec.flag
        if raw is None and spec.env in env:
            raw, source = env[spec.env], f"{spec.flag} (from {spec.env})"
        if raw is None:
            raw = spec.default
        try:
            values[spec.field] = spec.parse(raw)
        except ValueError as exc:
            raise ConfigError(source, str(exc)) from None
    return values


def load_plugin_config(flags: Mapping[str, str | None], env: Mapping[str, str]) -> PluginConfig:
    values = resolve(PLUGIN_OPTIONS, flags, env)
    config = PluginConfig(**values)
    if config.mode.runs_node and not config.node_id:
        raise ConfigError("--node-id", f"required when --mode is {config.mode.value} (or set RDS_CSI_NODE_ID)")
    return config
