"""Interoperability with SIPp 3.6: its built-in ``uac`` calls pysiptest phones, and a pysiptest phone calls
its built-in ``uas``, 20 calls each way, over IPv4 and IPv6 loopback.

SIPp runs as a child process on free ports and is stopped by its PID at teardown; whether all its calls
succeeded is read from its exit status and its statistics file (``-trace_stat -stf``).
"""
from __future__ import annotations

import csv
import errno
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from pysiptest import Answered, CallEnded, Device, Engine, IncomingCall, Phone, RequestReceived
from pysiptest.sut._proc import ManagedProcess, free_port, wait_until

CALLS = 20
LOOPBACK = {"ipv4": "127.0.0.1", "ipv6": "::1"}

pytestmark = pytest.mark.requires_binary("sipp")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _loopback(family: str) -> str:
    """The loopback address of a family; skips the test when the host has none (no IPv6)."""
    host = LOOPBACK[family]
    fam = socket.AF_INET6 if family == "ipv6" else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
    except OSError as exc:
        pytest.skip(f"no {family} loopback here ({host}: {exc.strerror})")
    return host


def _udp_port_taken(host: str, port: int) -> bool:
    """True when something (SIPp) has bound host:port for UDP."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


@dataclass
class Sipp:
    """One SIPp run: the process, its statistics file and its error log."""

    proc: ManagedProcess
    stat_path: Path
    err_path: Path
    msg_path: Optional[Path] = None  # -trace_msg: every message SIPp sent and received

    def messages(self) -> str:
        """SIPp's message log (-trace_msg), "" without one."""
        if self.msg_path is None or not self.msg_path.exists():
            return ""
        return self.msg_path.read_text("utf-8", "replace")

    def finish(self, timeout: float = 45.0) -> int:
        """Wait for SIPp to end by itself (it stops after -m calls); its exit status."""
        return self.proc.wait(timeout)

    def stats(self) -> dict[str, str]:
        """The last row of the -trace_stat file, by column name."""
        with open(self.stat_path, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter=";"))
        assert rows, f"SIPp wrote no statistics; its output:\n{self.report()}"
        return rows[-1]

    def report(self) -> str:
        """SIPp's screen output and error log, for failure messages."""
        err = self.err_path.read_text("utf-8", "replace") if self.err_path.exists() else ""
        msgs = self.messages()
        return (f"{self.proc.log_tail(40)}\n--- SIPp errors ---\n{err[-3000:]}"
                + (f"\n--- SIPp messages ---\n{msgs[-6000:]}" if msgs else ""))

    def assert_all_calls_succeeded(self, rc: int, calls: int = CALLS) -> None:
        """SIPp exit status 0 and exactly ``calls`` successful calls, none failed."""
        assert rc == 0, f"SIPp exited with {rc} (0: every call succeeded):\n{self.report()}"
        st = self.stats()
        assert (int(st["SuccessfulCall(C)"]), int(st["FailedCall(C)"])) == (calls, 0), (
            f"SIPp counted {st['SuccessfulCall(C)']} successful and {st['FailedCall(C)']} failed calls:\n"
            + self.report())


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    """Factory: ``sipp("uac", host, port, remote="127.0.0.1:5070", extra=[...])``; stopped by PID at teardown.

    ``scenario`` is a built-in name (``-sn``) or the path of an XML file (``-sf``, then ``-trace_msg`` too);
    ``calls`` is ``-m`` and ``timeout`` SIPp's own ``-timeout``."""
    runs: list[Sipp] = []

    def start(scenario: str | Path, host: str, port: int, remote: str | None = None, extra: tuple[str, ...] = (),
              calls: int = CALLS, timeout: str = "30s") -> Sipp:
        n = len(runs)
        is_file = str(scenario).endswith(".xml")
        name = Path(scenario).stem if is_file else str(scenario)
        stat, err = tmp_path / f"sipp-{n}-{name}.csv", tmp_path / f"sipp-{n}-{name}-errors.log"
        msgs = tmp_path / f"sipp-{n}-{name}-messages.log" if is_file else None
        argv = ["sipp", *(("-sf", str(scenario)) if is_file else ("-sn", str(scenario))),
                "-i", host, "-p", str(port), "-m", str(calls),
                "-timeout", timeout, "-timeout_error", "-nostdin",
                "-trace_stat", "-stf", str(stat), "-trace_err", "-error_file", str(err), *extra]
        if msgs is not None:
            argv += ["-trace_msg", "-message_file", str(msgs)]
        if remote is not None:
            argv.append(remote)
        run = Sipp(ManagedProcess(argv, tmp_path / f"sipp-{n}-{name}.log", cwd=tmp_path), stat, err, msgs)
        runs.append(run)
        return run

    try:
        yield start
    finally:
        for run in runs:
            run.proc.stop(timeout=5)


# -- SIPp calls us -------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_sipp_uac_calls_cli_phone_and_all_20_calls_succeed(family: str, run_cli, sipp) -> None:
    host = _loopback(family)
    port = free_port(host, tcp=False)
    phone = run_cli("phone", "--listen", _hostport(host, port), "--answer-after", "0")
    phone.wait_for(r"^phone pysiptest .* listening on ")

    uac = sipp("uac", host, free_port(host, tcp=False), remote=_hostport(host, port),
               extra=("-s", "pysiptest", "-r", "20"))
    uac.assert_all_calls_succeeded(uac.finish())

    # the phone printed one line per event: every call came in, was answered (ACK) and ended by SIPp's BYE
    phone.wait_for(r"CallEnded\(BYE received\)", count=CALLS)
    out = phone.output()
    assert out.count("IncomingCall(from sipp)") == CALLS, out
    assert out.count("Answered") == CALLS, out
    assert phone.stop() == 0, phone.output()


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_sipp_uac_calls_in_process_phone_which_sees_20_calls_and_20_byes(family: str, engine: Engine,
                                                                          sipp) -> None:
    host = _loopback(family)
    device = Device()
    device.auto_answer_after = 0  # type: ignore[misc]
    phone = Phone("pysiptest", device, engine=engine, host=host)

    uac = sipp("uac", host, free_port(host, tcp=False), remote=_hostport(host, phone.port),
               extra=("-s", "pysiptest", "-r", "20"))
    uac.assert_all_calls_succeeded(uac.finish())

    wait_until(lambda: sum(isinstance(e, CallEnded) for _, e in phone.history) >= CALLS, 5,
               what=f"{CALLS} CallEnded events")
    seen = Counter(type(e).__name__ + (f"({e.method})" if isinstance(e, RequestReceived) else "")
                   for _, e in phone.history)
    assert seen["IncomingCall"] == CALLS, seen
    assert seen["Answered"] == CALLS, seen
    assert seen["RequestReceived(BYE)"] == CALLS, seen
    assert [e.reason for _, e in phone.history if isinstance(e, CallEnded)] == ["BYE received"] * CALLS
    assert len(phone.calls) == CALLS
    assert all(c.state == "terminated" and c.end_reason == "BYE received" for c in phone.calls)
    assert len({c.call_id for c in phone.calls}) == CALLS
    wait_until(lambda: engine.core.counts()["dialogs"] == 0, 5, what="all dialogs gone")


# -- we call SIPp --------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_phone_calls_sipp_uas_20_times_and_every_call_is_answered_and_hung_up(family: str, engine: Engine,
                                                                              sipp) -> None:
    host = _loopback(family)
    port = free_port(host, tcp=False)
    uas = sipp("uas", host, port)
    wait_until(lambda: _udp_port_taken(host, port) or not uas.proc.alive(), 10, what="SIPp to listen")
    assert uas.proc.alive(), f"SIPp did not start:\n{uas.report()}"

    phone = Phone("alice", engine=engine, host=host, proxy=(host, port))
    for i in range(CALLS):
        call = phone.call("service")
        phone.expect(Answered, 5, call=call)
        assert call.state == "confirmed", f"call {i + 1}: {call.state}"
        assert call.remote_sdp is not None and call.payload_type == 0  # SIPp's uas answers PCMU
        call.hangup()
        ended: CallEnded = phone.expect(CallEnded, 5, call=call)
        assert (ended.reason, ended.status) == ("hung up", 200), f"call {i + 1}: {ended}"

    uas.assert_all_calls_succeeded(uas.finish())
    assert [c.state for c in phone.calls] == ["terminated"] * CALLS
    assert not [e for e in phone.unexpected() if isinstance(e, (IncomingCall, CallEnded))]
    wait_until(lambda: engine.core.counts()["dialogs"] == 0, 5, what="all dialogs gone")
