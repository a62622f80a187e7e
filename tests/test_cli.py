"""The ``pysiptest`` command: ``phone`` answers calls and reports events, ``pbx`` registers phones,
``devices`` lists models; bad arguments give one line on stderr, never a traceback."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pysiptest import Answered, CallEnded, Engine, Phone, ResponseReceived, Ringing
from pysiptest.sut._proc import free_port
from test_sipp_interop import sipp  # noqa: F401  (the sipp fixture)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def run_cli_once(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command to its end (it must not hang) and capture stdout and stderr apart."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "pysiptest", *args], capture_output=True, text=True,
                          timeout=30, cwd=ROOT, env=env)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_phone_command_answers_a_call_prints_events_and_exits_0_on_signal(sig: int, run_cli,
                                                                         engine: Engine) -> None:
    port = free_port(HOST, tcp=False)
    cli = run_cli("phone", "--listen", f"{HOST}:{port}", "--device", "Squirrel350", "--user", "bob")
    cli.wait_for(rf"^phone bob \(Squirrel350\) listening on {HOST}:{port}$")

    alice = Phone("alice", engine=engine, proxy=(HOST, port))
    call = alice.call("bob")
    alice.expect(Answered, 5, call=call)
    time.sleep(0.3)
    assert call.media_stats()["rx_packets"] > 0, "the CLI phone sends no media"
    call.hangup()
    ended = alice.expect(CallEnded, 5, call=call)
    assert ended.status == 200

    short_id = call.call_id[:12]
    for event in (r"IncomingCall\(from alice\)", "Answered", r"RequestReceived\(BYE\)", r"CallEnded\(BYE received\)"):
        cli.wait_for(rf"^\d\d:\d\d:\d\d {event} call {short_id} sip:alice@")

    cli.send_signal(sig)
    assert cli.proc.wait(10) == 0, cli.output()
    assert "Traceback" not in cli.output()


def test_phone_command_rings_then_answers_after_the_delay_given(run_cli, engine: Engine) -> None:
    port = free_port(HOST, tcp=False)
    cli = run_cli("phone", "--listen", f"{HOST}:{port}", "--answer-after", "0.6")
    cli.wait_for(r"listening on ")
    alice = Phone("alice", engine=engine, proxy=(HOST, port))
    start = time.monotonic()
    call = alice.call("pysiptest")
    alice.expect(Ringing, 5, call=call)
    alice.expect(Answered, 5, call=call)
    assert time.monotonic() - start >= 0.5
    call.hangup()
    alice.expect(CallEnded, 5, call=call)


def test_pbx_command_registers_a_phone_and_routes_a_call_to_a_cli_phone(run_cli, engine: Engine) -> None:
    pbx_port = free_port(HOST, tcp=False)
    pbx = run_cli("pbx", "--listen", f"{HOST}:{pbx_port}")
    pbx.wait_for(rf"^reference PBX listening on {HOST}:{pbx_port} ")

    alice = Phone("alice", engine=engine, proxy=(HOST, pbx_port))
    assert alice.register(timeout=5).expires > 0
    assert alice.registered

    bob = run_cli("phone", "--listen", f"{HOST}:{free_port(HOST, tcp=False)}", "--user", "bob",
                  "--register", f"{HOST}:{pbx_port}")
    bob.wait_for(rf"^registered sip:bob@{HOST} at {HOST}:{pbx_port}$")
    call = alice.call("bob")
    alice.expect(Answered, 5, call=call)
    call.hangup()
    assert alice.expect(CallEnded, 5, call=call).status == 200
    bob.wait_for(r"CallEnded\(BYE received\)")

    assert pbx.stop() == 0, pbx.output()
    assert bob.stop() == 0, bob.output()


def _port_in_use() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    return s, s.getsockname()[1]


@pytest.mark.parametrize("args, says", [
    (["phone", "--listen", "nonsense"], "is not HOST:PORT"),
    (["phone", "--listen", f"{HOST}:99999"], "is not HOST:PORT"),
    (["phone"], "--listen"),
    (["pbx", "--listen", "nonsense"], "is not HOST:PORT"),
    (["phone", "--listen", f"{HOST}:5070", "--answer-after", "soon"], "not a number of seconds"),
    (["phone", "--listen", f"{HOST}:5070", "--device", "Nope"], "unknown device 'Nope'"),
    (["phone", "--listen", f"{HOST}:5070", "--timer", "soon"], "not a whole number of seconds"),
    (["phone", "--listen", f"{HOST}:5070", "--timer", "0"], "between 1 and 86400"),
    (["phone", "--listen", "192.0.2.1:5070"], "cannot bind"),
    (["nosuchcommand"], "invalid choice"),
], ids=["listen-nonsense", "listen-port-too-big", "listen-missing", "pbx-listen-nonsense", "answer-after-nan",
        "unknown-device", "timer-nan", "timer-zero", "address-not-local", "unknown-command"])
def test_bad_arguments_give_one_line_error_and_nonzero_exit(args: list[str], says: str) -> None:
    r = run_cli_once(*args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pysiptest") and says in lines[0], r.stderr
    assert r.stdout == ""


def test_unknown_device_error_lists_known_devices() -> None:
    r = run_cli_once("phone", "--listen", f"{HOST}:5070", "--device", "Nope")
    assert r.returncode != 0
    assert "Squirrel350" in r.stderr and "Chipmunk5000" in r.stderr, r.stderr


@pytest.mark.parametrize("command", ["phone", "pbx"])
def test_port_already_in_use_gives_one_line_error(command: str) -> None:
    sock, port = _port_in_use()
    with sock:
        r = run_cli_once(command, "--listen", f"{HOST}:{port}")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use" in lines[0] and str(port) in lines[0], r.stderr


def test_devices_command_lists_the_repository_models() -> None:
    r = run_cli_once("devices")
    assert r.returncode == 0, r.stderr
    models = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "Squirrel350" in models and "Chipmunk5000" in models, r.stdout
    assert "Squirrel350/2.1.4" in models["Squirrel350"]
    assert "Chipmunk5000/7.0" in models["Chipmunk5000"]


# -- --password, --prack, --timer (issue 5): proven on the wire ------------------------------
def test_phone_command_registers_with_password_against_a_pbx_with_digest_users(run_cli, engine: Engine,
                                                                              tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("bob:bob-secret\nalice:alice-secret\n", encoding="utf-8")
    pbx_port = free_port(HOST, tcp=False)
    pbx = run_cli("pbx", "--listen", f"{HOST}:{pbx_port}", "--users", str(users), "--auth", "SHA-256")
    pbx.wait_for(rf"^reference PBX listening on {HOST}:{pbx_port} .*2 users")

    # a wrong password: the PBX challenges again and the command ends with one error line
    wrong = run_cli_once("phone", "--listen", f"{HOST}:{free_port(HOST, tcp=False)}", "--user", "bob",
                         "--register", f"{HOST}:{pbx_port}", "--password", "not-it")
    assert wrong.returncode == 2 and "could not register: 401" in wrong.stderr, (wrong.stdout, wrong.stderr)

    bob = run_cli("phone", "--listen", f"{HOST}:{free_port(HOST, tcp=False)}", "--user", "bob",
                  "--register", f"{HOST}:{pbx_port}", "--password", "bob-secret")
    bob.wait_for(rf"^registered sip:bob@{HOST} at {HOST}:{pbx_port}$")
    alice = Phone("alice", engine=engine, proxy=(HOST, pbx_port), password="alice-secret")
    alice.register(timeout=5)
    call = alice.call("bob")  # routed to bob's registered contact: the registration is real
    alice.expect(Answered, 5, call=call)
    call.hangup()
    assert alice.expect(CallEnded, 5, call=call).status == 200
    bob.wait_for(r"CallEnded\(BYE received\)")
    assert bob.stop() == 0 and pbx.stop() == 0


@pytest.mark.requires_binary("sipp")
@pytest.mark.parametrize("prack", [True, False], ids=["with-prack", "without-prack"])
def test_phone_command_prack_sends_a_reliable_180_to_sipp(prack: bool, run_cli, sipp) -> None:  # noqa: F811
    port = free_port(HOST, tcp=False)
    cli = run_cli("phone", "--listen", f"{HOST}:{port}", "--answer-after", "0.3", *(["--prack"] if prack else []))
    cli.wait_for(r"listening on ")
    run = sipp(ROOT / "tests" / "sipp" / "prack.xml", HOST, free_port(HOST, tcp=False), remote=f"{HOST}:{port}",
               extra=("-s", "pysiptest"), calls=1, timeout="15s")
    rc = run.finish(25)
    got = [m.strip() for m in re.split(r"^-{20,}.*$", run.messages(), flags=re.M) if "message received" in m]
    firsts = [m.split("\n", 2)[2].strip().splitlines()[0] for m in got]
    if not prack:  # Require: 100rel is refused (RFC 3261 8.2.2.3): SIPp's scenario fails
        assert rc != 0 and "SIP/2.0 420 Bad Extension" in firsts, run.report()
        return
    run.assert_all_calls_succeeded(rc, 1)
    ringing = next(m for m in got if "SIP/2.0 180" in m)
    assert re.search(r"^RSeq: *[1-9]\d*$", ringing, flags=re.M), ringing
    assert re.search(r"^Require: *100rel", ringing, flags=re.M), ringing
    cli.wait_for(r"RequestReceived\(PRACK\)")
    cli.wait_for(r"CallEnded\(BYE received\)")


@pytest.mark.parametrize("timer", [30, 1800])
def test_phone_command_timer_puts_session_expires_in_its_200(timer: int, run_cli, engine: Engine) -> None:
    port = free_port(HOST, tcp=False)
    cli = run_cli("phone", "--listen", f"{HOST}:{port}", "--timer", str(timer))
    cli.wait_for(r"listening on ")
    alice = Phone("alice", engine=engine, proxy=(HOST, port))
    call = alice.call("pysiptest")
    alice.expect(Answered, 5, call=call)
    ok = next(e for _, e in alice.history if isinstance(e, ResponseReceived) and e.status == 200)
    # alice has no timer support, so the callee refreshes (RFC 4028 9)
    assert ok.message.header("Session-Expires") == f"{timer};refresher=uas"
    assert "timer" in ok.message.header("Supported")
    call.hangup()
    alice.expect(CallEnded, 5, call=call)


def test_phone_command_timer_and_prack_refuse_fast_path() -> None:
    r = run_cli_once("phone", "--listen", f"{HOST}:{free_port(HOST, tcp=False)}", "--fast", "--timer", "60")
    assert r.returncode == 2 and "do not work with --fast" in r.stderr and "Traceback" not in r.stderr, r.stderr
