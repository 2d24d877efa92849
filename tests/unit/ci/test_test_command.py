"""The test command (scripts/test, which CI runs): every pass runs even after one failed, and the command fails
at the end naming each pass that did."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PASSES = REPO / "scripts" / "lib" / "passes.sh"


def run_passes(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``body`` after sourcing the pass runner, under the test command's own shell options."""
    script = tmp_path / "passes-under-test"
    script.write_text(f"set -euo pipefail\nsource {PASSES}\n{body}\n")
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60, check=False)


def test_a_failing_pass_ends_only_itself_and_the_command_fails_naming_it(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    result = run_passes(
        f"""
        first() {{ echo first >> {ran}; }}
        second() {{ echo second-start >> {ran}; false; echo second-after-failure >> {ran}; }}
        third() {{ echo third >> {ran}; exit 3; }}
        fourth() {{ echo fourth >> {ran}; }}
        run_pass "pass one" first
        run_pass "pass two" second
        run_pass "pass three" third
        run_pass "pass four" fourth
        finish_passes
        echo "not reached" >> {ran}
        """,
        tmp_path,
    )
    assert result.returncode == 1
    # A failing command ends its own pass (errexit holds inside it), and every later pass still runs.
    assert ran.read_text().split() == ["first", "second-start", "third", "fourth"]
    assert "== FAILED: pass two (exit status 1)" in result.stdout
    assert "== FAILED: pass three (exit status 3)" in result.stdout
    assert result.stdout.rstrip().endswith("== 2 pass(es) failed:\n   - pass two\n   - pass three")


def test_all_passes_green_means_success(tmp_path: Path) -> None:
    result = run_passes('run_pass "lint" true\nrun_pass "tests" true\nfinish_passes', tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["== lint", "== tests", "== every pass succeeded"]


def _logical_lines(script: str) -> list[str]:
    return script.replace("\\\n", " ").splitlines()


def test_every_check_in_the_test_command_is_a_pass_and_the_command_ends_with_the_report() -> None:
    script = (REPO / "scripts" / "test").read_text()
    lines = [line.strip() for line in _logical_lines(script) if line.strip() and not line.lstrip().startswith("#")]
    checks = [line for line in lines if any(tool in line for tool in ("pytest", "/ruff", "/mypy", "/lint-imports"))]
    assert len(checks) == 6, checks  # four linters and two test passes
    assert all(line.startswith("run_pass ") for line in checks), checks
    assert lines[-1] == "finish_passes"


def test_ci_runs_exactly_the_test_command() -> None:
    assert "exec ./scripts/test\n" in (REPO / ".ci" / "run").read_text()
