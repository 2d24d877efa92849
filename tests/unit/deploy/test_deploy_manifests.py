"""The Kubernetes manifests and the Helm chart: they parse, configure the plugin with options it has, grant the
sidecars what they need, and agree with each other and with the driver's compatibility contract.

Every check runs over two bundles of objects: the plain manifests (deploy/kubernetes, examples included) and the
Helm chart rendered offline by the real Helm engine (the ``helm_python`` package, skipped when absent).
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi.cli import build_parser
from rds_csi.core.addresses import Endpoint
from rds_csi.csi.validation import (
    FSTYPE_KEY,
    PARAM_MIGRATION_TIMEOUT,
    PROVISIONER_PREFIX,
    ParameterDefaults,
    parse_parameters,
)
from rds_csi.plugin.config import ALL_OPTIONS, ConfigError, PluginConfig, RouterOSTransportKind, load_plugin_config

# Reaches rds_csi._native, directly or not: the pure-twin pass runs it too (tests/unit/ci/test_pure_twin_pass.py).
pytestmark = pytest.mark.native

# PyYAML ships without type hints (and types-PyYAML is not a dependency); it comes with the kubernetes client.
yaml: Any = importlib.import_module("yaml")

REPO = Path(__file__).resolve().parents[3]
PLAIN_DIR = REPO / "deploy" / "kubernetes"
CHART_DIR = REPO / "deploy" / "helm" / "rds-csi"
NAMESPACE = "rds-csi"
# With this release name the chart's object names are the plain manifests' names.
RELEASE = "rds-csi"
RDS_ADDRESS = "192.0.2.10"  # TEST-NET-1: a documentation address, never contacted
HELM_VALUES: dict[str, Any] = {"routeros": {"address": RDS_ADDRESS}, "volumeSnapshotClass": {"create": True}}
NODE_NAME = "worker-1"
SIDECAR_REGISTRY = "registry.k8s.io/sig-storage/"
# Keys of the RouterOS credentials Secret, as docs/deploy.md documents them.
SECRET_KEYS = frozenset({"ssh-privatekey", "known_hosts", "password", "ca.crt"})
CLUSTER_SCOPED = frozenset(
    {"Namespace", "CSIDriver", "ClusterRole", "ClusterRoleBinding", "StorageClass", "VolumeSnapshotClass"}
)

Doc = dict[str, Any]


# ---- loading ------------------------------------------------------------------------------------------------------


def parse_documents(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


@dataclass(frozen=True, slots=True)
class Bundle:
    """The Kubernetes objects one install method creates."""

    source: str
    docs: tuple[Doc, ...]

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Doc:
        found = [d for d in self.of_kind(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.source}: expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def kinds_and_names(self) -> Counter[tuple[str, str]]:
        return Counter((d["kind"], d["metadata"]["name"]) for d in self.docs)


def plain_files() -> list[Path]:
    return sorted(PLAIN_DIR.rglob("*.yaml"))


def plain_bundle() -> Bundle:
    docs = [d for path in plain_files() for d in parse_documents(path.read_text()) if d["kind"] != "Kustomization"]
    return Bundle("plain", tuple(docs))


HELM_MISSING = "the Helm engine is not installed (pip install helm-python-sdk); Debian packages no helm"


def helm_module(name: str) -> ModuleType:
    module: ModuleType = pytest.importorskip(f"helm_python.{name}", reason=HELM_MISSING)
    return module


def render_chart(values: Mapping[str, Any], release: str = RELEASE) -> Bundle:
    chart = helm_module("chart").Chart.load(str(CHART_DIR))
    rendered: dict[str, str] = chart.render(dict(values), name=release, namespace=NAMESPACE)
    docs = [d for name, text in sorted(rendered.items()) if name.endswith(".yaml") for d in parse_documents(text)]
    return Bundle("helm", tuple(docs))


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, Mapping) and key in out else value
    return out


@pytest.fixture(params=["plain", "helm"])
def bundle(request: pytest.FixtureRequest) -> Bundle:
    return plain_bundle() if request.param == "plain" else render_chart(HELM_VALUES)


# ---- the plugin container's view -----------------------------------------------------------------------------------


def workload(bundle: Bundle, component: str) -> Doc:
    kind = {"controller": "Deployment", "node": "DaemonSet"}[component]
    return bundle.one(kind)


def pod_spec(workload_doc: Doc) -> Doc:
    spec: Doc = workload_doc["spec"]["template"]["spec"]
    return spec


def containers(workload_doc: Doc) -> dict[str, Doc]:
    return {c["name"]: c for c in pod_spec(workload_doc)["containers"]}


def plugin_container(workload_doc: Doc) -> Doc:
    found: list[Doc] = [c for c in pod_spec(workload_doc)["containers"] if c.get("args", [None])[0] == "plugin"]
    assert len(found) == 1, "exactly one container runs `rds-csi plugin`"
    return found[0]


def sidecars(workload_doc: Doc) -> list[Doc]:
    plugin = plugin_container(workload_doc)
    return [c for c in pod_spec(workload_doc)["containers"] if c is not plugin]


def arg_value(container: Doc, flag: str) -> str:
    values: list[str] = [a.split("=", 1)[1] for a in container.get("args", []) if a.startswith(flag + "=")]
    assert len(values) == 1, f"{container['name']}: expected one {flag}=..., got {values}"
    return values[0]


def mounts(container: Doc) -> dict[str, Doc]:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def volumes(workload_doc: Doc) -> dict[str, Doc]:
    return {v["name"]: v for v in pod_spec(workload_doc).get("volumes", [])}


def port(container: Doc, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"{container['name']} has no port named {name}"
    return int(ports[name])


def plugin_environment(bundle: Bundle, container: Doc) -> dict[str, str]:
    """The RDS_CSI_* variables the container sees, as the kubelet would resolve them on NODE_NAME."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(bundle.one("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            env[var["name"]] = NODE_NAME
        else:
            raise AssertionError(f"unexpected environment source in {container['name']}: {var}")
    return env


def plugin_flags(container: Doc) -> dict[str, str | None]:
    parsed = vars(build_parser().parse_args(container["args"]))
    return {k: v for k, v in parsed.items() if k != "command"}


def effective_config(bundle: Bundle, component: str, env_overrides: Mapping[str, str] | None = None) -> PluginConfig:
    container = plugin_container(workload(bundle, component))
    # Kubernetes sets KUBERNETES_SERVICE_HOST in every pod: "--kube-api auto" then means in-cluster.
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    env = in_pod | plugin_environment(bundle, container) | dict(env_overrides or {})
    return load_plugin_config(plugin_flags(container), env)


# ---- the plain files themselves ------------------------------------------------------------------------------------


def test_every_plain_manifest_parses_into_objects_with_apiversion_kind_and_name() -> None:
    assert plain_files(), "no manifests found"
    for path in plain_files():
        docs = parse_documents(path.read_text())
        assert docs, f"{path.name} holds no object"
        for doc in docs:
            assert isinstance(doc.get("apiVersion"), str), path.name
            assert isinstance(doc.get("kind"), str), path.name
            assert isinstance(doc.get("metadata", {}).get("name"), str), path.name


def test_kustomization_lists_every_top_level_manifest() -> None:
    kustomization = parse_documents((PLAIN_DIR / "kustomization.yaml").read_text())[0]
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in PLAIN_DIR.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == on_disk


def test_plain_namespaced_objects_are_in_the_rds_csi_namespace() -> None:
    for doc in plain_bundle().docs:
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in CLUSTER_SCOPED:
            assert namespace is None, f"{doc['kind']} {doc['metadata']['name']} is cluster-scoped"
        else:
            assert namespace == NAMESPACE, f"{doc['kind']} {doc['metadata']['name']}"


def test_plain_namespace_admits_the_privileged_node_plugin() -> None:
    labels = plain_bundle().one("Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_config_map_values_are_strings_and_rds_csi_variables(bundle: Bundle) -> None:
    # envFrom injects every key; Kubernetes rejects non-string ConfigMap data outright.
    for config_map in bundle.of_kind("ConfigMap"):
        for key, value in config_map["data"].items():
            assert key.startswith("RDS_CSI_"), key
            assert isinstance(value, str), f"{key}: {value!r} must be quoted"


def test_image_tags_follow_the_package_version(bundle: Bundle) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    for component in ("controller", "node"):
        assert plugin_container(workload(bundle, component))["image"].endswith(f"rds-csi:{version}")


# ---- the plugin's configuration ------------------------------------------------------------------------------------

OPTION_FLAGS = frozenset(spec.flag for spec in ALL_OPTIONS)
OPTION_ENVS = frozenset(spec.env for spec in ALL_OPTIONS)


@pytest.mark.parametrize("component", ["controller", "node"])
def test_plugin_flags_are_options_of_rds_csi_plugin(bundle: Bundle, component: str) -> None:
    args = plugin_container(workload(bundle, component))["args"]
    flags = {a.split("=", 1)[0] for a in args[1:] if a.startswith("--")}
    assert flags, "the plugin is started without flags"
    assert flags <= OPTION_FLAGS, f"unknown flags: {sorted(flags - OPTION_FLAGS)}"


@pytest.mark.parametrize("component", ["controller", "node"])
def test_plugin_environment_variables_are_options(bundle: Bundle, component: str) -> None:
    env = plugin_environment(bundle, plugin_container(workload(bundle, component)))
    assert env, "the plugin gets no RDS_CSI_* settings"
    assert set(env) <= OPTION_ENVS, f"unknown variables: {sorted(set(env) - OPTION_ENVS)}"


def test_plain_controller_without_routeros_address_refuses_to_start() -> None:
    with pytest.raises(ConfigError) as info:
        effective_config(plain_bundle(), "controller")
    assert info.value.option == "--routeros-address"


def address_for(bundle: Bundle) -> dict[str, str]:
    """The plain ConfigMap ships without an address, for the user to fill in; the chart requires one."""
    return {"RDS_CSI_ROUTEROS_ADDRESS": RDS_ADDRESS} if bundle.source == "plain" else {}


@pytest.mark.parametrize(("component", "mode"), [("controller", "controller"), ("node", "node")])
def test_plugin_configuration_loads_and_matches_the_pod(bundle: Bundle, component: str, mode: str) -> None:
    config = effective_config(bundle, component, address_for(bundle))
    workload_doc = workload(bundle, component)
    plugin = plugin_container(workload_doc)
    assert config.mode.value == mode
    assert config.driver_name == DEFAULT_DRIVER_NAME
    assert config.endpoint == (Endpoint("unix", "/csi/csi.sock"),)
    assert "/csi" in mounts(plugin)
    assert config.metrics_address is not None
    assert config.metrics_address.port == port(plugin, "metrics")
    if component == "node":
        assert config.node_id == NODE_NAME


def test_controller_credentials_are_files_of_the_mounted_secret(bundle: Bundle) -> None:
    config = effective_config(bundle, "controller", address_for(bundle))
    assert config.routeros.transport is RouterOSTransportKind.SSH
    controller = workload(bundle, "controller")
    secret_dirs = {
        path
        for path, mount in mounts(plugin_container(controller)).items()
        if "secret" in volumes(controller)[mount["name"]]
    }
    files = [config.routeros.ssh_key, config.routeros.known_hosts]
    for file in files:
        assert file is not None
        directory, _, key = file.rpartition("/")
        assert directory in secret_dirs, f"{file} is not in a mounted Secret"
        assert key in SECRET_KEYS


def test_storage_classes_parameters_are_accepted_by_the_controller(bundle: Bundle) -> None:
    config = effective_config(bundle, "controller", address_for(bundle))
    defaults = ParameterDefaults(volume_path=config.volumes.base_path, nvme_address=RDS_ADDRESS)
    classes = bundle.of_kind("StorageClass")
    for storage_class in classes:
        parameters: dict[str, str] = storage_class.get("parameters", {})
        assert all(isinstance(v, str) for v in parameters.values()), "StorageClass parameters must be strings"
        parse_parameters(parameters, defaults)
        # parse_parameters lets every provisioner key through; a misspelt one would be silently ignored.
        assert {k for k in parameters if k.startswith(PROVISIONER_PREFIX)} <= {FSTYPE_KEY}
    assert any(FSTYPE_KEY in sc.get("parameters", {}) for sc in classes), "no filesystem StorageClass"
    assert any(PARAM_MIGRATION_TIMEOUT in sc.get("parameters", {}) for sc in classes), "no KubeVirt StorageClass"


# ---- the compatibility contract ------------------------------------------------------------------------------------


def test_driver_name_is_the_same_everywhere(bundle: Bundle) -> None:
    text = yaml.safe_dump_all(list(bundle.docs))
    assert set(re.findall(r"[A-Za-z0-9.-]*srvlab\.io", text)) == {DEFAULT_DRIVER_NAME}
    assert bundle.one("CSIDriver")["metadata"]["name"] == DEFAULT_DRIVER_NAME
    for storage_class in bundle.of_kind("StorageClass"):
        assert storage_class["provisioner"] == DEFAULT_DRIVER_NAME
    for snapshot_class in bundle.of_kind("VolumeSnapshotClass"):
        assert snapshot_class["driver"] == DEFAULT_DRIVER_NAME


def test_csidriver_requires_attach_and_applies_fsgroup_to_files(bundle: Bundle) -> None:
    spec = bundle.one("CSIDriver")["spec"]
    assert spec == {
        "attachRequired": True,
        "podInfoOnMount": False,
        "volumeLifecycleModes": ["Persistent"],
        "fsGroupPolicy": "File",
    }


# ---- RBAC -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    namespace: str | None  # None: cluster-wide
    api_group: str
    resource: str
    verb: str


def grants(bundle: Bundle, service_account: str) -> set[Grant]:
    roles = {(None, d["metadata"]["name"]): d["rules"] for d in bundle.of_kind("ClusterRole")}
    roles |= {(d["metadata"]["namespace"], d["metadata"]["name"]): d["rules"] for d in bundle.of_kind("Role")}
    granted: set[Grant] = set()
    for binding in bundle.of_kind("ClusterRoleBinding") + bundle.of_kind("RoleBinding"):
        subject = {"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}
        if not any(all(s.get(k) == v for k, v in subject.items()) for s in binding["subjects"]):
            continue
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        ref = binding["roleRef"]
        rules = roles[(scope if ref["kind"] == "Role" else None, ref["name"])]
        for rule in rules:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted |= {Grant(scope, group, resource, verb) for verb in rule["verbs"]}
    return granted


def allowed(granted: set[Grant], namespace: str, api_group: str, resource: str, verb: str) -> bool:
    return any(
        g.namespace in (None, namespace)
        and g.api_group in (api_group, "*")
        and g.resource in (resource, "*")
        and g.verb in (verb, "*")
        for g in granted
    )


# (api group, resource, verbs): the sidecars' needs (provisioner, attacher, resizer, snapshotter) and the plugin's.
CONTROLLER_NEEDS = (
    ("", "persistentvolumes", "get list watch create patch delete"),
    ("", "persistentvolumeclaims", "get list watch update"),
    ("", "persistentvolumeclaims/status", "patch"),
    ("", "nodes", "get list watch"),
    ("", "events", "create patch"),
    ("storage.k8s.io", "volumeattachments", "get list watch patch"),
    ("storage.k8s.io", "volumeattachments/status", "patch"),
    ("storage.k8s.io", "csinodes", "get list watch"),
    ("storage.k8s.io", "storageclasses", "get list watch"),
    ("coordination.k8s.io", "leases", "get list watch create update delete"),
    ("snapshot.storage.k8s.io", "volumesnapshots", "get list watch"),
    ("snapshot.storage.k8s.io", "volumesnapshotcontents", "get list watch update patch"),
    ("snapshot.storage.k8s.io", "volumesnapshotcontents/status", "update patch"),
    ("snapshot.storage.k8s.io", "volumesnapshotclasses", "get list watch"),
    ("kubevirt.io", "virtualmachineinstancemigrations", "get list"),
    ("kubevirt.io", "virtualmachineinstances", "get list"),
)
NODE_NEEDS = (("", "nodes", "get patch"), ("", "events", "create patch"))


@pytest.mark.parametrize(("component", "needs"), [("controller", CONTROLLER_NEEDS), ("node", NODE_NEEDS)])
def test_service_account_is_granted_what_the_pod_needs(
    bundle: Bundle, component: str, needs: tuple[tuple[str, str, str], ...]
) -> None:
    granted = grants(bundle, pod_spec(workload(bundle, component))["serviceAccountName"])
    missing = [
        f"{verb} {group or 'core'}/{resource}"
        for group, resource, verbs in needs
        for verb in verbs.split()
        if not allowed(granted, NAMESPACE, group, resource, verb)
    ]
    assert not missing, f"{component} lacks: {missing}"


def test_node_plugin_may_annotate_nodes_but_neither_list_replace_nor_delete_them(bundle: Bundle) -> None:
    granted = grants(bundle, pod_spec(workload(bundle, "node"))["serviceAccountName"])
    node_verbs = {verb for verb in ("get", "patch", "list", "watch", "create", "update", "delete")
                  if allowed(granted, NAMESPACE, "", "nodes", verb)}  # fmt: skip
    assert node_verbs == {"get", "patch"}


def test_leader_election_leases_are_granted_only_in_the_driver_namespace(bundle: Bundle) -> None:
    granted = grants(bundle, pod_spec(workload(bundle, "controller"))["serviceAccountName"])
    assert allowed(granted, NAMESPACE, "coordination.k8s.io", "leases", "update")
    assert not allowed(granted, "kube-system", "coordination.k8s.io", "leases", "update")


@pytest.mark.parametrize("component", ["controller", "node"])
def test_no_service_account_can_read_secrets(bundle: Bundle, component: str) -> None:
    # Credentials reach the controller as a mounted volume; no API access to Secrets is needed.
    granted = grants(bundle, pod_spec(workload(bundle, component))["serviceAccountName"])
    assert not any(allowed(granted, NAMESPACE, "", "secrets", verb) for verb in ("get", "list", "watch"))


# ---- pods and sidecars ---------------------------------------------------------------------------------------------


def test_controller_sidecars_are_current_images_sharing_the_plugin_socket(bundle: Bundle) -> None:
    controller = workload(bundle, "controller")
    by_name = containers(controller)
    for name in ("csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter"):
        assert "--leader-election" in by_name[name]["args"], name
    assert "--extra-create-metadata" in by_name["csi-provisioner"]["args"]
    socket_volume = mounts(plugin_container(controller))["/csi"]["name"]
    for sidecar in sidecars(controller):
        image = sidecar["image"]
        assert image.startswith(SIDECAR_REGISTRY), image
        assert re.search(r":v\d+\.\d+\.\d+$", image), f"{image} is not pinned to a release"
        assert arg_value(sidecar, "--csi-address") == "/csi/csi.sock"
        assert mounts(sidecar)["/csi"]["name"] == socket_volume


@pytest.mark.parametrize("component", ["controller", "node"])
def test_liveness_goes_through_the_livenessprobe_sidecar_and_readiness_through_healthz(
    bundle: Bundle, component: str
) -> None:
    workload_doc = workload(bundle, component)
    plugin = plugin_container(workload_doc)
    probe = containers(workload_doc)["liveness-probe"]
    assert arg_value(probe, "--http-endpoint") == f":{port(plugin, 'healthz')}"
    assert plugin["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert plugin["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_controller_plugin_runs_unprivileged_with_one_replica_at_a_time(bundle: Bundle) -> None:
    controller = workload(bundle, "controller")
    assert controller["spec"]["replicas"] == 1
    assert controller["spec"]["strategy"]["type"] == "Recreate"
    security = plugin_container(controller)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert pod_spec(controller)["securityContext"]["fsGroup"] == security["runAsUser"]


def test_node_plugin_reaches_host_devices_and_kubelet_mounts(bundle: Bundle) -> None:
    node = workload(bundle, "node")
    spec = pod_spec(node)
    plugin = plugin_container(node)
    assert spec["hostNetwork"] is True
    assert plugin["securityContext"]["privileged"] is True
    assert plugin["securityContext"]["runAsUser"] == 0
    plugin_mounts = mounts(plugin)
    assert plugin_mounts["/var/lib/kubelet"]["mountPropagation"] == "Bidirectional"
    host_paths = {m["mountPath"]: volumes(node)[m["name"]]["hostPath"]["path"] for m in plugin_mounts.values()}
    assert host_paths["/dev"] == "/dev"
    assert host_paths["/sys"] == "/sys"
    assert host_paths["/var/lib/kubelet"] == "/var/lib/kubelet"
    assert host_paths["/csi"] == f"/var/lib/kubelet/plugins/{DEFAULT_DRIVER_NAME}"
    registrar = containers(node)["node-driver-registrar"]
    assert arg_value(registrar, "--kubelet-registration-path") == host_paths["/csi"] + "/csi.sock"
    registration = mounts(registrar)["/registration"]["name"]
    assert volumes(node)[registration]["hostPath"]["path"] == "/var/lib/kubelet/plugins_registry"


def test_node_host_nqn_file_is_on_the_hosts_writable_etc_nvme(bundle: Bundle) -> None:
    # The host NQN must be the host's own (nvme-cli's), and survive pod restarts once generated.
    config = effective_config(bundle, "node", address_for(bundle))
    directory, _, name = config.node.host_nqn_file.rpartition("/")
    assert name == "hostnqn"
    assert config.node.host_id_file == f"{directory}/hostid"  # the pair lives together, on the same mount
    node = workload(bundle, "node")
    mount = mounts(plugin_container(node))[directory]
    assert not mount.get("readOnly", False)
    assert volumes(node)[mount["name"]]["hostPath"] == {"path": "/etc/nvme", "type": "DirectoryOrCreate"}


def test_metrics_services_select_the_plugin_pods_on_their_metrics_port(bundle: Bundle) -> None:
    services = bundle.of_kind("Service")
    assert len(services) == 2
    for component in ("controller", "node"):
        workload_doc = workload(bundle, component)
        labels = workload_doc["spec"]["template"]["metadata"]["labels"]
        matching = [s for s in services if s["spec"]["selector"].items() <= labels.items()]
        assert len(matching) == 1, f"{component}: {len(matching)} Services select its pods"
        (service_port,) = matching[0]["spec"]["ports"]
        assert service_port["targetPort"] == "metrics"
        assert service_port["port"] == port(plugin_container(workload_doc), "metrics") == 9809


# ---- kustomize and Helm --------------------------------------------------------------------------------------------


def test_kustomize_build_yields_the_plain_objects() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    built = subprocess.run(
        [kubectl, "kustomize", str(PLAIN_DIR)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    top_level = Bundle(
        "plain",
        tuple(d for d in plain_bundle().docs if d["kind"] not in ("StorageClass", "VolumeSnapshotClass")),
    )
    assert Bundle("kustomize", tuple(parse_documents(built))).kinds_and_names() == top_level.kinds_and_names()


def test_chart_creates_the_same_objects_as_the_plain_manifests() -> None:
    # Helm cannot create the namespace it installs into (`helm install --create-namespace` does).
    plain = Counter({k: n for k, n in plain_bundle().kinds_and_names().items() if k[0] != "Namespace"})
    assert render_chart(HELM_VALUES).kinds_and_names() == plain


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, r"routeros\.address is required"),
        ({"routeros": {"address": RDS_ADDRESS, "transport": "telnet"}}, r"routeros\.transport must be ssh or rest"),
        ({"routeros": {"address": RDS_ADDRESS}, "extraConfig": {"GRACE": "45"}}, r"extraConfig keys are RDS_CSI_"),
    ],
)
def test_chart_refuses_values_the_controller_cannot_run_with(values: dict[str, Any], message: str) -> None:
    errors = helm_module("errors")
    with pytest.raises(errors.HelmRenderError, match=message):
        render_chart(values)


def secret_file(name: str) -> str:
    return f"/etc/rds-csi/routeros/{name}"


@pytest.mark.parametrize(
    ("routeros", "expected"),
    [
        ({}, ("ssh", secret_file("ssh-privatekey"), secret_file("known_hosts"), None, None, None)),
        ({"hostKey": "SHA256:q8Mx"}, ("ssh", secret_file("ssh-privatekey"), None, "SHA256:q8Mx", None, None)),
        ({"transport": "rest"}, ("rest", None, None, None, secret_file("password"), secret_file("ca.crt"))),
        ({"transport": "rest", "caFromSecret": False}, ("rest", None, None, None, secret_file("password"), None)),
    ],
)
def test_chart_routeros_values_configure_the_controller(
    routeros: dict[str, Any], expected: tuple[str | None, ...]
) -> None:
    bundle = render_chart(merged(HELM_VALUES, {"routeros": routeros}))
    ros = effective_config(bundle, "controller").routeros
    assert (ros.transport.value, ros.ssh_key, ros.known_hosts, ros.host_key, ros.password_file, ros.ca_file) == (
        expected
    )


def test_chart_values_reach_the_pods() -> None:
    toleration = {"key": "storage", "operator": "Exists", "effect": "NoSchedule"}
    values = merged(
        HELM_VALUES,
        {
            "image": {"repository": "registry.example/storage/rds-csi", "tag": "0.1.0-rc1"},
            "logFormat": "text",
            "volumes": {"basePath": "/nvme1/k8s"},
            "controller": {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}, "tolerations": [toleration]},
            "node": {"nodeSelector": {"storage": "rds"}, "resources": {"limits": {"memory": "1Gi"}}},
        },
    )
    bundle = render_chart(values)
    for component in ("controller", "node"):
        plugin = plugin_container(workload(bundle, component))
        assert plugin["image"] == "registry.example/storage/rds-csi:0.1.0-rc1"
        config = effective_config(bundle, component)
        assert config.log_format.value == "text"
        assert config.volumes.base_path == "/nvme1/k8s"
    controller_spec = pod_spec(workload(bundle, "controller"))
    assert controller_spec["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert controller_spec["tolerations"] == [toleration]
    node = workload(bundle, "node")
    assert pod_spec(node)["nodeSelector"] == {"storage": "rds"}
    # Helm merges maps: the override replaces the limit and keeps the default requests.
    assert plugin_container(node)["resources"]["limits"] == {"memory": "1Gi"}


def test_chart_extra_config_reaches_both_plugins() -> None:
    extra = {"RDS_CSI_ATTACH_GRACE_PERIOD": 45, "RDS_CSI_ORPHAN_RECONCILE": "dry-run"}
    bundle = render_chart(merged(HELM_VALUES, {"extraConfig": extra}))
    for component in ("controller", "node"):
        config = effective_config(bundle, component)
        assert config.attach.grace_period == 45.0
        assert config.attach.orphan_mode.value == "dry-run"


def test_chart_moves_every_kubelet_path_with_kubelet_dir() -> None:
    kubelet = "/var/snap/microk8s/common/var/lib/kubelet"
    node = workload(render_chart(merged(HELM_VALUES, {"node": {"kubeletDir": kubelet}})), "node")
    host_paths = [v["hostPath"]["path"] for v in volumes(node).values() if "kubelet" in v["hostPath"]["path"]]
    assert len(host_paths) == 3
    assert all(p.startswith(kubelet) for p in host_paths)
    registrar = containers(node)["node-driver-registrar"]
    assert arg_value(registrar, "--kubelet-registration-path").startswith(kubelet + "/plugins/")
    assert kubelet in mounts(plugin_container(node))
    bundle = render_chart(merged(HELM_VALUES, {"node": {"kubeletDir": kubelet}}))
    assert plugin_environment(bundle, plugin_container(node))["RDS_CSI_KUBELET_DIR"] == kubelet  # recovery looks there


def test_chart_service_monitor_scrapes_both_metrics_services() -> None:
    assert not render_chart(HELM_VALUES).of_kind("ServiceMonitor")
    bundle = render_chart(merged(HELM_VALUES, {"metrics": {"serviceMonitor": {"enabled": True}}}))
    monitor = bundle.one("ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"].items()
    scraped = [s for s in bundle.of_kind("Service") if selector <= s["metadata"]["labels"].items()]
    assert len(scraped) == 2
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_chart_names_cluster_objects_after_the_release() -> None:
    first = render_chart(HELM_VALUES, release="storage-a")
    second = render_chart(HELM_VALUES, release="storage-b")

    def cluster_roles(bundle: Bundle) -> set[str]:
        return {d["metadata"]["name"] for d in bundle.of_kind("ClusterRole") + bundle.of_kind("ClusterRoleBinding")}

    assert not cluster_roles(first) & cluster_roles(second)


def test_chart_lints_without_warnings() -> None:
    report: dict[str, Any] = helm_module("chart").lint(
        str(CHART_DIR), dict(HELM_VALUES), strict=True, namespace=NAMESPACE
    )
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert not findings
    assert not report["errors"]
