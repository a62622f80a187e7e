"""Kamailio as a system under test: started, probed and stopped by pysiptest.

These tests talk to a real kamailio over loopback with hand-written SIP
messages, so they depend on nothing in pysiptest but ``pysiptest.sut``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pysiptest.sut._proc import ManagedProcess, free_port, wait_until
from pysiptest.sut.kamailio import Kamailio, KamailioRpcError

needs_kamailio = pytest.mark.skipif(
    shutil.which("kamailio") is None,
    reason="kamailio is not installed (apt-get install kamailio)")
needs_sipp = pytest.mark.skipif(
    shutil.which("sipp") is None, reason="sipp is not installed (apt-get install sip-tester)")


# ----- a tiny hand-made SIP client -----------------------------------------

@dataclass
class Response:
    """A received SIP response, parsed just enough for assertions."""

    status: int
    reason: str
    headers: dict[str, list[str]]
    raw: str

    def header(self, name: str) -> str:
        """First value of header ``name`` (case-insensitive); KeyError if absent."""
        return self.headers[name.lower()][0]


def parse_response(data: bytes) -> Response:
    """Parse a SIP response's status line and headers."""
    text = data.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    version, code, reason = (lines[0].split(" ", 2) + [""])[:3]
    assert version == "SIP/2.0", f"not a SIP response: {lines[0]!r}"
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Response(int(code), reason, headers, text)


@dataclass
class SipUdp:
    """One UDP socket on loopback that sends requests to a target and reads answers."""

    target: tuple[str, int]
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    @property
    def local(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, ruri: str, *, to: str, from_: str,
                extra: list[str] | None = None, call_id: str | None = None,
                cseq: int = 1, to_tag: str | None = None, from_tag: str | None = None) -> str:
        """Send a request; return its Call-ID."""
        call_id = call_id or f"{uuid.uuid4().hex}@test"
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.local};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
            "Max-Forwards: 70",
            f"From: <{from_}>;tag={from_tag or uuid.uuid4().hex[:8]}",
            f"To: <{to}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            *(extra or []),
            "Content-Length: 0",
            "", "",
        ]
        self.sock.sendto("\r\n".join(lines).encode(), self.target)
        return call_id

    def final_response(self, call_id: str, timeout: float = 3.0) -> Response:
        """Wait for the final (>= 200) response with ``call_id``; skip 1xx and strays."""
        self.sock.settimeout(timeout)
        seen: list[str] = []
        while True:
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                raise AssertionError(
                    f"no final response for Call-ID {call_id} within {timeout}s; got {seen}") from None
            resp = parse_response(data)
            seen.append(f"{resp.status} {resp.reason}")
            if resp.headers.get("call-id", [""])[0] == call_id and resp.status >= 200:
                return resp


def recv_request(sock: socket.socket, timeout: float = 3.0) -> tuple[str, dict[str, list[str]], tuple[str, int]]:
    """Receive one SIP request on ``sock``: (request line, headers, source)."""
    sock.settimeout(timeout)
    data, src = sock.recvfrom(65535)
    lines = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers, src


def reply_to(sock: socket.socket, headers: dict[str, list[str]], src: tuple[str, int],
             status: str, *, to_tag: str | None = None, contact: str | None = None) -> None:
    """Answer a request received with :func:`recv_request`, echoing Record-Route."""
    to = headers["to"][0] + (f";tag={to_tag}" if to_tag and "tag=" not in headers["to"][0] else "")
    lines = [f"SIP/2.0 {status}",
             *(f"Via: {v}" for v in headers["via"]),
             f"From: {headers['from'][0]}", f"To: {to}",
             f"Call-ID: {headers['call-id'][0]}", f"CSeq: {headers['cseq'][0]}",
             *(f"Record-Route: {r}" for r in headers.get("record-route", [])),
             *([f"Contact: <{contact}>"] if contact else []),
             "Content-Length: 0", "", ""]
    sock.sendto("\r\n".join(lines).encode(), src)


def register(client: SipUdp, sut: Kamailio, user: str, contact: str,
             expires: int = 300) -> Response:
    """REGISTER ``contact`` for ``user`` and return the final response."""
    aor = f"sip:{user}@{sut.domain}"
    call_id = client.request(
        "REGISTER", f"sip:{sut.domain}", to=aor, from_=aor,
        extra=[f"Contact: <{contact}>", f"Expires: {expires}"])
    return client.final_response(call_id)


def udp_and_tcp_free(host: str, port: int) -> bool:
    """True when ``port`` can be bound on ``host`` for both UDP and TCP."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def pid_exists(pid: int) -> bool:
    """True while a process with ``pid`` exists (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid``, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Field 4 is the PPID; the command name (field 2) may hold spaces.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


# ----- fixtures --------------------------------------------------------------

@pytest.fixture
def kamailio() -> Iterator[Kamailio]:
    """A Kamailio on a free loopback port, stopped by PID afterwards."""
    sut = Kamailio(host="127.0.0.1")
    sut.start()
    try:
        yield sut
    finally:
        sut.stop()


@pytest.fixture
def client(kamailio: Kamailio) -> Iterator[SipUdp]:
    """A UDP SIP client pointed at the Kamailio fixture."""
    c = SipUdp((kamailio.host, kamailio.port))
    try:
        yield c
    finally:
        c.close()


# ----- tests -----------------------------------------------------------------

def test_missing_binary_gives_install_hint() -> None:
    sut = Kamailio(binary="/nonexistent/kamailio")
    with pytest.raises(RuntimeError, match=r"kamailio is not installed: apt-get install kamailio"):
        sut.start()


def test_set_dnd_is_not_implemented_by_default() -> None:
    from pysiptest.sut.base import SystemUnderTest

    class Plain(SystemUnderTest):
        name, host, port, domain = "plain", "127.0.0.1", 5060, "example.com"

        def start(self) -> None: ...

        def stop(self) -> None: ...

    with pytest.raises(NotImplementedError, match="cannot set DND"):
        Plain().set_dnd("bob", True)
    assert Plain().target == "127.0.0.1:5060"


def test_free_port_is_free_for_udp_and_tcp() -> None:
    port = free_port("127.0.0.1")
    assert udp_and_tcp_free("127.0.0.1", port)
    assert 0 < free_port("::1") < 65536


def test_wait_until_raises_timeout_naming_what() -> None:
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: False, timeout=0.1, what="the moon")


def test_managed_process_stop_is_idempotent(tmp_path: Path) -> None:
    proc = ManagedProcess(["sh", "-c", "echo hello; exec sleep 30"], tmp_path / "p.log")
    wait_until(lambda: "hello" in proc.log_tail(), timeout=5, what="echo output")
    assert proc.alive()
    assert proc.stop(timeout=2) == -15
    assert proc.stop() == -15
    assert not pid_exists(proc.pid)


@needs_kamailio
def test_kamailio_answers_options(kamailio: Kamailio, client: SipUdp) -> None:
    assert kamailio.alive()
    call_id = client.request("OPTIONS", f"sip:{kamailio.target}",
                             to=f"sip:{kamailio.target}", from_="sip:probe@127.0.0.1")
    assert client.final_response(call_id).status == 200


@needs_kamailio
def test_register_gets_200_with_contact_and_expires(kamailio: Kamailio, client: SipUdp) -> None:
    contact = "sip:alice@127.0.0.1:40001"
    resp = register(client, kamailio, "alice", contact, expires=120)
    assert resp.status == 200, resp.raw
    contacts = resp.headers["contact"]
    assert len(contacts) == 1
    assert contacts[0].startswith(f"<{contact}>")
    assert "expires=120" in contacts[0]


@needs_kamailio
def test_rpc_answers_core_version(kamailio: Kamailio) -> None:
    answer = kamailio.rpc("core.version")
    assert answer["jsonrpc"] == "2.0"
    assert "kamailio" in answer["result"]
    assert "uptime" in kamailio.rpc("core.uptime")["result"]


@needs_kamailio
def test_set_dnd_is_visible_in_htable(kamailio: Kamailio) -> None:
    kamailio.set_dnd("bob", True)
    item = kamailio.rpc("htable.get", "dnd", "bob")["result"]["item"]
    assert item["name"] == "bob" and item["value"] == 1
    dump = kamailio.rpc("htable.dump", "dnd")["result"]
    assert {"name": "bob", "value": 1} in [
        {"name": s["name"], "value": s["value"]} for e in dump for s in e["slot"]]
    assert kamailio.dnd("bob")

    kamailio.set_dnd("bob", False)
    with pytest.raises(KamailioRpcError):
        kamailio.rpc("htable.get", "dnd", "bob")
    assert not kamailio.dnd("bob")
    kamailio.set_dnd("bob", False)  # already off: still fine


@needs_kamailio
def test_invite_to_unregistered_user_gets_404(kamailio: Kamailio, client: SipUdp) -> None:
    ruri = f"sip:nobody@{kamailio.target}"
    call_id = client.request("INVITE", ruri, to=ruri, from_="sip:alice@127.0.0.1",
                             extra=[f"Contact: <sip:alice@{client.local}>"])
    assert client.final_response(call_id).status == 404


@needs_kamailio
def test_invite_is_record_routed_and_bye_follows_route(kamailio: Kamailio, client: SipUdp) -> None:
    callee = SipUdp((kamailio.host, kamailio.port))
    try:
        bob_contact = f"sip:bob@{callee.local}"
        assert register(client, kamailio, "bob", bob_contact).status == 200

        ruri = f"sip:bob@{kamailio.domain}"
        alice = {"from_": "sip:alice@127.0.0.1", "from_tag": "alicetag"}
        call_id = client.request("INVITE", ruri, to=ruri, **alice,
                                 extra=[f"Contact: <sip:alice@{client.local}>"])
        line, headers, src = recv_request(callee.sock)
        assert line == f"INVITE {bob_contact} SIP/2.0"
        record_route = headers["record-route"][0]
        assert f"sip:{kamailio.target}" in record_route and ";lr" in record_route
        reply_to(callee.sock, headers, src, "200 OK", to_tag="bobtag", contact=bob_contact)

        ok = client.final_response(call_id)
        assert ok.status == 200 and ok.header("record-route") == record_route

        # In-dialog: ACK and BYE to the remote target, routed through the
        # Record-Route (loose routing).
        client.request("ACK", bob_contact, to=ruri, to_tag="bobtag", **alice,
                       call_id=call_id, cseq=1, extra=[f"Route: {record_route}"])
        line, headers, src = recv_request(callee.sock)
        assert line == f"ACK {bob_contact} SIP/2.0"

        bye_id = client.request("BYE", bob_contact, to=ruri, to_tag="bobtag",
                                **alice, call_id=call_id, cseq=2,
                                extra=[f"Route: {record_route}"])
        line, headers, src = recv_request(callee.sock)
        assert line == f"BYE {bob_contact} SIP/2.0"
        assert "route" not in headers  # kamailio consumed its own Route entry
        reply_to(callee.sock, headers, src, "200 OK")
        assert client.final_response(bye_id).status == 200
    finally:
        callee.close()


@needs_kamailio
def test_domain_is_served_as_alias() -> None:
    with Kamailio(domain="pysiptest.test") as sut:
        assert "SIP_DOMAIN=pysiptest.test" in sut.command()
        c = SipUdp((sut.host, sut.port))
        try:
            call_id = c.request("OPTIONS", "sip:pysiptest.test", to="sip:pysiptest.test",
                                from_="sip:probe@pysiptest.test")
            assert c.final_response(call_id).status == 200
            assert register(c, sut, "dave", "sip:dave@127.0.0.1:40002").status == 200
        finally:
            c.close()


@needs_kamailio
def test_stop_ends_pid_and_frees_port() -> None:
    sut = Kamailio(host="127.0.0.1")
    sut.start()
    pid, port, workdir = sut.pid, sut.port, sut.workdir
    assert pid is not None and workdir is not None
    kids = children_of(pid)
    assert kids, "kamailio should have forked its workers"
    assert not udp_and_tcp_free("127.0.0.1", port)

    sut.stop()
    sut.stop()  # idempotent
    assert not pid_exists(pid)
    wait_until(lambda: not any(pid_exists(k) for k in kids), timeout=5,
               what="kamailio workers to exit")
    wait_until(lambda: udp_and_tcp_free("127.0.0.1", port), timeout=5,
               what=f"port {port} to be free")
    assert not workdir.exists()


@needs_kamailio
def test_start_on_taken_port_fails_with_log_tail() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        port = blocker.getsockname()[1]
        sut = Kamailio(host="127.0.0.1", port=port)
        with pytest.raises(RuntimeError, match="bind"):
            sut.start()
        assert not sut.alive()


@needs_kamailio
def test_two_instances_run_at_once() -> None:
    with Kamailio() as a, Kamailio() as b:
        assert a.port != b.port and a.pid != b.pid
        for sut in (a, b):
            c = SipUdp((sut.host, sut.port))
            try:
                resp = register(c, sut, "carol", f"sip:carol@127.0.0.1:{sut.port + 1}")
                assert resp.status == 200
            finally:
                c.close()
        # Each has its own location table and htable.
        a.set_dnd("carol", True)
        assert a.dnd("carol") and not b.dnd("carol")


@needs_kamailio
@needs_sipp
def test_sipp_calls_through_kamailio(kamailio: Kamailio, client: SipUdp, tmp_path: Path) -> None:
    uas_port, uac_port = free_port(), free_port()
    uas_media, uac_media = free_port(), free_port()
    env = {**os.environ, "TERM": os.environ.get("TERM", "dumb")}
    common = ["-i", "127.0.0.1", "-timeout", "20s", "-timeout_error", "-nostdin"]

    uas = ManagedProcess(
        ["sipp", "-sn", "uas", "-p", str(uas_port), "-mp", str(uas_media), "-m", "5", *common],
        tmp_path / "sipp_uas.log", cwd=tmp_path, env=env)
    try:
        wait_until(lambda: not udp_and_tcp_free("127.0.0.1", uas_port) or not uas.alive(),
                   timeout=5, what="sipp uas to bind its port")
        assert uas.alive(), uas.log_tail()

        resp = register(client, kamailio, "bob", f"sip:bob@127.0.0.1:{uas_port}")
        assert resp.status == 200, resp.raw

        uac = subprocess.run(
            ["sipp", "-sn", "uac", "-s", "bob", "-m", "5", "-r", "5",
             "-p", str(uac_port), "-mp", str(uac_media), *common, kamailio.target],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=40)
        output = uac.stdout.decode("utf-8", "replace")
        assert uac.returncode == 0, (
            f"sipp uac exit {uac.returncode}\n{output[-3000:]}\n--- kamailio ---\n"
            f"{kamailio.log_tail()}\n--- uas ---\n{uas.log_tail()}")
        assert uas.wait(timeout=10) == 0, uas.log_tail()
    finally:
        uas.stop()
