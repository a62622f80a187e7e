"""The step library: every phrase in features/ is defined exactly once, and docs/steps.md is current."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_finds_no_undefined_or_ambiguous_steps() -> None:
    behave = Path(sys.executable).with_name("behave")
    proc = subprocess.run([str(behave), "--dry-run", "--no-summary", "--format", "plain", "features/"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "undefined" not in out.lower() and "ambiguous" not in out.lower(), out[-4000:]


def test_steps_md_is_generated_from_the_library() -> None:
    from pysiptest.bdd.docs import render

    current = (ROOT / "docs" / "steps.md").read_text()
    assert current == render(), "docs/steps.md is stale: run python -m pysiptest.bdd.docs > docs/steps.md"


def test_every_step_documents_an_example() -> None:
    from pysiptest.bdd.docs import _steps

    missing = [pattern for _, pattern, func in _steps() if "Example:" not in (func.__doc__ or "")]
    assert not missing, f"steps without an example in their docstring: {missing}"
