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
from rds_csi.core.addresses import Endpoint, HostPort, is_host
from rds_csi.core.errors import InvalidArgument
from rds_csi.core.nqn import validate_nqn
from rds_csi.core.settings import OrphanMode
from rds_csi.routeros.commands import CopyFromForm

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


class RouterOSTransportKind(StrEnum):
    SSH = "ssh"
    REST = "rest"
    SIMULATOR = "simulator"  # the embedded RouterOS simulator on loopback: no hardware, no real storage


@dataclass(frozen=True, slots=True)
class RouterOSConfig:
    transport: RouterOSTransportKind
    address: str
    ssh_port: int
    user: str
    ssh_key: str | None
    password_file: str | None
    known_hosts: str | None
    host_key: str | None
    insecure_skip_host_key: bool
    rest_url: str | None
    ca_file: str | None
    insecure_skip_tls_verify: bool
    insecure_allow_http: bool
    pool_size: int
    command_timeout: float
    copy_from_form: CopyFromForm
    simulator_state_dir: str | None


@dataclass(frozen=True, slots=True)
class VolumeConfig:
    base_path: str
    nvme_address: str
    nvme_port: int
    max_volume_bytes: int
    capacity_cache_seconds: float


@dataclass(frozen=True, slots=True)
class KubeConfig:
    api: str  # "off", "in-cluster", or an https:// / http:// API server URL ("auto" is resolved at load time)
    token_file: str | None
    ca_file: str | None
    static_nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AttachConfig:
    grace_period: float
    reconcile_interval: float
    orphan_mode: OrphanMode
    orphan_grace: float
    orphan_interval: float
    require_kubevirt_migration: bool = False
    state_dir: str | None = None  # static mode's attachment state; None only where nothing outlives the process
    default_max_volumes_per_node: int = 0  # attach limit of a node whose CSINode gives none; 0: no limit


@dataclass(frozen=True, slots=True)
class NodeConfig:
    host_nqn_file: str
    max_volumes_per_node: int  # 0: no limit
    host_nqn_recheck_interval: float
    host_id_file: str
    managed_nqn_prefix: str
    kubelet_dir: str
    node_recovery_interval: float


@dataclass(frozen=True, slots=True)
class PluginConfig:
    mode: Mode
    endpoint: tuple[Endpoint, ...]
    node_id: str
    driver_name: str
    grpc_workers: int
    shutdown_timeout: float
    rpc_timeout: float
    metrics_address: HostPort | None
    log_format: LogFormat
    log_level: str
    routeros: RouterOSConfig
    volumes: VolumeConfig
    kube: KubeConfig
    attach: AttachConfig
    node: NodeConfig


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


_SIZE_RE = re.compile(r"^\s*([0-9]+)\s*(|B|Ki|KiB|Mi|MiB|Gi|GiB|Ti|TiB|Pi|PiB)\s*$")
_SIZE_UNITS = {"": 1, "B": 1} | {
    f"{prefix}{suffix}": 1 << (10 * power)
    for power, prefix in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi"), start=1)
    for suffix in ("", "B")
}
_BASE_PATH_RE = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def parse_size(raw: str) -> int:
    """Bytes, or a number with a binary unit: ``16Ti``, ``512GiB``."""
    match = _SIZE_RE.match(raw)
    if not match:
        raise ValueError(f"must be bytes or a size like 16Ti or 512GiB, got {raw!r}")
    value = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if value <= 0:
        raise ValueError("must be positive")
    return value


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


def _base_path(raw: str) -> str:
    path = raw.rstrip("/")
    if not _BASE_PATH_RE.match(path) or any(p in (".", "..") for p in path.split("/")):
        raise ValueError(f"must be an absolute RouterOS path like /storage-pool/metal-csi, got {raw!r}")
    return path


def _host(raw: str) -> str:
    host = raw.strip().strip("[]")
    if host and not is_host(host):
        raise ValueError(f"not a host name or IP address: {raw!r}")
    return host


def _rest_url(raw: str) -> str | None:
    url = raw.strip().rstrip("/")
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"must start with https://, got {raw!r}")
    return url


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
        "endpoint",
        "unix:///csi/csi.sock",
        parse_endpoints,
        "CSI gRPC endpoint(s), comma separated: unix:///path or tcp://host:port",
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
        "rpc_timeout",
        "12",
        _float_between(1, 600),
        "longest a CSI call may work before answering (keep it below the sidecars' --timeout, 15s by default)",
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

ROUTEROS_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "routeros_transport",
        "simulator",
        _choice(RouterOSTransportKind),
        "how the controller reaches RouterOS: ssh, rest, or simulator (embedded, loopback, no real storage)",
        "KIND",
    ),
    OptionSpec("routeros_address", "", _host, "RDS management address (required unless simulator)", "HOST"),
    OptionSpec("routeros_ssh_port", "22", _int_between(1, 65535), "RouterOS SSH port", "PORT"),
    OptionSpec(
        "routeros_user", "admin", _matching(re.compile(r"^[A-Za-z0-9._-]{1,64}$"), "user name"), "RouterOS user", "USER"
    ),
    OptionSpec("routeros_ssh_key", "", _optional_text, "private key file (Ed25519 or RSA) for SSH", "FILE"),
    OptionSpec(
        "routeros_password_file",
        "",
        _optional_text,
        "file holding the RouterOS password (REST, or SSH without key)",
        "FILE",
    ),
    OptionSpec(
        "routeros_known_hosts", "", _optional_text, "known_hosts file used to verify the RDS SSH host key", "FILE"
    ),
    OptionSpec(
        "routeros_host_key", "", _optional_text, "pinned SSH host key: 'ssh-ed25519 AAAA...' or 'SHA256:...'", "KEY"
    ),
    OptionSpec(
        "routeros_insecure_skip_host_key",
        "false",
        parse_bool,
        "do NOT verify the SSH host key (logs a warning)",
        "BOOL",
    ),
    OptionSpec("routeros_rest_url", "", _rest_url, "REST base URL, default https://<address>", "URL"),
    OptionSpec("routeros_ca_file", "", _optional_text, "CA bundle that signed the RDS REST certificate", "FILE"),
    OptionSpec(
        "routeros_insecure_skip_tls_verify", "false", parse_bool, "do NOT verify the REST TLS certificate", "BOOL"
    ),
    OptionSpec(
        "routeros_insecure_allow_http",
        "false",
        parse_bool,
        "allow an http:// --routeros-rest-url, which sends the RouterOS password in clear text (logs a warning)",
        "BOOL",
    ),
    OptionSpec("routeros_pool_size", "4", _int_between(1, 64), "persistent RouterOS connections", "N"),
    OptionSpec("routeros_command_timeout", "10", _float_between(0.5, 300), "seconds per RouterOS command", "SECONDS"),
    OptionSpec(
        "routeros_copy_from_form",
        "file",
        _choice(CopyFromForm),
        "how /disk add copy-from= names the source of a clone or snapshot: file (its backing file path) or disk "
        "([find slot=...]); if RouterOS refuses it, the other form is tried once and kept while the process runs",
        "FORM",
    ),
    OptionSpec(
        "routeros_simulator_state_dir",
        "",
        _optional_text,
        "with --routeros-transport simulator: keep the simulated RDS here (default: a temp dir, gone at exit)",
        "DIR",
    ),
)

VOLUME_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "volume_base_path", "/storage-pool/metal-csi", _base_path, "RouterOS directory holding volume files", "PATH"
    ),
    OptionSpec("nvme_address", "", _host, "NVMe/TCP address nodes connect to (default: the RouterOS address)", "HOST"),
    OptionSpec("nvme_port", "4420", _int_between(1, 65535), "NVMe/TCP port of new volumes", "PORT"),
    OptionSpec("max_volume_size", "16Ti", parse_size, "largest volume CreateVolume accepts", "SIZE"),
    OptionSpec(
        "capacity_cache_seconds", "5", _float_between(0, 3600), "how long GetCapacity answers are reused", "SECONDS"
    ),
)


def _kube_api(raw: str) -> str:
    value = raw.strip()
    if value in ("auto", "off", "in-cluster") or value.startswith(("https://", "http://")):
        return value.rstrip("/")
    raise ValueError(f"must be auto, off, in-cluster or an API server URL, got {raw!r}")


def _node_list(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    for name in names:
        _node_id(name)
    return names


KUBE_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "kube_api",
        "auto",
        _kube_api,
        "Kubernetes API: auto (in-cluster when running in a pod, else off), off, in-cluster, or a URL",
        "API",
    ),
    OptionSpec("kube_token_file", "", _optional_text, "bearer token file for a --kube-api URL", "FILE"),
    OptionSpec("kube_ca_file", "", _optional_text, "CA bundle for a --kube-api URL", "FILE"),
    OptionSpec(
        "static_nodes",
        "",
        _node_list,
        "without a Kubernetes API: the node ids that may attach volumes (comma separated)",
        "NODES",
    ),
)


def _absolute_path(raw: str) -> str:
    path = raw.strip()
    if not path.startswith("/"):
        raise ValueError(f"must be an absolute path, got {raw!r}")
    return path


def _optional_absolute_path(raw: str) -> str | None:
    return _absolute_path(raw) if raw.strip() else None


ATTACH_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "state_dir",
        "",
        _optional_absolute_path,
        "without a Kubernetes API (--kube-api off): directory where the controller keeps its attachments across "
        "restarts (required then, unless the backend is the embedded simulator in a temp dir)",
        "DIR",
    ),
    OptionSpec(
        "attach_grace_period",
        "30",
        _float_between(0, 3600),
        "after a detach, conflicting publishes are answered ABORTED for this long while the old node is re-verified",
        "SECONDS",
    ),
    OptionSpec(
        "reconcile_interval", "300", _float_between(5, 86400), "how often stale attachments are reconciled", "SECONDS"
    ),
    OptionSpec(
        "orphan_reconcile",
        "off",
        _choice(OrphanMode),
        "volumes on the RDS without a PV: off, dry-run (report only) or delete",
        "MODE",
    ),
    OptionSpec(
        "orphan_grace",
        "86400",
        _float_between(600, 90 * 86400),
        "minimum age before a volume counts as orphaned",
        "SECONDS",
    ),
    OptionSpec("orphan_interval", "3600", _float_between(60, 86400), "how often orphans are looked for", "SECONDS"),
    OptionSpec(
        "require_kubevirt_migration",
        "false",
        parse_bool,
        "strict mode: the second publish of a Block RWX volume is admitted only when a KubeVirt "
        "VirtualMachineInstanceMigration in progress references a VMI using the PVC",
        "BOOL",
    ),
    OptionSpec(
        "default_max_volumes_per_node",
        "0",
        _int_between(0, 1_000_000),
        "controller: volumes one node may hold when its CSINode gives no limit for this driver (or without a "
        "Kubernetes API); a publish beyond it is RESOURCE_EXHAUSTED (0: no limit)",
        "N",
    ),
)


def _managed_nqn_prefix(raw: str) -> str:
    prefix = raw.strip()
    # At least a naming authority and its colon: a shorter prefix ("nqn.") would claim every subsystem on the host,
    # boot volumes included, for disconnects and clean-ups.
    try:
        valid = ":" in prefix and bool(validate_nqn(prefix + "x"))
    except InvalidArgument:
        valid = False
    if not valid:
        raise ValueError(f"must be an NQN up to and past its authority's ':' (nqn.2000-02.com.mikrotik:), got {raw!r}")
    return prefix


NODE_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "host_nqn_file",
        "/etc/nvme/hostnqn",
        _absolute_path,
        "the node's NVMe host NQN (nvme-cli's file); when missing, one is generated from the DMI product UUID "
        "(else at random) and saved there",
        "FILE",
    ),
    OptionSpec(
        "max_volumes_per_node",
        "0",
        _int_between(0, 1_000_000),
        "volumes the scheduler may place on one node, reported by NodeGetInfo (0: no limit)",
        "N",
    ),
    OptionSpec(
        "host_nqn_recheck_interval",
        "300",
        _float_between(1, 86400),
        "how often the node plugin checks that its Node still carries its host-NQN annotation (restored if not)",
        "SECONDS",
    ),
    OptionSpec(
        "host_id_file",
        "/etc/nvme/hostid",
        _absolute_path,
        "the node's NVMe host ID (nvme-cli's file); when missing, the UUID of a uuid-form host NQN (else a random "
        "one) is saved there",
        "FILE",
    ),
    OptionSpec(
        "managed_nqn_prefix",
        "nqn.2000-02.com.mikrotik:",
        _managed_nqn_prefix,
        "only NVMe subsystems whose NQN starts with this are ever disconnected or cleaned up by the node plugin "
        "(others, a boot volume for one, are never touched)",
        "PREFIX",
    ),
    OptionSpec(
        "kubelet_dir",
        "/var/lib/kubelet",
        _absolute_path,
        "the kubelet's root directory as the node plugin sees it: where recovery finds the staged volumes",
        "DIR",
    ),
    OptionSpec(
        "node_recovery_interval",
        "60",
        _float_between(0, 86400),
        "how often the node plugin looks for stale staging mounts (remounted when unused) and orphaned managed "
        "NVMe subsystems (disconnected after two looks); also once at start. 0: never",
        "SECONDS",
    ),
)

ALL_OPTIONS = PLUGIN_OPTIONS + ROUTEROS_OPTIONS + VOLUME_OPTIONS + KUBE_OPTIONS + ATTACH_OPTIONS + NODE_OPTIONS


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


def _routeros_config(values: Mapping[str, Any]) -> RouterOSConfig:
    ros = RouterOSConfig(**{f.removeprefix("routeros_"): values[f] for f in (o.field for o in ROUTEROS_OPTIONS)})
    # Only the controller talks to RouterOS; a node plugin ignores these settings.
    if ros.transport is RouterOSTransportKind.SIMULATOR or not values["mode"].runs_controller:
        return ros
    if not ros.address:
        raise ConfigError("--routeros-address", "required unless --routeros-transport is simulator")
    if ros.transport is RouterOSTransportKind.SSH:
        if not (ros.ssh_key or ros.password_file):
            raise ConfigError("--routeros-ssh-key", "SSH needs a private key (or --routeros-password-file)")
        if not (ros.known_hosts or ros.host_key or ros.insecure_skip_host_key):
            raise ConfigError(
                "--routeros-known-hosts",
                "SSH host key verification needs a known_hosts file or --routeros-host-key "
                "(or, knowingly, --routeros-insecure-skip-host-key)",
            )
    if ros.transport is RouterOSTransportKind.REST and not ros.password_file:
        raise ConfigError("--routeros-password-file", "the REST API needs a password")
    plain_http = (ros.rest_url or "").startswith("http://")
    if ros.transport is RouterOSTransportKind.REST and plain_http and not ros.insecure_allow_http:
        raise ConfigError(
            "--routeros-rest-url",
            "http:// would send the RouterOS password in clear text; use https:// "
            "(or, knowingly, --routeros-insecure-allow-http)",
        )
    return ros


def load_plugin_config(flags: Mapping[str, str | None], env: Mapping[str, str]) -> PluginConfig:
    unknown = set(flags) - {o.field for o in ALL_OPTIONS}
    if unknown:  # a caller's typo would otherwise silently fall back to a default
        raise ValueError(f"unknown plugin option(s): {', '.join(sorted(unknown))}")
    values = resolve(ALL_OPTIONS, flags, env)
    mode: Mode = values["mode"]
    if mode.runs_node and not values["node_id"]:
        raise ConfigError("--node-id", f"required when --mode is {mode.value} (or set RDS_CSI_NODE_ID)")
    routeros = _routeros_config(values)
    volumes = VolumeConfig(
        base_path=values["volume_base_path"],
        nvme_address=values["nvme_address"] or routeros.address or "127.0.0.1",
        nvme_port=values["nvme_port"],
        max_volume_bytes=values["max_volume_size"],
        capacity_cache_seconds=values["capacity_cache_seconds"],
    )
    api = values["kube_api"]
    if api == "auto":  # resolved once, here: nothing reads the environment after start-up
        api = "in-cluster" if env.get("KUBERNETES_SERVICE_HOST") else "off"
    kube = KubeConfig(
        api=api,
        token_file=values["kube_token_file"],
        ca_file=values["kube_ca_file"],
        static_nodes=values["static_nodes"],
    )
    attach = AttachConfig(
        grace_period=values["attach_grace_period"],
        reconcile_interval=values["reconcile_interval"],
        orphan_mode=values["orphan_reconcile"],
        orphan_grace=values["orphan_grace"],
        orphan_interval=values["orphan_interval"],
        require_kubevirt_migration=values["require_kubevirt_migration"],
        state_dir=values["state_dir"],
        default_max_volumes_per_node=values["default_max_volumes_per_node"],
    )
    # Without VolumeAttachments the state directory is the only record of who holds a volume. Only an embedded
    # simulator in a temp dir may do without: its volumes end with the process, and its attachments with them.
    throwaway_backend = routeros.transport is RouterOSTransportKind.SIMULATOR and not routeros.simulator_state_dir
    if mode.runs_controller and kube.api == "off" and attach.state_dir is None and not throwaway_backend:
        raise ConfigError(
            "--state-dir",
            "required when the controller runs without a Kubernetes API (--kube-api off): it keeps the attachments "
            "there, or a restart would let a second node write a volume that is still published",
        )
    if attach.orphan_mode is not OrphanMode.OFF and kube.api == "off":
        raise ConfigError("--orphan-reconcile", "needs the Kubernetes API (PVs are the proof a volume is in use)")
    if attach.require_kubevirt_migration and kube.api == "off":
        raise ConfigError(
            "--require-kubevirt-migration", "needs the Kubernetes API (migrations are read from KubeVirt's objects)"
        )
    node = NodeConfig(**{o.field: values[o.field] for o in NODE_OPTIONS})
    plugin_fields = {o.field: values[o.field] for o in PLUGIN_OPTIONS}
    return PluginConfig(**plugin_fields, routeros=routeros, volumes=volumes, kube=kube, attach=attach, node=node)


def files_read_at_start(config: PluginConfig) -> tuple[tuple[str, str], ...]:
    """``(flag, path)`` of every file this configuration reads, so start-up can refuse one it cannot read."""
    ros, kube = config.routeros, config.kube
    named: list[tuple[str, str | None]] = []
    if kube.api not in ("off", "in-cluster"):
        named += [("--kube-token-file", kube.token_file), ("--kube-ca-file", kube.ca_file)]
    if config.mode.runs_controller and ros.transport is not RouterOSTransportKind.SIMULATOR:
        named += [("--routeros-password-file", ros.password_file)]
        if ros.transport is RouterOSTransportKind.SSH:
            named += [("--routeros-ssh-key", ros.ssh_key), ("--routeros-known-hosts", ros.known_hosts)]
        else:
            named += [("--routeros-ca-file", ros.ca_file)]
    return tuple((flag, path) for flag, path in named if path)
