"""Build the libFuzzer target for the SIP message core (fuzz/) and run it for 60 seconds, seeded from the
shared corpus. Skips when clang (with libFuzzer) is not installed; CI installs it (deps/apt.txt)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sipcorpus import corpus_dir

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
SECONDS = int(os.environ.get("PYSIPTEST_FUZZ_SECONDS", "60"))


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang is not installed (apt-get install clang)")
def test_fuzz_sipmsg_finds_nothing_in_60_seconds(tmp_path: Path) -> None:
    build = subprocess.run(["make", "-C", str(FUZZ), "fuzz_sipmsg"], capture_output=True, text=True)
    if build.returncode != 0 and "fuzzer" in build.stderr and "cannot find" in build.stderr:
        pytest.skip("clang has no libFuzzer runtime (apt-get install libclang-rt-14-dev)")
    assert build.returncode == 0, build.stderr[-2000:]
    seeds = tmp_path / "seed"
    root = corpus_dir()
    if root is not None:
        subprocess.run([sys.executable, str(FUZZ / "seed.py"), str(root), str(seeds)], check=True,
                       capture_output=True)
    else:
        seeds.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run(
        [str(FUZZ / "fuzz_sipmsg"), f"-max_total_time={SECONDS}", "-timeout=10", "-rss_limit_mb=2048",
         f"-dict={FUZZ / 'sip.dict'}", f"-artifact_prefix={tmp_path}/", str(work), str(seeds)],
        capture_output=True, text=True, timeout=SECONDS + 120)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-", "timeout-", "oom-")))
    assert run.returncode == 0 and not crashes, f"fuzzer found {crashes}:\n{run.stderr[-4000:]}"
    assert "Done" in run.stderr
