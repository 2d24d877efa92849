"""What the production plugin loads: the simulator only when the embedded simulator is chosen."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
import rds_csi.cli, rds_csi.plugin.lifecycle, rds_csi.plugin.routeros_factory
loaded = sorted(name for name in sys.modules if name.startswith("rds_csi.simulator"))
print(",".join(loaded))
"""


def test_the_plugin_does_not_load_the_simulator_until_it_is_chosen() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""
