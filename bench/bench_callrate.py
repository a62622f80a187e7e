"""Highest call rate with no failed call and no retransmission, per transport, SIPp and pysiptest side by side.

Call flow: INVITE, 100, 180, 200, ACK, BYE, 200 with zero pause.  Pairs (caller -> answerer):

    sipp-sipp     SIPp -sn uac  -> SIPp -sn uas
    sipp-pysip    SIPp -sn uac  -> pysiptest phone --fast
    pysip-pysip   pysiptest load -> pysiptest phone --fast

Every side is its own process on free loopback ports, stopped by PID.  The search is bounded: the rate doubles
from --start (each step a fixed length of calls) until a step fails (a failed call or a retransmission) or
--ceiling passes (a step fails too when the caller achieved less than 90% of the rate: SIPp keeps going
below the asked rate without a failed call); then it bisects between the last good and the first bad rate until they are within
--precision (default 10%), under an overall time cap shared out between the pairs.  A '+' marks a rate that is
only a lower bound (the cap or the ceiling stopped the search before a failure).  CPU seconds per 1,000 calls:
the answering side from /proc/PID/stat (utime+stime) before and after the best step; the calling side from
wait4() rusage of its process (whole process, start-up included; for pysiptest load the in-process figure of
the run alone is shown in brackets).  TLS is pysiptest only (Debian's SIPp has no TLS).

--fixed RATE:CALLS runs every pair once at that rate instead of searching, to compare CPU per call.

    .venv/bin/python bench/bench_callrate.py [--cap SECONDS] [--transports udp,tcp,tls] [--step-seconds S]
        [--pairs sipp-sipp,sipp-pysip,pysip-pysip] [--start CPS] [--ceiling CPS] [--precision F]
        [--fixed RATE:CALLS]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pysiptest.sut._proc import ManagedProcess, free_port, wait_until  # noqa: E402

PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
ACHIEVED_MIN = 0.9  # a step passes only when the calls went at 90% of the asked rate or more
HOST = "127.0.0.1"


def proc_cpu(pid: int) -> float:
    """utime+stime of a live process in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def run_child(argv: list[str], log: Path, timeout: float) -> tuple[int, float]:
    """Run a caller to its end; (exit status, CPU seconds from wait4)."""
    with open(log, "wb") as fh:
        p = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=log.parent,
                             start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                return p.returncode, ru.ru_utime + ru.ru_stime
            if time.monotonic() > deadline:
                p.kill()  # this PID only
                pid, status, ru = os.wait4(p.pid, 0)
                p.returncode = -9
                return -9, ru.ru_utime + ru.ru_stime
            time.sleep(0.02)


@dataclass
class Step:
    rate: int
    calls: int
    ok: bool
    why: str
    caller_cpu: float
    caller_run_cpu: Optional[float]
    callee_cpu: float
    achieved: float


class Answerer:
    """The answering side, one process for a whole rate search."""

    def __init__(self, kind: str, transport: str, work: Path) -> None:
        self.port = free_port(HOST, udp=transport == "udp", tcp=transport != "udp")
        log = work / f"answer-{kind}-{transport}.log"
        if kind == "sipp":
            argv = ["sipp", "-sn", "uas", "-i", HOST, "-p", str(self.port), "-nostdin", "-t",
                    "u1" if transport == "udp" else "t1", "-max_socket", "4096"]
        else:
            argv = [PY, "-m", "pysiptest", "phone", "--fast", "--listen", f"{HOST}:{self.port}",
                    "--transport", transport]
            if transport == "tls":
                argv += ["--cert", str(work / "cert.pem"), "--key", str(work / "key.pem"), "--no-verify"]
        self.proc = ManagedProcess(argv, log, cwd=work)
        if kind == "sipp":
            time.sleep(0.5)
        else:
            wait_until(lambda: "listening" in log.read_text(errors="replace"), 15)

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.stop()


def sipp_caller(transport: str, port: int, rate: int, calls: int, work: Path) -> tuple[bool, str, float, float]:
    stat = work / f"uac-{transport}-{rate}.csv"
    argv = ["sipp", "-sn", "uac", "-i", HOST, "-p", str(free_port(HOST, udp=transport == "udp", tcp=True)),
            "-m", str(calls), "-r", str(rate), "-nostdin", "-t", "u1" if transport == "udp" else "t1",
            "-timeout", "60s", "-timeout_error", "-trace_stat", "-stf", str(stat), "-max_socket", "4096",
            f"{HOST}:{port}"]
    t0 = time.monotonic()
    rc, cpu = run_child(argv, work / f"uac-{transport}-{rate}.log", 90)
    dt = time.monotonic() - t0
    try:
        row = list(csv.DictReader(open(stat, newline=""), delimiter=";"))[-1]
        ok_calls, failed = int(row["SuccessfulCall(C)"]), int(row["FailedCall(C)"])
        rtx = int(row["Retransmissions(C)"])
    except (OSError, IndexError, KeyError, ValueError):
        return False, f"no statistics (exit {rc})", cpu, 0.0
    why = "" if rc == 0 and failed == 0 and rtx == 0 and ok_calls == calls else \
        f"exit {rc}, {failed} failed, {rtx} retransmissions"
    return why == "", why, cpu, calls / dt


def pysip_caller(transport: str, port: int, rate: int, calls: int, work: Path) -> tuple[bool, str, float, float,
                                                                                    float]:
    out = work / f"load-{transport}-{rate}.json"
    argv = [PY, "-m", "pysiptest", "load", "--target", f"{HOST}:{port}", "--rate", str(rate), "--calls",
            str(calls), "--transport", transport, "--json", str(out), "--quiet"]
    if transport == "tls":
        argv += ["--cert", str(work / "cert.pem"), "--key", str(work / "key.pem"), "--no-verify"]
    rc, cpu = run_child(argv, work / f"load-{transport}-{rate}.log", 90)
    try:
        d = json.loads(out.read_text())
    except (OSError, ValueError):
        return False, f"no result (exit {rc})", cpu, 0.0, 0.0
    ok = d["completed"] == calls and d["failed"] == 0 and d["retransmissions"] == 0
    why = "" if ok else f"{d['failed']} failed {d['failures']}, {d['retransmissions']} retransmissions"
    return ok, why, cpu, d["call_rate"], d["cpu_s"]


def run_step(caller: str, ans: Answerer, transport: str, rate: int, calls: int, work: Path, pair: str) -> Step:
    """One rate step: calls at rate from a fresh caller process against the running answerer."""
    c0 = ans.cpu()
    run_cpu = None
    if caller == "sipp":
        ok, why, cpu, achieved = sipp_caller(transport, ans.port, rate, calls, work)
    else:
        ok, why, cpu, achieved, run_cpu = pysip_caller(transport, ans.port, rate, calls, work)
    time.sleep(0.3)  # let the answerer finish its last BYE
    if ok and achieved < ACHIEVED_MIN * rate:  # a caller that cannot keep the rate has found its limit
        ok, why = False, f"achieved only {achieved:.0f}/s"
    st = Step(rate, calls, ok, why, cpu, run_cpu, ans.cpu() - c0, achieved)
    print(f"  {pair:12} {transport}: {rate:6} cps x {calls:6} calls: "
          f"{'ok' if ok else 'FAIL ' + why}  (achieved {achieved:.0f}/s, answerer "
          f"{st.callee_cpu / calls * 1000:.3f} CPU s/1k, load average {os.getloadavg()[0]:.2f})", flush=True)
    return st


def next_rate(steps: list[Step], start: int, ceiling: int, precision: float) -> Optional[int]:
    """The next rate to try: doubling until the first failure, then bisection; None when done."""
    good = [s.rate for s in steps if s.ok]
    bad = [s.rate for s in steps if not s.ok]
    lo = max(good) if good else 0
    hi = min((r for r in bad if r > lo), default=None)
    if hi is None:
        if not steps:
            return start
        if lo == 0:  # the first step failed: go down
            r = min(bad) // 2
            return r if r >= 50 else None
        if lo >= ceiling:
            return None
        return min(lo * 2, ceiling)
    if hi - lo <= max(precision * lo, 50):
        return None
    return (lo + hi) // 2 // 50 * 50 or None


def search(pair: str, transport: str, work: Path, deadline: float, step_s: float, start: int, ceiling: int,
           precision: float) -> list[Step]:
    caller, callee = pair.split("-")
    ans = Answerer("sipp" if callee == "sipp" else "pysip", transport, work)
    steps: list[Step] = []
    try:
        while time.monotonic() < deadline:
            rate = next_rate(steps, start, ceiling, precision)
            if rate is None or any(s.rate == rate for s in steps):
                break
            steps.append(run_step(caller, ans, transport, rate, max(500, int(rate * step_s)), work, pair))
            time.sleep(0.5)
    finally:
        ans.stop()
    return steps


def fixed(pair: str, transport: str, work: Path, rate: int, calls: int) -> list[Step]:
    caller, callee = pair.split("-")
    ans = Answerer("sipp" if callee == "sipp" else "pysip", transport, work)
    try:
        return [run_step(caller, ans, transport, rate, calls, work, pair)]
    finally:
        ans.stop()


def make_cert(work: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(work / "key.pem"),
                    "-out", str(work / "cert.pem"), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cap", type=float, default=300.0, help="overall time cap in seconds (default 300)")
    ap.add_argument("--transports", default="udp,tcp,tls")
    ap.add_argument("--step-seconds", type=float, default=2.0, help="length of one rate step (default 2 s)")
    ap.add_argument("--pairs", default="sipp-sipp,sipp-pysip,pysip-pysip",
                    help="caller-answerer pairs to run (default all three)")
    ap.add_argument("--start", type=int, default=2000, help="first rate of the search (default 2000 cps)")
    ap.add_argument("--ceiling", type=int, default=64000, help="highest rate tried (default 64000 cps)")
    ap.add_argument("--precision", type=float, default=0.1,
                    help="stop bisecting when good and bad rates are within this fraction (default 0.1)")
    ap.add_argument("--fixed", default=None, metavar="RATE:CALLS",
                    help="run each pair once at RATE for CALLS calls instead of searching")
    args = ap.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed: only pysiptest pairs will run", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="bench-callrate-"))
    make_cert(work)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs; logs in {work}", flush=True)
    plan = []
    for t in args.transports.split(","):
        pairs = ["pysip-pysip"] if t == "tls" or shutil.which("sipp") is None else \
            ["sipp-sipp", "sipp-pysip", "pysip-pysip"]
        plan += [(p, t) for p in pairs if p in args.pairs.split(",")]
    t_end = time.monotonic() + args.cap
    results: dict[tuple[str, str], list[Step]] = {}
    for i, (pair, t) in enumerate(plan):
        share = (t_end - time.monotonic()) / (len(plan) - i)
        if args.fixed:
            fr, fc = (int(v) for v in args.fixed.split(":"))
            results[(pair, t)] = fixed(pair, t, work, fr, fc)
        else:
            results[(pair, t)] = search(pair, t, work, time.monotonic() + max(share, 5.0), args.step_seconds,
                                        args.start, args.ceiling, args.precision)
    print()
    print(f"{'transport':9} {'caller -> answerer':28} {'max cps':>8} {'at':>8} {'caller CPU s/1k':>18} "
          f"{'answerer CPU s/1k':>18}")
    names = {"sipp-sipp": "SIPp uac -> SIPp uas", "sipp-pysip": "SIPp uac -> pysiptest phone",
             "pysip-pysip": "pysiptest load -> phone"}
    best: dict[tuple[str, str], Optional[Step]] = {}
    for (pair, t), steps in results.items():
        good = [s for s in steps if s.ok]
        b = good[-1] if good else None
        best[(pair, t)] = b
        if b is None:
            print(f"{t:9} {names[pair]:28} {'none':>8}  ({steps[0].why if steps else 'not run'})")
            continue
        ccpu = f"{b.caller_cpu / b.calls * 1000:.3f}"
        if b.caller_run_cpu is not None:
            ccpu += f" [{b.caller_run_cpu / b.calls * 1000:.3f}]"
        capped = "" if any(not s.ok and s.rate > b.rate for s in steps) else "+"  # + = only a lower bound
        print(f"{t:9} {names[pair]:28} {b.rate:>7}{capped:1} {b.achieved:>7.0f}/s {ccpu:>18} "
              f"{b.callee_cpu / b.calls * 1000:>18.3f}")
    for t in ("udp", "tcp"):
        s, p = best.get(("sipp-sipp", t)), best.get(("pysip-pysip", t))
        if s and p:
            print(f"{t}: pysiptest/pysiptest = {p.rate / s.rate:.2f} x SIPp/SIPp")
    print("('+' = the highest step passed: the real limit is higher; [] = CPU of the load run alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
