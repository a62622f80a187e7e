"""Fault behaviour on a real (virtual) network: two network namespaces made by the test, joined by a veth
pair with private addresses that exist only inside them, and packet loss made by an nftables rule in each
namespace's input hook (``numgen random mod 100 < N drop``).

- at 10% loss every call of a 200-call run completes through retransmission;
- at 30% loss the calls that fail fail only by Timer B or Timer F, and say so;
- a peer that vanishes mid-call (all its input dropped) ends in timeout events, with no hang and no
  transaction or dialog left (engine counts).

Each side is a small script on ``_core.Engine`` run with ``ip netns exec`` (T1 = 100 ms, T2 = 400 ms,
so Timer B/F = 6.4 s).  Needs root, ``ip`` (iproute2) and ``nft`` (nftables); skipped otherwise.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UAS_PORT = 5060

UAS = textwrap.dedent("""
    import sys
    from pysiptest import _core
    host = sys.argv[1]
    e = _core.Engine(t1=0.1, t2=0.4, t4=0.5)
    tid, port = e.listen_udp(host, int(sys.argv[2]))
    print("READY", port, flush=True)
    contact = [("Contact", f"<sip:uas@{host}:{port}>")]
    while True:
        for kind, _t, txn, _d, _h, _p, _s, msg, _i in e.poll(timeout=0.5):
            if kind == "request" and msg.method in ("INVITE", "BYE"):
                try:
                    e.respond(txn, 200, None, contact if msg.method == "INVITE" else [])
                except Exception:
                    pass
""")

UAC = textwrap.dedent("""
    import json, sys, time
    from collections import Counter
    from pysiptest import _core
    host, rhost, rport, ncalls, conc, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \\
        int(sys.argv[5]), sys.argv[6]
    e = _core.Engine(t1=0.1, t2=0.4, t4=0.5)
    tid, port = e.listen_udp(host)
    by_txn, dialogs, ok, failed = {}, {}, 0, Counter()
    started = 0

    def start_call(i):
        h = [("From", f"<sip:uac@{host}>;tag=t{i}"), ("To", f"<sip:uas@{rhost}>"), ("Call-ID", f"fault-{i}"),
             ("CSeq", "1 INVITE"), ("Contact", f"<sip:uac@{host}:{port}>")]
        by_txn[e.request(tid, rhost, rport, "INVITE", f"sip:uas@{rhost}:{rport}", h)] = ("invite", i)

    def bye(i, dlg):
        by_txn[e.dialog_request(dlg, "BYE")] = ("bye", i)

    def step(established_only=False):
        global ok
        for kind, _t, txn, dlg, _h, _p, status, msg, info in e.poll(timeout=0.05):
            what = by_txn.get(txn)
            if what is None:
                continue
            if kind == "response" and status >= 200:
                del by_txn[txn]
                if what[0] == "invite" and status < 300:
                    dialogs[what[1]] = dlg
                    if not established_only:
                        bye(what[1], dlg)
                elif what[0] == "bye" and status < 300:
                    ok += 1
                else:
                    failed[f"{what[0]} {status}"] += 1
            elif kind in ("timeout", "transport_error"):
                del by_txn[txn]
                failed[f"{what[0]} {info}"] += 1

    deadline = time.monotonic() + 40
    if mode == "run":
        while (ok + sum(failed.values()) < ncalls) and time.monotonic() < deadline:
            while started < ncalls and len(by_txn) < conc:
                start_call(started)
                started += 1
            step()
    else:  # "vanish": establish calls, wait for the peer to vanish, then hang up
        for i in range(ncalls):
            start_call(i)
        while len(dialogs) < ncalls and time.monotonic() < deadline:
            step(established_only=True)
        print("ESTABLISHED", len(dialogs), flush=True)
        sys.stdin.readline()
        for i, dlg in dialogs.items():
            bye(i, dlg)
        while by_txn and time.monotonic() < deadline:
            step()
    end = time.monotonic() + 8  # completed transactions linger for Timer K (T4) and M (64*T1)
    while time.monotonic() < end and (e.counts()["transactions"] or e.counts()["dialogs"]):
        e.poll(timeout=0.1)
    print(json.dumps({"ok": ok, "failed": dict(failed), "pending": len(by_txn), "counts": e.counts()}), flush=True)
""")


def _need(cond: bool, why: str) -> None:
    if not cond:
        pytest.skip(why)


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=10)


@dataclass
class Net:
    """Two namespaces a (10.213.0.1) and b (10.213.0.2) joined by a veth pair."""

    a: str
    b: str
    ip_a: str = "10.213.0.1"
    ip_b: str = "10.213.0.2"

    def set_loss(self, percent: int) -> None:
        """Drop percent% of the UDP packets arriving in each namespace (flushes an older rule)."""
        for ns in (self.a, self.b):
            _run("ip", "netns", "exec", ns, "nft", "flush", "ruleset")
            if percent <= 0:
                continue
            _run("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "loss")
            _run("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "loss", "input",
                 "{ type filter hook input priority 0; policy accept; }")
            rule = "drop" if percent >= 100 else f"numgen random mod 100 < {percent} drop"
            _run("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "loss", "input",
                 "meta", "l4proto", "udp", *rule.split())

    def vanish(self, ns: str) -> None:
        """Every UDP packet arriving in ns is dropped: the peer there is gone without a trace (no ICMP)."""
        _run("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "gone")
        _run("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "gone", "input",
             "{ type filter hook input priority -10; policy drop; }")

    def script(self, ns: str, code: Path, *args: str, stdin: bool = False) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(code), *args], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    _need(hasattr(os, "geteuid") and os.geteuid() == 0, "network namespaces need root")
    _need(shutil.which("ip") is not None, "ip is not installed (apt-get install iproute2)")
    _need(shutil.which("nft") is not None, "nft is not installed (apt-get install nftables)")
    tag = f"{os.getpid() % 100000}"
    n = Net(f"psfa{tag}", f"psfb{tag}")
    va, vb = f"psva{tag}", f"psvb{tag}"
    try:
        try:
            _run("ip", "netns", "add", n.a)
            _run("ip", "netns", "add", n.b)
            _run("ip", "link", "add", va, "netns", n.a, "type", "veth", "peer", "name", vb, "netns", n.b)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot make network namespaces here: {exc.stderr.decode(errors='replace').strip()}")
        for ns, dev, ip in ((n.a, va, n.ip_a), (n.b, vb, n.ip_b)):
            _run("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        try:
            _run("ip", "netns", "exec", n.a, "nft", "list", "ruleset")
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"nftables does not work here: {exc.stderr.decode(errors='replace').strip()}")
        yield n
    finally:
        for ns in (n.a, n.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.fixture
def scripts(tmp_path: Path) -> tuple[Path, Path]:
    uas, uac = tmp_path / "uas.py", tmp_path / "uac.py"
    uas.write_text(UAS)
    uac.write_text(UAC)
    return uas, uac


@pytest.fixture
def uas(net: Net, scripts) -> Iterator[subprocess.Popen]:
    p = net.script(net.b, scripts[0], net.ip_b, str(UAS_PORT))
    try:
        line = p.stdout.readline() if p.stdout else ""
        assert line.startswith("READY"), f"UAS did not start: {line!r} {p.stderr.read() if p.stderr else ''}"
        yield p
    finally:
        p.kill()
        p.wait(5)


def _uac_result(p: subprocess.Popen, timeout: float) -> dict:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"the UAC hung: {out[-2000:]} {err[-2000:]}")
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert p.returncode == 0 and lines, f"UAC failed ({p.returncode}): {out[-2000:]}\n{err[-3000:]}"
    return json.loads(lines[-1])


def test_every_call_of_200_completes_at_10_percent_loss(net: Net, scripts, uas) -> None:
    net.set_loss(10)
    try:
        t0 = time.monotonic()
        r = _uac_result(net.script(net.a, scripts[1], net.ip_a, net.ip_b, str(UAS_PORT), "200", "40", "run"), 45)
    finally:
        net.set_loss(0)
    assert (r["ok"], r["failed"]) == (200, {}), r
    c = r["counts"]
    assert c["retransmissions"] > 0, f"10% loss but no retransmission: {c}"
    assert c["transactions"] == 0 and c["dialogs"] == 0, c
    print(f"10% loss: 200 calls in {time.monotonic() - t0:.1f}s, {c['retransmissions']} retransmissions")


def test_failures_at_30_percent_loss_are_only_timer_b_or_f(net: Net, scripts, uas) -> None:
    net.set_loss(30)
    try:
        r = _uac_result(net.script(net.a, scripts[1], net.ip_a, net.ip_b, str(UAS_PORT), "100", "50", "run"), 45)
    finally:
        net.set_loss(0)
    assert r["ok"] + sum(r["failed"].values()) == 100 and r["pending"] == 0, r
    bad = {k: v for k, v in r["failed"].items() if k not in ("invite Timer B", "bye Timer F")}
    assert not bad, f"failures other than Timer B/F: {r['failed']}"
    assert r["ok"] >= 50, r  # most calls still complete
    assert r["counts"]["transactions"] == 0 and r["counts"]["dialogs"] == 0, r
    print(f"30% loss: {r['ok']} ok, failed {r['failed']}, {r['counts']['retransmissions']} retransmissions")


def test_peer_vanishing_mid_call_ends_in_timeouts_without_leaks(net: Net, scripts, uas) -> None:
    p = net.script(net.a, scripts[1], net.ip_a, net.ip_b, str(UAS_PORT), "10", "10", "vanish", stdin=True)
    try:
        line = p.stdout.readline() if p.stdout else ""
        assert line.strip() == "ESTABLISHED 10", line
        net.vanish(net.b)
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
        r = _uac_result(p, 20)
    finally:
        net.set_loss(0)  # also removes the vanish table
        if p.poll() is None:
            p.kill()
    assert r["ok"] == 0 and r["failed"] == {"bye Timer F": 10} and r["pending"] == 0, r
    c = r["counts"]
    assert c["transactions"] == 0 and c["dialogs"] == 0, f"leaked: {c}"
