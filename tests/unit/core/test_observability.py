from __future__ import annotations

import io
import json
import logging

import pytest

from rds_csi.observability.health import HealthRegistry
from rds_csi.observability.logging import FIELD_LIMIT, REQUEST_ID, configure_logging, log_event


def _capture(log_format: str) -> tuple[io.StringIO, logging.Logger]:
    stream = io.StringIO()
    configure_logging(log_format, "debug", stream)
    return stream, logging.getLogger("rds_csi.test")


def test_text_log_is_one_key_value_line_with_request_id() -> None:
    stream, log = _capture("text")
    token = REQUEST_ID.set("abc123")
    try:
        log_event(log, "volume.create", volume_id="pvc-1", size=1073741824, note="two words")
    finally:
        REQUEST_ID.reset(token)
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert "level=info" in line
    assert "event=volume.create" in line
    assert "request_id=abc123" in line
    assert "volume_id=pvc-1 size=1073741824" in line
    assert 'note="two words"' in line


def test_json_log_parses_and_carries_fields() -> None:
    stream, log = _capture("json")
    log_event(log, "csi.call", logging.WARNING, method="Probe", code="UNAVAILABLE")
    record = json.loads(stream.getvalue())
    assert record["event"] == "csi.call"
    assert record["level"] == "warning"
    assert record["method"] == "Probe"
    assert "request_id" not in record


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_every_logged_field_is_cut_to_its_limit_whoever_logs_it(log_format: str) -> None:
    stream, log = _capture(log_format)
    log_event(log, "csi.call", logging.WARNING, name="n" * 3_000_000, args=("v" * 5000, "node-1"), took_ms=1.5)
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert len(line) < 3 * FIELD_LIMIT
    assert "(3000000 characters)" in line
    assert "1.5" in line  # numbers are never touched
    short = io.StringIO()
    configure_logging(log_format, "debug", short)
    log_event(log, "volume.create", volume_id="pvc-1", nodes=("a", "b"))
    assert "pvc-1" in short.getvalue() and "characters" not in short.getvalue()


def test_disabled_level_is_not_formatted() -> None:
    stream, log = _capture("text")
    logging.getLogger("rds_csi").setLevel(logging.WARNING)
    log_event(log, "noisy", logging.DEBUG)
    assert stream.getvalue() == ""


def test_health_registry_reports_every_failing_check() -> None:
    health = HealthRegistry()
    health.register("ok", lambda: None)
    assert health.run().ready

    def routeros() -> None:
        raise ConnectionError("connection refused")

    health.register("routeros", routeros)
    report = health.run()
    assert not report.ready
    assert report.failures == (("routeros", "connection refused"),)
    assert report.describe() == "routeros: connection refused"


def test_health_check_names_are_unique() -> None:
    health = HealthRegistry()
    health.register("x", lambda: None)
    with pytest.raises(ValueError, match="twice"):
        health.register("x", lambda: None)
