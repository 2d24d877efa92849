"""A faithful RouterOS (ROSE Data Server) stand-in: anyone can run the driver without hardware, and the
project's integration tests talk real SSH and real HTTPS to it.

Typical use::

    config = SimulatorConfig(state_dir=tmp, faults=FaultPlan(profile="zero"), users={"admin": "pw"})
    with Simulator(config) as sim:
        ...  # ssh to 127.0.0.1:sim.ssh_port, REST at sim.rest_url (trust sim.rest_certificate)

``run_forever(config)`` serves until SIGINT/SIGTERM and reloads ``faults_file`` on SIGHUP.
"""

from __future__ import annotations

from rds_csi.simulator.console import SystemInfo, execute, parse
from rds_csi.simulator.engine import CommandLog, LoggedCommand, Trickle
from rds_csi.simulator.faults import PROFILES, FaultInjector, FaultPlan, FaultRule
from rds_csi.simulator.format import FlagColumn, FlagStyle
from rds_csi.simulator.model import INITIAL_ALLOCATION, CopyFromAccepts, Model, Traffic
from rds_csi.simulator.server import Simulator, SimulatorConfig, run_forever

__all__ = [
    "INITIAL_ALLOCATION",
    "PROFILES",
    "CommandLog",
    "CopyFromAccepts",
    "FaultInjector",
    "FaultPlan",
    "FaultRule",
    "FlagColumn",
    "FlagStyle",
    "LoggedCommand",
    "Model",
    "Simulator",
    "SimulatorConfig",
    "SystemInfo",
    "Traffic",
    "Trickle",
    "execute",
    "parse",
    "run_forever",
]
