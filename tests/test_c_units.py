"""The plain C libraries' unit tests (tests/c), built and run plain and under ASan+UBSan (with LeakSanitizer)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CDIR = Path(__file__).resolve().parent / "c"
UNITS = sorted(p.stem for p in CDIR.glob("test_*.c"))
RESULT = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)


@pytest.fixture(scope="module", params=["plain", "sanitizers"])
def build(request: pytest.FixtureRequest) -> tuple[str, Path]:
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("make and a C compiler are needed (apt-get install build-essential)")
    args = ["make", "-s", "-C", str(CDIR), "build", f"-j{os.cpu_count() or 2}"]
    if request.param == "sanitizers":
        args.append("SAN=1")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"C unit tests did not build ({request.param}):\n{proc.stdout}\n{proc.stderr}"
    return request.param, CDIR / ("bin-san" if request.param == "sanitizers" else "bin")


@pytest.mark.parametrize("unit", UNITS)
def test_c_unit(build: tuple[str, Path], unit: str) -> None:
    variant, bindir = build
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    proc = subprocess.run([str(bindir / unit)], capture_output=True, text=True, timeout=300, cwd=CDIR, env=env)
    out = proc.stdout + proc.stderr
    m = RESULT.search(proc.stdout)
    assert m is not None, f"{unit} ({variant}) printed no summary:\n{out[-4000:]}"
    assert proc.returncode == 0 and m.group(2) == "0", f"{unit} ({variant}) failed:\n{out[-4000:]}"
    assert int(m.group(1)) > 0
