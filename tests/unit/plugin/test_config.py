from __future__ import annotations

from collections.abc import Mapping

import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi.core.addresses import Endpoint, HostPort
from rds_csi.plugin.config import (
    ConfigError,
    LogFormat,
    Mode,
    PluginConfig,
    RouterOSTransportKind,
    load_plugin_config,
)
from rds_csi.routeros.names import MIKROTIK_NQN_PREFIX


def load(flags: Mapping[str, str | None] | None = None, env: Mapping[str, str] | None = None) -> PluginConfig:
    return load_plugin_config(flags or {"node_id": "node-1"}, env or {})


def test_defaults_are_the_documented_ones() -> None:
    config = load()
    assert config.mode is Mode.ALL
    assert config.endpoint == (Endpoint("unix", "/csi/csi.sock"),)
    assert config.driver_name == DEFAULT_DRIVER_NAME
    assert config.metrics_address == HostPort("0.0.0.0", 9809)
    assert config.log_format is LogFormat.TEXT
    assert config.grpc_workers == 16
    assert config.node.host_nqn_file == "/etc/nvme/hostnqn"  # nvme-cli's: the host's own NVMe identity
    assert config.node.max_volumes_per_node == 0
    assert config.node.host_nqn_recheck_interval == 300
    assert config.node.host_id_file == "/etc/nvme/hostid"  # nvme-cli's, next to the host NQN
    assert config.node.managed_nqn_prefix == MIKROTIK_NQN_PREFIX  # what the controller names volumes' subsystems


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
        ("endpoint", "http://x", "--endpoint"),
        ("endpoint", "unix://relative.sock", "--endpoint"),
        ("endpoint", "unix:///" + "a" * 120, "--endpoint"),
        ("endpoint", "unix:///a.sock,unix:///a.sock", "--endpoint"),
        ("grpc_workers", "many", "--grpc-workers"),
        ("nvme_address", "-bad..host-", "--nvme-address"),  # would have failed every CreateVolume instead
        ("shutdown_timeout", "-1", "--shutdown-timeout"),
        ("metrics_address", "9809", "--metrics-address"),
        ("metrics_address", ":99999", "--metrics-address"),
        ("log_format", "xml", "--log-format"),
        ("log_level", "loud", "--log-level"),
        ("driver_name", "Not A DNS Name", "--driver-name"),
        ("node_id", "bad node;id", "--node-id"),
        ("host_nqn_file", "etc/nvme/hostnqn", "--host-nqn-file"),
        ("max_volumes_per_node", "-1", "--max-volumes-per-node"),
        ("host_nqn_recheck_interval", "0", "--host-nqn-recheck-interval"),
        ("host_id_file", "hostid", "--host-id-file"),
        # A prefix must hold a whole naming authority and its ':'; anything shorter would claim boot volumes too.
        ("managed_nqn_prefix", "", "--managed-nqn-prefix"),
        ("managed_nqn_prefix", "nqn.", "--managed-nqn-prefix"),
        ("managed_nqn_prefix", "nqn.2000-02.com.mikrotik", "--managed-nqn-prefix"),
        ("managed_nqn_prefix", "nqn.2000-02.com.mikro", "--managed-nqn-prefix"),
        ("managed_nqn_prefix", "nqn.2000-02.com.mikrotik:a,b", "--managed-nqn-prefix"),
    ],
)
def test_bad_value_is_reported_against_its_flag(field: str, value: str, flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({"node_id": "node-1", field: value})
    assert info.value.option == flag


@pytest.mark.parametrize("prefix", ["nqn.2000-02.com.mikrotik:pvc-", "nqn.2014-08.com.example:storage:"])
def test_managed_nqn_prefix_may_be_narrower_or_another_authority(prefix: str) -> None:
    assert load({"node_id": "n", "managed_nqn_prefix": prefix}).node.managed_nqn_prefix == prefix


def test_node_id_required_when_node_service_runs() -> None:
    with pytest.raises(ConfigError) as info:
        load_plugin_config({"mode": "node"}, {})
    assert info.value.option == "--node-id"
    assert load_plugin_config({"mode": "controller"}, {}).node_id == ""


def test_endpoints_accept_unix_and_tcp_together() -> None:
    config = load({"node_id": "n", "endpoint": "unix:///run/csi.sock, tcp://127.0.0.1:10000"})
    assert config.endpoint == (Endpoint("unix", "/run/csi.sock"), Endpoint("tcp", "127.0.0.1:10000"))


def test_metrics_can_be_disabled_and_bound_to_ipv6() -> None:
    assert load({"node_id": "n", "metrics_address": "off"}).metrics_address is None
    assert load({"node_id": "n", "metrics_address": "[::1]:9000"}).metrics_address == HostPort("::1", 9000)


def test_simulator_is_the_default_backend_and_needs_no_address() -> None:
    config = load()
    assert config.routeros.transport is RouterOSTransportKind.SIMULATOR
    assert config.volumes.base_path == "/storage-pool/metal-csi"
    assert config.volumes.max_volume_bytes == 16 << 40


def test_ssh_backend_requires_address_credentials_and_host_key_trust() -> None:
    base = {"node_id": "n", "routeros_transport": "ssh"}
    with pytest.raises(ConfigError) as info:
        load(base)
    assert info.value.option == "--routeros-address"
    with pytest.raises(ConfigError) as info:
        load({**base, "routeros_address": "10.0.0.1"})
    assert info.value.option == "--routeros-ssh-key"
    with pytest.raises(ConfigError) as info:
        load({**base, "routeros_address": "10.0.0.1", "routeros_ssh_key": "/k"})
    assert info.value.option == "--routeros-known-hosts"
    trusted = {**base, "routeros_address": "10.0.0.1", "routeros_ssh_key": "/k", "routeros_host_key": "SHA256:x"}
    config = load({**trusted, "state_dir": "/var/lib/rds-csi"})
    assert config.routeros.address == "10.0.0.1"
    assert config.volumes.nvme_address == "10.0.0.1"


SSH_RDS = {
    "routeros_transport": "ssh",
    "routeros_address": "10.0.0.1",
    "routeros_ssh_key": "/k",
    "routeros_host_key": "SHA256:x",
}


@pytest.mark.parametrize("mode", ["controller", "all"])
def test_a_controller_without_the_kubernetes_api_needs_a_state_dir(mode: str) -> None:
    flags = {"mode": mode, "node_id": "n", "kube_api": "off", **SSH_RDS}
    with pytest.raises(ConfigError) as info:
        load(flags)
    assert info.value.option == "--state-dir"
    assert "--kube-api off" in str(info.value)
    assert load({**flags, "state_dir": "/var/lib/rds-csi"}).attach.state_dir == "/var/lib/rds-csi"
    assert load({**flags}, {"RDS_CSI_STATE_DIR": "/srv/state"}).attach.state_dir == "/srv/state"


def test_a_state_dir_is_not_needed_with_the_kubernetes_api_a_node_plugin_or_a_throwaway_simulator() -> None:
    assert load({"mode": "controller", "kube_api": "https://k8s:6443", **SSH_RDS}).attach.state_dir is None
    assert load({"mode": "node", "node_id": "n", "kube_api": "off", **SSH_RDS}).attach.state_dir is None
    assert load({"mode": "controller", "kube_api": "off"}).attach.state_dir is None  # the simulator in a temp dir
    with pytest.raises(ConfigError) as info:  # a simulated RDS that outlives the process keeps attachments too
        load({"mode": "controller", "kube_api": "off", "routeros_simulator_state_dir": "/srv/sim"})
    assert info.value.option == "--state-dir"


def test_node_mode_ignores_routeros_settings() -> None:
    config = load_plugin_config({"mode": "node", "node_id": "n", "routeros_transport": "ssh"}, {})
    assert config.routeros.transport is RouterOSTransportKind.SSH


@pytest.mark.parametrize(("raw", "expected"), [("16Ti", 16 << 40), ("512GiB", 512 << 30), ("1048576", 1 << 20)])
def test_sizes_take_binary_units(raw: str, expected: int) -> None:
    assert load({"node_id": "n", "max_volume_size": raw}).volumes.max_volume_bytes == expected


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("max_volume_size", "16TB", "--max-volume-size"),
        ("volume_base_path", "storage-pool", "--volume-base-path"),
        ("volume_base_path", "/storage-pool/../etc", "--volume-base-path"),
        ("routeros_insecure_skip_host_key", "maybe", "--routeros-insecure-skip-host-key"),
        ("routeros_rest_url", "ftp://x", "--routeros-rest-url"),
        ("routeros_pool_size", "0", "--routeros-pool-size"),
        ("state_dir", "var/lib/rds-csi", "--state-dir"),
    ],
)
def test_bad_backend_values_name_their_flag(field: str, value: str, flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({"node_id": "n", field: value})
    assert info.value.option == flag


REST_RDS = {
    "routeros_transport": "rest",
    "routeros_address": "10.0.0.1",
    "routeros_password_file": "/secret/password",
    "state_dir": "/var/lib/rds-csi",
}


def test_a_plain_http_rest_url_is_refused_unless_explicitly_allowed() -> None:
    flags = {"mode": "controller", **REST_RDS, "routeros_rest_url": "http://10.0.0.1:8080"}
    with pytest.raises(ConfigError) as info:
        load(flags)
    assert info.value.option == "--routeros-rest-url"
    assert "clear text" in str(info.value) and "--routeros-insecure-allow-http" in str(info.value)
    allowed = load({**flags, "routeros_insecure_allow_http": "true"})
    assert allowed.routeros.rest_url == "http://10.0.0.1:8080" and allowed.routeros.insecure_allow_http
    assert load({"mode": "controller", **REST_RDS, "routeros_rest_url": "https://10.0.0.1"}).routeros.rest_url


def test_unknown_option_names_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="endpoints"):
        load_plugin_config({"endpoints": "unix:///x.sock"}, {})


def test_strict_mode_without_the_kubernetes_api_is_a_configuration_error() -> None:
    # Strict mode refuses every second node when it cannot ask; silently running without it would be worse.
    flags = {"mode": "controller", "kube_api": "off", "require_kubevirt_migration": "true"}
    with pytest.raises(ConfigError) as info:
        load_plugin_config(flags, {})
    assert info.value.option == "--require-kubevirt-migration"
    enabled = load_plugin_config({**flags, "kube_api": "http://127.0.0.1:1"}, {})
    assert enabled.attach.require_kubevirt_migration is True
    assert load_plugin_config({"mode": "controller"}, {}).attach.require_kubevirt_migration is False
