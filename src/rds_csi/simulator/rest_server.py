"""The RouterOS REST API front end (``/rest/...``), backed by the same model as the SSH console.

Semantics reproduced (RouterOS 7): every JSON value is a string; ``GET /rest/disk`` lists, with query
parameters as equality filters and ``.proplist``; ``GET|PATCH|DELETE /rest/disk/<*id or slot>`` reads,
sets, removes (``204``); ``PUT /rest/disk`` adds and returns the new object (``201``); ``POST
/rest/disk/<command>`` runs a console command (``print`` with ``.query``/``.proplist``, ``add`` returning
``{"ret": "*id"}``, ``set``/``remove`` with ``.id`` or ``numbers``, ``monitor-traffic`` with ``numbers`` and
``once``). Failures are ``400 {"error": 400, "message": "Bad Request", "detail": "failure: ..."}``, unknown
ids ``404 {"error": 404, "message": "Not Found"}``, bad credentials ``401``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import json
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rds_csi.core.errors import InvalidArgument, RdsCsiError
from rds_csi.simulator.console import Cond, ItemRefs, TokKind, matches, render_error, resource_pairs, traffic_pairs
from rds_csi.simulator.engine import Engine
from rds_csi.simulator.faults import GARBAGE
from rds_csi.simulator.format import DISK_MENU, FILE_MENU, Menu, api_value
from rds_csi.simulator.http import HttpFrontEnd, JsonHandler, TrackedHTTPServer

_MENUS: Mapping[str, Menu] = {"disk": DISK_MENU, "file": FILE_MENU}
_COMMANDS: Mapping[str, frozenset[str]] = {
    "disk": frozenset({"print", "add", "set", "remove", "monitor-traffic"}),
    "file": frozenset({"print", "remove"}),
}
_OP_BY_METHOD = {"GET": "print", "PUT": "add", "PATCH": "set", "DELETE": "remove"}
_FAULT_MENUS = frozenset({"disk", "file", "system"})


class _HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _bad_request(detail: str) -> _HttpError:
    return _HttpError(400, {"error": 400, "message": "Bad Request", "detail": detail})


_NOT_FOUND = _HttpError(404, {"error": 404, "message": "Not Found"})


def _strings(body: Any) -> dict[str, str]:
    """A JSON object as RouterOS arguments: strings kept, booleans as yes/no, numbers as text."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _bad_request("expected JSON object")
    out = {}
    for key, value in body.items():
        if isinstance(value, bool):
            out[key] = "yes" if value else "no"
        elif isinstance(value, str | int | float):
            out[key] = str(value)
        else:
            raise _bad_request(f"invalid value for argument {key}")
    return out


def _render(record: Mapping[str, Any], proplist: Sequence[str] | None) -> dict[str, str]:
    return {k: api_value(v) for k, v in record.items() if proplist is None or k in proplist}


def _query_matches(words: Sequence[str], record: Mapping[str, Any], menu: Menu) -> bool:
    """RouterOS API query words: ``k=v``, ``k<v``, ``k>v``, ``k`` (has), ``-k`` (has not), ``#|`` ``#&`` ``#!``."""
    stack: list[bool] = []
    for word in words:
        if word in ("#|", "#&"):
            if len(stack) < 2:
                raise _bad_request(f"bad query word {word}")
            right, left = stack.pop(), stack.pop()
            stack.append(left or right if word == "#|" else left and right)
        elif word == "#!":
            if not stack:
                raise _bad_request("bad query word #!")
            stack.append(not stack.pop())
        elif word.startswith("-"):
            stack.append(word[1:] not in record)
        else:
            for symbol, op in (("=", TokKind.EQ), ("<", TokKind.LT), (">", TokKind.GT)):
                if symbol in word:
                    name, value = word.split(symbol, 1)
                    stack.append(matches(Cond(name, op, value), record, menu))
                    break
            else:
                stack.append(word in record)
    return all(stack)


class RestHandler(JsonHandler):
    engine: Engine
    users: Mapping[str, str | None]
    _short_copy = False  # the fault decided for the request being served

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = self.users.get(user)
        return bool(expected) and hmac.compare_digest(str(expected).encode(), password.encode())

    def _dispatch(self, method: str) -> None:
        if not self._authorized():
            body = {"error": 401, "message": "Unauthorized"}
            self.send_json(401, body, {"WWW-Authenticate": 'Basic realm="RouterOS"'})
            return
        parts = urlsplit(self.path)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            body = self.read_json()
        except (ValueError, UnicodeDecodeError):
            self.send_json(400, {"error": 400, "message": "Bad Request", "detail": "JSON parse error"})
            return
        op = _classify(method, segments)
        logged = f"{method} {parts.path}" + (f" {json.dumps(body, sort_keys=True)}" if body is not None else "")
        menu = segments[1] if len(segments) > 1 and segments[1] in _FAULT_MENUS else None
        decision = self.engine.decide("rest", menu, op, logged)
        outcome = self.engine.misbehave(decision, self.client_gone)
        if outcome is not None:
            if outcome.drop:
                self.drop()
            elif outcome.garbage:
                data = GARBAGE.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif outcome.ignored:
                self.send_json(204, None)
            else:
                self.send_json(400, {"error": 400, "message": "Bad Request", "detail": outcome.output.strip()})
            return
        self._short_copy = decision.short_copy
        try:
            status, reply = self._route(method, segments, query, body)
        except _HttpError as exc:
            status, reply = exc.status, exc.body
        if decision.loses_reply:
            self.drop()
        elif decision.trickle_interval is not None:
            self._send_trickled(status, reply, decision.trickle_interval)
        else:
            self.send_json(status, reply)

    def _send_trickled(self, status: int, reply: Any, interval: float) -> None:
        """The whole response, status line and headers included, one byte every ``interval`` seconds."""
        wire, buffer = self.wfile, io.BytesIO()
        self.wfile = buffer
        try:
            self.send_json(status, reply, {"Connection": "close"})
        finally:
            self.wfile = wire
        self.close_connection = True

        def send(chunk: bytes) -> None:
            wire.write(chunk)
            wire.flush()

        self.engine.trickle("rest", buffer.getvalue(), interval, send, self.client_gone)

    def _route(self, method: str, segments: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not segments or segments[0] != "rest":
            raise _NOT_FOUND
        path = segments[1:]
        if path[:2] == ["system", "resource"]:
            return self._resource(method, path[2:])
        if not path or path[0] not in _MENUS:
            raise _bad_request("no such command prefix")
        menu_name, rest = path[0], path[1:]
        try:
            if not rest:
                if method == "GET":
                    return 200, self._list(menu_name, query)
                if method == "PUT" and menu_name == "disk":
                    return 201, self._add(_strings(body))
                raise _bad_request("no such command or directory")
            if len(rest) == 1 and method in ("GET", "PATCH", "DELETE"):
                return self._item(method, menu_name, rest[0], body)
            if len(rest) == 1 and method == "POST":
                if rest[0] not in _COMMANDS[menu_name]:
                    raise _bad_request("no such command")
                return 200, self._command(menu_name, rest[0], body)
        except RdsCsiError as exc:
            raise _bad_request(render_error(exc)) from exc
        raise _bad_request("no such command or directory")

    def _records(self, menu_name: str) -> list[dict[str, Any]]:
        model = self.engine.model
        return model.disk_records() if menu_name == "disk" else model.file_records()

    def _list(self, menu_name: str, query: dict[str, str]) -> list[dict[str, str]]:
        proplist_text = query.pop(".proplist", None)
        proplist = None if proplist_text is None else proplist_text.split(",")
        menu = _MENUS[menu_name]
        return [
            _render(r, proplist)
            for r in self._records(menu_name)
            if all(matches(Cond(k, TokKind.EQ, v), r, menu) for k, v in query.items())
        ]

    def _find(self, menu_name: str, item: str) -> dict[str, Any]:
        key = "slot" if menu_name == "disk" else "name"
        record = next((r for r in self._records(menu_name) if item in (r[".id"], r[key])), None)
        if record is None:
            raise _NOT_FOUND
        return record

    def _add(self, params: dict[str, str]) -> dict[str, str]:
        return _render(self.engine.model.add_disk(params, short_copy=self._short_copy), None)

    def _item(self, method: str, menu_name: str, item: str, body: Any) -> tuple[int, Any]:
        record = self._find(menu_name, item)
        item_id = int(record[".id"][1:], 16)
        model = self.engine.model
        if method == "GET":
            return 200, _render(record, None)
        if method == "PATCH":
            if menu_name != "disk":
                raise _bad_request("no such command or directory")
            params = _strings(body)
            params.pop(".id", None)
            return 200, _render(model.set_disk(item_id, params), None)
        if menu_name == "disk":
            model.remove_disk(item_id)
        else:
            model.remove_file(item_id)
        return 204, None

    def _targets(self, menu_name: str, params: dict[str, str]) -> list[int]:
        refs = params.pop(".id", None) or params.pop("numbers", None)
        if not refs:
            raise InvalidArgument("missing value for argument numbers")
        items = ItemRefs(tuple(refs.split(",")))
        return [int(i[1:], 16) for i in self.engine.interpreter.resolve((menu_name,), items)]

    def _command(self, menu_name: str, command: str, body: Any) -> Any:
        model = self.engine.model
        if command == "print":
            if body is not None and not isinstance(body, dict):
                raise _bad_request("expected JSON object")
            request = body or {}
            words = request.get(".query", [])
            proplist = request.get(".proplist")
            if isinstance(proplist, str):
                proplist = proplist.split(",")
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise _bad_request("invalid value for argument .query")
            menu = _MENUS[menu_name]
            return [_render(r, proplist) for r in self._records(menu_name) if _query_matches(words, r, menu)]
        params = _strings(body)
        if command == "add":
            return {"ret": model.add_disk(params, short_copy=self._short_copy)[".id"]}
        if command == "monitor-traffic":
            if "once" not in params:
                raise InvalidArgument("monitor-traffic needs once in a non-interactive session")
            params.pop("once")
            by_id = {r[".id"]: r for r in model.disk_records()}
            replies = []
            for disk_id in self._targets(menu_name, params):
                pairs = traffic_pairs(model, disk_id, by_id[f"*{disk_id:X}"]["slot"])
                replies.append({".section": "0", **{k: str(v) for k, v in pairs}})
            return replies
        targets = self._targets(menu_name, params)
        for target in targets:
            if command == "set":
                model.set_disk(target, params)
            elif menu_name == "disk":
                model.remove_disk(target)
            else:
                model.remove_file(target)
        return []

    def _resource(self, method: str, rest: list[str]) -> tuple[int, Any]:
        engine = self.engine
        record = {k: str(v) for k, v in resource_pairs(engine.interpreter.info, engine.interpreter.uptime())}
        if method == "GET" and not rest:
            return 200, record
        if method == "POST" and rest == ["print"]:
            return 200, [record]
        raise _bad_request("no such command or directory")


def _classify(method: str, segments: list[str]) -> str:
    if method == "POST" and segments:
        command = segments[-1]
        return "monitor" if command == "monitor-traffic" else command if command in _OP_BY_METHOD.values() else "print"
    return _OP_BY_METHOD.get(method, "print")


def make_rest_server(
    engine: Engine, *, host: str, port: int, users: Mapping[str, str | None], tls: ssl.SSLContext | None
) -> HttpFrontEnd:
    handler = type("BoundRestHandler", (RestHandler,), {"engine": engine, "users": dict(users)})
    return HttpFrontEnd(TrackedHTTPServer(host, port, handler, tls))
