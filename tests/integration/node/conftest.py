"""The API server emulator and a real client pointed at it, shared with the Kubernetes API tests."""

from __future__ import annotations

from tests.integration.kube.conftest import api, emulator  # noqa: F401
