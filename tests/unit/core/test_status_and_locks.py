from __future__ import annotations

import threading

import grpc
import pytest

from rds_csi.core import errors
from rds_csi.csi.locks import KeyedLocks, LockedServicer, csi_method
from rds_csi.csi.status import STATUS_MESSAGE_LIMIT, bounded_message, status_for


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
        (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.OutOfRange("x"), grpc.StatusCode.OUT_OF_RANGE),
        (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.Aborted("x"), grpc.StatusCode.ABORTED),
        (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
        (errors.DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.Internal("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_each_domain_error_maps_to_its_status(exc: errors.RdsCsiError, code: grpc.StatusCode) -> None:
    assert status_for(exc) == (code, "x")


def test_subclass_of_domain_error_maps_like_its_parent() -> None:
    class SlotMissing(errors.NotFound):
        pass

    assert status_for(SlotMissing("gone"))[0] == grpc.StatusCode.NOT_FOUND


def test_a_refused_format_is_failed_precondition_with_its_message() -> None:
    code, message = status_for(errors.FormatRefused("/dev/nvme1n1", "signature", "it holds xfs (filesystem)"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert message == "formatting /dev/nvme1n1 was refused to protect data: it holds xfs (filesystem)"


def test_unexpected_exception_is_internal_with_its_type() -> None:
    code, message = status_for(KeyError("k"))
    assert code == grpc.StatusCode.INTERNAL
    assert "KeyError" in message


def test_second_holder_of_a_key_is_aborted_and_key_is_released_after() -> None:
    locks = KeyedLocks()
    with locks.hold("pvc-1", "CreateVolume"):
        with pytest.raises(errors.Aborted, match="CreateVolume"), locks.hold("pvc-1", "DeleteVolume"):
            pass
        with locks.hold("pvc-2", "DeleteVolume"):
            assert locks.busy_keys() == ["pvc-1", "pvc-2"]
    assert locks.busy_keys() == []
    with locks.hold("pvc-1", "DeleteVolume"):
        pass


class _Request:
    def __init__(self, volume_id: str) -> None:
        self.volume_id = volume_id


class _Servicer(LockedServicer):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    @csi_method(lock_on="volume_id")
    def Slow(self, request: _Request, context: object) -> str:
        self.entered.set()
        self.release.wait(5)
        return request.volume_id


def test_csi_method_aborts_concurrent_call_on_same_volume_only() -> None:
    servicer = _Servicer()
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(servicer.Slow(_Request("pvc-1"), None)))
    worker.start()
    assert servicer.entered.wait(5)
    with pytest.raises(errors.Aborted):
        servicer.Slow(_Request("pvc-1"), None)
    servicer.release.set()
    assert servicer.Slow(_Request("pvc-2"), None) == "pvc-2"
    worker.join(5)
    assert results == ["pvc-1"]
    assert servicer.locks.busy_keys() == []


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("pvc-1", "'pvc-1'"),
        ("a\nb", "'a\\nb'"),
        ("x" * 80, repr("x" * 80)),  # fits: shown whole
        ("x" * 81, "'" + "x" * 76 + "...' (81 characters)"),
        ("x" * 3_000_000, "'" + "x" * 76 + "...' (3000000 characters)"),
        (b"y" * 200, "b'" + "y" * 75 + "..."),
    ],
)
def test_quote_input_shows_an_escaped_short_prefix_and_how_long_the_value_was(value: object, shown: str) -> None:
    assert errors.quote_input(value) == shown


@pytest.mark.parametrize("text", ["x" * 100_000, "é" * 100_000, "🙂" * 100_000, "a" + "é" * 2000])
def test_every_status_message_is_cut_to_its_byte_limit_on_a_character_boundary(text: str) -> None:
    for exc in (errors.InvalidArgument(text), errors.Internal(text), KeyError(text)):
        _, message = status_for(exc)
        assert len(message.encode()) <= STATUS_MESSAGE_LIMIT
        assert message.endswith("...")
        message.encode("utf-8", "strict")  # no half a character


def test_a_status_message_that_fits_is_left_alone() -> None:
    fits = "é" * (STATUS_MESSAGE_LIMIT // 2)
    assert bounded_message(fits) == fits
    assert status_for(errors.NotFound(fits)) == (grpc.StatusCode.NOT_FOUND, fits)
