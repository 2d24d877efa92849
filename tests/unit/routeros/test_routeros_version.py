"""Which RouterOS releases the driver works with, from what /system resource prints."""

from __future__ import annotations

import pytest

from rds_csi.core.errors import FailedPrecondition
from rds_csi.routeros.models import SystemResource
from rds_csi.routeros.version import UnsupportedRouterOS, check_supported, version_numbers


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("7.21.2 (stable)", (7, 21, 2)),
        ("7.21 (stable)", (7, 21, 0)),
        ("7.22beta3 (testing)", (7, 22, 0)),
        ("7.21rc1 (testing)", (7, 21, 0)),
        ("6.49.10 (long-term)", (6, 49, 10)),
        ("unknown", None),
        ("", None),
    ],
)
def test_version_numbers_are_read_from_the_start_of_the_text(text: str, numbers: tuple[int, ...] | None) -> None:
    assert version_numbers(text) == numbers


@pytest.mark.parametrize("version", ["7.21 (stable)", "7.21.2 (stable)", "7.21beta2 (testing)", "7.22", "8.0", "x"])
def test_releases_from_the_minimum_on_or_unreadable_ones_are_accepted(version: str) -> None:
    check_supported(SystemResource(version=version))


@pytest.mark.parametrize("version", ["7.20.6 (stable)", "7.16 (stable)", "7.17rc1 (testing)", "6.49.10 (long-term)"])
def test_older_releases_are_refused_naming_release_board_minimum_and_property(version: str) -> None:
    with pytest.raises(UnsupportedRouterOS) as info:
        check_supported(SystemResource(version=version, board_name="RDS2216"))
    assert isinstance(info.value, FailedPrecondition)
    message = info.value.message
    assert f"RouterOS {version} on RDS2216" in message
    assert "7.21" in message and "nvme-tcp-server-nqn" in message and "upgrade" in message
