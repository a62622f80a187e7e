"""The example features, run by Behave against Kamailio: started here as an ordinary process on a free port
from the config in the repo and passed to behave as -D target=HOST:PORT -D sut=kamailio."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("kamailio") is None and not Path("/usr/sbin/kamailio").exists(),
                    reason="kamailio is not installed (apt-get install kamailio)")
def test_features_pass_against_kamailio() -> None:
    from pysiptest.sut import Kamailio

    behave = Path(sys.executable).with_name("behave")
    with Kamailio() as k:
        proc = subprocess.run(
            [str(behave), "--no-capture", "-D", f"target={k.target}", "-D", "sut=kamailio", "features/"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
    assert proc.returncode == 0, f"behave against Kamailio at {k.target} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "0 failed" in proc.stdout and " passed" in proc.stdout
