"""Classification of RouterOS error texts (console and REST) into domain exceptions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rds_csi.core.errors import (
    AlreadyExists,
    Internal,
    InvalidArgument,
    NotFound,
    RdsCsiError,
    ResourceExhausted,
    Unavailable,
)
from rds_csi.routeros.failures import classify_failure, classify_rest_error, find_failure
from rds_csi.routeros.transport import CredentialsRefused

TRANSCRIPTS = Path(__file__).parent / "transcripts"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("failure: no such item", NotFound),
        ("no such item (4)", NotFound),
        ("failure: invalid internal item number", NotFound),
        ("failure: file not found", NotFound),
        ("failure: item with such name already exists", AlreadyExists),
        ("failure: already have disk with such slot", AlreadyExists),
        ("failure: file already exists", AlreadyExists),
        ("failure: not enough space", ResourceExhausted),
        ("failure: not enough free space on storage-pool", ResourceExhausted),
        ("failure: no space left on device", ResourceExhausted),
        ("failure: disk is busy", Unavailable),
        ("failure: disk is in use", Unavailable),
        (
            "action timed out - try again, if error continues contact MikroTik support and send a supout file (13)",
            Unavailable,
        ),
        ("failure: timeout", Unavailable),
        ("failure: connection lost", Unavailable),
        ("syntax error (line 1 column 5)", InvalidArgument),
        ("expected end of command (line 1 column 20)", InvalidArgument),
        ("bad command name frobnicate (line 1 column 7)", InvalidArgument),
        ("no such command or directory (frob)", InvalidArgument),
        ("input does not match any value of interface", InvalidArgument),
        ("failure: invalid value for argument file-size", InvalidArgument),
        ("value of nvme-tcp-server-port out of range (1..65535)", InvalidArgument),
        ("failure: could not allocate backing file", Internal),
        ("", Internal),
    ],
)
def test_classify_failure_maps_routeros_texts(text: str, expected: type[RdsCsiError]) -> None:
    error = classify_failure(text)
    assert type(error) is expected
    assert text.removeprefix("failure: ")[:40] in error.message


def test_classify_failure_syntax_rules_win_over_item_words() -> None:
    assert isinstance(classify_failure("expected end of command: no such item"), InvalidArgument)


def test_classify_failure_unexpected_is_not_an_expected_syntax_error() -> None:
    assert isinstance(classify_failure("failure: unexpected internal error"), Internal)


def test_classify_failure_retryability_follows_the_category() -> None:
    assert classify_failure("failure: disk is busy").retryable
    assert not classify_failure("failure: no such item").retryable


def test_classify_failure_collapses_whitespace_and_bounds_length() -> None:
    error = classify_failure("failure:\n  something\tweird " + "x" * 5000)
    assert "\n" not in error.message
    assert len(error.message) < 600


def test_find_failure_returns_the_error_line() -> None:
    assert find_failure("\nfailure: no such item\n") == "failure: no such item"
    assert find_failure("syntax error (line 1 column 5)") == "syntax error (line 1 column 5)"


@pytest.mark.parametrize("name", sorted(p.name for p in TRANSCRIPTS.glob("*.txt")))
def test_find_failure_never_matches_successful_output(name: str) -> None:
    assert find_failure((TRANSCRIPTS / name).read_text()) is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": 400, "message": "Bad Request", "detail": "failure: not enough space"}, ResourceExhausted),
        (400, {"error": 400, "message": "Bad Request", "detail": "failure: no such item"}, NotFound),
        (400, {"detail": "input does not match any value of certificate", "error": 400}, InvalidArgument),
        (400, {"error": 400, "message": "Bad Request"}, Internal),
        (404, {"error": 404, "message": "Not Found"}, NotFound),
        (401, {"error": 401, "message": "Unauthorized"}, CredentialsRefused),
        (403, {"error": 403, "message": "Forbidden"}, CredentialsRefused),
        (418, {"error": 418, "message": "I'm a teapot"}, Internal),
        (503, {"error": 503, "message": "Service Unavailable"}, Unavailable),
        (429, {}, Unavailable),
    ],
)
def test_classify_rest_error_uses_status_and_detail(
    status: int, body: dict[str, object], expected: type[RdsCsiError]
) -> None:
    assert type(classify_rest_error(status, json.dumps(body))) is expected


def test_classify_rest_error_non_json_body_keeps_text() -> None:
    error = classify_rest_error(502, "<html>bad gateway</html>")
    assert isinstance(error, Unavailable)
    assert "bad gateway" in error.message
