from __future__ import annotations

import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi.config import ConfigError, Endpoint, HostPort, LogFormat, Mode, load_plugin_config


def load(flags: dict[str, str | None] | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return load_plugin_config(flags or {"node_id": "node-1"}, env or {})


def test_defaults_are_the_documented_ones() -> None:
    config = load()
    assert config.mode is Mode.ALL
    assert config.endpoints == (Endpoint("unix", "/csi/csi.sock"),)
    assert config.driver_name == DEFAULT_DRIVER_NAME
    assert config.metrics_address == HostPort("0.0.0.0", 9809)
    assert config.log_format is LogFormat.TEXT
    assert config.grpc_workers == 16


def test_flag_beats_environment_beats_default() -> None:
    assert load({"node_id": "a", "grpc_workers": "4"}, {"RDS_CSI_GRPC_WORKERS": "8"}).grpc_workers == 4
    assert load({"node_id": "a"}, {"RDS_CSI_GRPC_WORKERS": "8"}).grpc_workers == 8


def test_environment_error_names_flag_and_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load({"node_id": "a"}, {"RDS_CSI_GRPC_WORKERS": "0"})
    assert info.value.option == "--grpc-workers (from RDS_CSI_GRPC_WORKERS)"
    assert "between 1 and 1024" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("mode", "everything", "--mode"),
        ("endpoints", "http://x", "--endpoints"),
        ("endpoints", "unix://relative.sock", "--endpoints"),
        ("endpoints", "unix:///" + "a" * 120, "--endpoints"),
        ("endpoints", "unix:///a.sock,unix:///a.sock", "--endpoints"),
        ("grpc_workers", "many", "--grpc-workers"),
        ("shutdown_timeout", "-1", "--shutdown-timeout"),
        ("metrics_address", "9809", "--metrics-address"),
        ("metrics_address", ":99999", "--metrics-address"),
        ("log_format", "xml", "--log-format"),
        ("log_level", "loud", "--log-level"),
        ("driver_name", "Not A DNS Name", "--driver-name"),
        ("node_id", "bad node;id", "--node-id"),
    ],
)
def test_bad_value_is_reported_against_its_flag(field: str, value: str, flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({"node_id": "node-1", field: value})
    assert info.value.option == flag


def test_node_id_required_when_node_service_runs() -> None:
    with pytest.raises(ConfigError) as info:
        load_plugin_config({"mode": "node"}, {})
    assert info.value.option == "--node-id"
    assert load_plugin_config({"mode": "controller"}, {}).node_id == ""


def test_endpoints_accept_unix_and_tcp_together() -> None:
    config = load({"node_id": "n", "endpoints": "unix:///run/csi.sock, tcp://127.0.0.1:10000"})
    assert config.endpoints == (Endpoint("unix", "/run/csi.sock"), Endpoint("tcp", "127.0.0.1:10000"))


def test_metrics_can_be_disabled_and_bound_to_ipv6() -> None:
    assert load({"node_id": "n", "metrics_address": "off"}).metrics_address is None
    assert load({"node_id": "n", "metrics_address": "[::1]:9000"}).metrics_address == HostPort("::1", 9000)
