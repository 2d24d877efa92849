"""``rds-csi demo``: run the driver end to end on this machine, no hardware, and show what it does.

Today: the plugin (controller + node) on a private unix socket, driven over real gRPC like kubelet and the
sidecars drive it, plus a scrape of its metrics endpoint. The steps grow as the driver's services land.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from typing import TextIO

import grpc

from rds_csi.config import load_plugin_config
from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc
from rds_csi.plugin import Plugin


def run_demo(out: TextIO) -> int:
    workdir = tempfile.mkdtemp(prefix="rds-csi-demo-")
    config = load_plugin_config(
        {
            "mode": "all",
            "node_id": "demo-node",
            "endpoints": f"unix://{workdir}/csi.sock",
            "metrics_address": "127.0.0.1:0",
            "log_level": "warning",
        },
        {},
    )
    plugin = Plugin(config)
    plugin.start()
    try:
        target = f"unix://{workdir}/csi.sock"
        out.write(f"plugin serving CSI on {target}\n")
        with grpc.insecure_channel(target) as channel:
            identity = csi_pb2_grpc.IdentityStub(channel)
            info = identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
            out.write(f"GetPluginInfo: name={info.name} version={info.vendor_version}\n")
            caps = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), timeout=10)
            names = [
                csi_pb2.PluginCapability.Service.Type.Name(c.service.type)
                if c.HasField("service")
                else "VOLUME_EXPANSION_" + csi_pb2.PluginCapability.VolumeExpansion.Type.Name(c.volume_expansion.type)
                for c in caps.capabilities
            ]
            out.write(f"GetPluginCapabilities: {', '.join(names)}\n")
            probe = identity.Probe(csi_pb2.ProbeRequest(), timeout=10)
            out.write(f"Probe: ready={probe.ready.value}\n")
        if plugin.http is not None:
            url = f"http://127.0.0.1:{plugin.http.port}/metrics"
            body = urllib.request.urlopen(url, timeout=10).read().decode()
            calls = [line for line in body.splitlines() if line.startswith("rds_csi_csi_operations_total{")]
            out.write(f"metrics ({url}):\n" + "".join(f"  {line}\n" for line in calls))
        out.write("demo finished: OK\n")
        return 0
    finally:
        plugin.stop()
        shutil.rmtree(workdir, ignore_errors=True)
