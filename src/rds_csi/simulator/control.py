"""The control endpoint: plain HTTP on its own loopback port, no authentication (it never leaves loopback).

- ``GET /sim/faults``: the active fault plan, with per-rule counters;
- ``PUT /sim/faults`` (or ``POST``): replace the plan (``{"profile": ..., "rules": [...], "seed": ...}``);
- ``POST /sim/faults/rules``: append one rule; ``DELETE /sim/faults``: drop every rule, keep the profile;
- ``GET /sim/state``: the model as the REST API shows it (disks, files) plus the pool's free bytes;
- ``GET /sim/commands``: the commands received over SSH and REST, oldest first (``transport``, ``menu``, ``op``,
  ``command``, ``fault``); ``DELETE /sim/commands`` forgets them.
"""

from __future__ import annotations

from typing import Any

from rds_csi.core.errors import InvalidArgument
from rds_csi.simulator.engine import CommandLog
from rds_csi.simulator.faults import FaultInjector, FaultPlan, FaultRule
from rds_csi.simulator.format import api_value
from rds_csi.simulator.http import HttpFrontEnd, JsonHandler, TrackedHTTPServer
from rds_csi.simulator.model import Model


class ControlHandler(JsonHandler):
    faults: FaultInjector
    model: Model
    commands: CommandLog

    def do_GET(self) -> None:
        if self.path == "/sim/faults":
            self.send_json(200, self.faults.snapshot())
        elif self.path == "/sim/state":
            self.send_json(200, self._state())
        elif self.path == "/sim/commands":
            self.send_json(200, [entry.to_json() for entry in self.commands.entries()])
        else:
            self.send_json(404, {"error": 404, "message": "Not Found"})

    def do_PUT(self) -> None:
        self._change()

    def do_POST(self) -> None:
        self._change()

    def do_DELETE(self) -> None:
        if self.path == "/sim/faults":
            self.faults.clear_rules()
            self.send_json(200, self.faults.snapshot())
        elif self.path == "/sim/commands":
            self.commands.clear()
            self.send_json(200, [])
        else:
            self.send_json(404, {"error": 404, "message": "Not Found"})

    def _change(self) -> None:
        try:
            body = self.read_json()
            if self.path == "/sim/faults":
                self.faults.apply(FaultPlan.from_json(body))
            elif self.path == "/sim/faults/rules" and self.command == "POST" and isinstance(body, dict):
                self.faults.add_rule(FaultRule.from_json(body))
            else:
                self.send_json(404, {"error": 404, "message": "Not Found"})
                return
        except (ValueError, InvalidArgument) as exc:
            self.send_json(400, {"error": 400, "message": "Bad Request", "detail": str(exc)})
            return
        self.send_json(200, self.faults.snapshot())

    def _state(self) -> dict[str, Any]:
        return {
            "free": str(self.model.free),
            "disks": [{k: api_value(v) for k, v in r.items()} for r in self.model.disk_records()],
            "files": [{k: api_value(v) for k, v in r.items()} for r in self.model.file_records()],
        }


def make_control_server(
    faults: FaultInjector, model: Model, commands: CommandLog, *, host: str, port: int
) -> HttpFrontEnd:
    bound = {"faults": faults, "model": model, "commands": commands}
    handler = type("BoundControlHandler", (ControlHandler,), bound)
    return HttpFrontEnd(TrackedHTTPServer(host, port, handler, None))
