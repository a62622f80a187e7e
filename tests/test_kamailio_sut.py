"""Kamailio as a system under test: started, probed and stopped by pysiptest.

The first tests talk to a real kamailio over loopback with hand-written SIP
messages, so they depend on nothing in pysiptest but ``pysiptest.sut``. The
last section runs pysiptest phones through a Kamailio with digest auth and
checks each service on the wire with the engine's message trace: challenges
for REGISTER, INVITE, MESSAGE and SUBSCRIBE, record-routing, MESSAGE,
SUBSCRIBE/NOTIFY (presence, dialog), REFER and in-dialog requests relayed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
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


# ----- pysiptest phones through Kamailio with digest auth ----------------------

USERS = {"alice": "Al1ce-pw", "bob": "b0b-pw", "carol": "car0l-pw"}


@pytest.fixture(scope="module")
def authed() -> Iterator[Kamailio]:
    """One Kamailio with digest auth (SHA-256) and three accounts for the phone tests of this module."""
    if shutil.which("kamailio") is None:
        pytest.skip("kamailio is not installed (apt-get install kamailio)")
    sut = Kamailio(users=USERS)
    sut.start()
    try:
        yield sut
    finally:
        sut.stop()


@pytest.fixture
def phones(authed: Kamailio):  # -> dict[str, Phone]
    """alice, bob and carol registered with the authed Kamailio, on one Engine whose message trace is on."""
    from pysiptest import Engine, Phone, trace

    eng = Engine()
    trace.enable(eng, 2000)
    ph = {u: Phone(u, engine=eng, proxy=(authed.host, authed.port), password=p) for u, p in USERS.items()}
    try:
        for p in ph.values():
            p.register(timeout=5)
        yield ph
    finally:
        for p in ph.values():
            p.close()
        eng.close()


def _wire(phone):  # -> list[tuple[bool, str, str, tuple[str, int]]]: (sent, start line, CSeq, peer)
    from pysiptest import trace

    return [(e.outgoing, e.first_line, e.cseq, e.peer) for e in trace.ladder(phone)]


def _challenged_then_accepted(phone, method: str, challenge: int, proxy: tuple[str, int]) -> None:
    """On the wire: the method went out, got ``challenge``, went out again with CSeq + 1 and got a 2xx."""
    def final_arrived() -> bool:
        sent = [w for w in _wire(phone) if w[0] and w[1].startswith(method + " ")]
        return len(sent) >= 2 and any(not w[0] and w[2] == sent[1][2] and w[1].startswith("SIP/2.0 2")
                                      for w in _wire(phone))

    wait_until(final_arrived, 5, what=f"the 2xx to {phone.name}'s second {method}")
    lines = [w for w in _wire(phone) if w[2].endswith(" " + method)]
    first = next(i for i, w in enumerate(lines) if w[0] and w[1].startswith(method + " "))
    sent1, got1, sent2 = lines[first], lines[first + 1], lines[first + 2]
    n = int(sent1[2].split()[0])
    assert got1[:3] == (False, got1[1], f"{n} {method}") and got1[1].split()[1] == str(challenge), lines
    assert sent2[0] and sent2[1].startswith(method + " ") and sent2[2] == f"{n + 1} {method}", lines
    final = next(w for w in lines[first + 3:] if not w[0] and w[2] == f"{n + 1} {method}"
                 and not w[1].startswith("SIP/2.0 1"))
    assert final[1].startswith("SIP/2.0 2"), lines
    assert all(w[3] == proxy for w in lines), lines


def test_phones_answer_digest_challenges_for_register_invite_message_subscribe(authed: Kamailio, phones) -> None:
    from pysiptest import Answered, MessageReceived, RequestReceived, ResponseReceived, SubscriptionRequested

    alice, bob = phones["alice"], phones["bob"]
    proxy = (authed.host, authed.port)
    _challenged_then_accepted(alice, "REGISTER", 401, proxy)

    alice.send_message(bob, "hi")
    assert bob.expect(MessageReceived, 5).text == "hi"
    challenge = alice.expect(ResponseReceived, 5, method="MESSAGE")
    assert challenge.status == 407
    assert 'algorithm=SHA-256' in challenge.message.header("Proxy-Authenticate")
    _challenged_then_accepted(alice, "MESSAGE", 407, proxy)

    alice.subscribe(bob, "presence")
    bob.expect(SubscriptionRequested, 5).subscription.accept()
    _challenged_then_accepted(alice, "SUBSCRIBE", 407, proxy)

    call = alice.call(bob)
    incoming = bob.wait_for_call(5)
    # Kamailio took the credentials it checked: they do not reach Bob
    assert incoming.request.header("Proxy-Authorization") is None
    incoming.answer()
    alice.expect(Answered, 5, call=call)
    _challenged_then_accepted(alice, "INVITE", 407, proxy)
    call.hangup()
    bob.expect(RequestReceived, 5, method="BYE")


def test_wrong_password_is_refused_on_the_wire(authed: Kamailio) -> None:
    from pysiptest import Engine, Phone, trace

    with Engine() as eng:
        trace.enable(eng, 100)
        mallory = Phone("alice", engine=eng, proxy=(authed.host, authed.port), password="guess")
        with pytest.raises(AssertionError, match="could not register: 401"):
            mallory.register(timeout=5)
        statuses = [w[1] for w in _wire(mallory) if not w[0]]
        assert statuses == ["SIP/2.0 401 Unauthorized", "SIP/2.0 401 Unauthorized"]


def test_call_is_record_routed_and_in_dialog_requests_pass_through_kamailio(authed: Kamailio, phones) -> None:
    from pysiptest import Answered, InfoReceived, RequestReceived, eventpkg

    alice, bob = phones["alice"], phones["bob"]
    proxy = (authed.host, authed.port)
    call = alice.call(bob)
    incoming = bob.wait_for_call(5)
    rr = incoming.request.header("Record-Route")
    assert rr is not None and f"{authed.host}:{authed.port}" in rr and ";lr" in rr
    incoming.answer()
    alice.expect(Answered, 5, call=call)
    call.send_info(eventpkg.dtmf_relay("7"))
    assert bob.expect(InfoReceived, 5).signal == "7"
    call.update()
    bob.expect(RequestReceived, 5, method="UPDATE")
    incoming.hangup()  # the callee's BYE follows the route set back through Kamailio
    alice.expect(RequestReceived, 5, method="BYE")
    cid = call.call_id
    a = [w for w in _wire(alice) if w[2].split()[-1] in ("ACK", "INFO", "UPDATE", "BYE")]
    b = [w for w in _wire(bob) if w[2].split()[-1] in ("ACK", "INFO", "UPDATE", "BYE")]
    # Alice: the ACK to the 407 (CSeq 1, hop by hop), then the dialog's ACK, INFO, UPDATE (CSeq 2, 3, 4)
    assert [(w[0], w[1].split()[0], w[2]) for w in a if w[1][0] != "S"] == [
        (True, "ACK", "1 ACK"), (True, "ACK", "2 ACK"), (True, "INFO", "3 INFO"), (True, "UPDATE", "4 UPDATE"),
        (False, "BYE", "1 BYE")], a
    assert [(w[0], w[1].split()[0], w[2]) for w in b if w[1][0] != "S"] == [
        (False, "ACK", "2 ACK"), (False, "INFO", "3 INFO"), (False, "UPDATE", "4 UPDATE"), (True, "BYE", "1 BYE")], b
    assert [w[1] for w in a if w[1][0] == "S"] == ["SIP/2.0 200 OK"] * 3  # to INFO, UPDATE; ours to BYE
    # every one of them, and every answer, went to or came from Kamailio, never phone to phone
    assert all(w[3] == proxy for w in a + b), a + b
    assert {e.call_id for e in __import__("pysiptest").trace.ladder(bob) if e.cseq.endswith("INFO")} == {cid}


def test_message_is_relayed_to_the_registered_user(authed: Kamailio, phones) -> None:
    from pysiptest import MessageReceived, ResponseReceived

    alice, carol = phones["alice"], phones["carol"]
    alice.send_message(carol, "lunch at 12?")
    got = carol.expect(MessageReceived, 5)
    assert got.text == "lunch at 12?" and got.sender == f"sip:alice@{authed.domain}"
    assert got.message.header("Record-Route") is None  # MESSAGE makes no dialog: not record-routed
    statuses = []
    while True:
        r = alice.expect(ResponseReceived, 5, method="MESSAGE")
        statuses.append(r.status)
        if r.status != 407:
            break
    assert statuses == [407, 200]
    # Carol received it from Kamailio
    inbound = [w for w in _wire(carol) if not w[0] and w[1].startswith("MESSAGE ")]
    assert [w[3] for w in inbound] == [(authed.host, authed.port)]


@pytest.mark.parametrize("event", ["presence", "dialog"])
def test_subscribe_and_notify_are_relayed_between_the_users(authed: Kamailio, phones, event: str) -> None:
    from pysiptest import NotifyReceived, SubscriptionRequested, eventpkg

    alice, bob = phones["alice"], phones["bob"]
    sub = alice.subscribe(bob, event)
    req = bob.expect(SubscriptionRequested, 5)
    assert req.event == event
    rr = req.subscription.request.header("Record-Route")
    assert rr is not None and f"{authed.host}:{authed.port}" in rr
    body = (eventpkg.pidf(bob.aor, "open", note="at my desk") if event == "presence"
            else eventpkg.dialog_info(bob.aor, 0))
    req.subscription.accept(body=body)
    first = alice.expect(NotifyReceived, 5)
    assert first.event == event and first.state == "active" and first.body == body
    # a later state change, in the subscription's dialog through Kamailio
    later = (eventpkg.pidf(bob.aor, "closed") if event == "presence"
             else eventpkg.dialog_info(bob.aor, 1, [("d1", "confirmed", "initiator")]))
    req.subscription.notify(later)
    second = alice.expect(NotifyReceived, 5)
    assert second.body == later and second.subscription is sub
    notifies = [w for w in _wire(alice) if w[1].startswith("NOTIFY ")]
    assert len(notifies) == 2 and all(w[3] == (authed.host, authed.port) for w in notifies)
    assert [w[2] for w in notifies] == ["1 NOTIFY", "2 NOTIFY"]


def test_refer_in_a_call_is_relayed_and_the_transfer_completes(authed: Kamailio, phones) -> None:
    from pysiptest import Answered, RequestReceived, TransferRequested

    alice, bob, carol = phones["alice"], phones["bob"], phones["carol"]
    call = alice.call(bob)
    incoming = bob.wait_for_call(5)
    incoming.answer()
    alice.expect(Answered, 5, call=call)
    xfer = call.transfer(carol)
    assert bob.expect(TransferRequested, 5).target == carol.aor
    to_carol = carol.wait_for_call(5)
    assert to_carol.request.header("Referred-By") == f"<{alice.aor}>"
    to_carol.answer()
    assert xfer.wait(10) == 200
    bob.expect(RequestReceived, 5, method="BYE")  # the transferor hung up on success
    refer = [w for w in _wire(bob) if w[1].startswith("REFER ")]
    assert len(refer) == 1 and refer[0][3] == (authed.host, authed.port) and refer[0][2].endswith(" REFER")
    sipfrags = [w for w in _wire(alice) if w[1].startswith("NOTIFY ") and not w[0]]
    assert len(sipfrags) >= 2 and all(w[3] == (authed.host, authed.port) for w in sipfrags)


@needs_kamailio
def test_unanswered_tcp_callee_goes_to_voicemail_after_the_no_answer_time() -> None:
    """Bob's Chipmunk5000 talks TCP: Kamailio still gives up ringing it after NOANSWER_MS (5 s), CANCELs it
    and forwards the call to the voicemail box with Diversion reason=no-answer (with fr_inv alone, tm would
    wait for fr_timer on a TCP branch)."""
    from pysiptest import Answered, Engine, IncomingCall, Phone, RequestReceived, find_device

    with Kamailio() as kam, Engine() as eng:
        box = Phone("voicemail", find_device("Voicemail")(), engine=eng, proxy=(kam.host, kam.port))
        alice = Phone("alice", find_device("Squirrel350")(), engine=eng, proxy=(kam.host, kam.port))
        bob = Phone("bob", find_device("Chipmunk5000")(), engine=eng, proxy=(kam.host, kam.port))
        assert bob.transport == "tcp"
        for p in (box, alice, bob):
            p.register(timeout=5)
        call = alice.call(bob)
        bob.wait_for_call(5)
        t0 = time.monotonic()
        bob.expect(RequestReceived, 10, method="CANCEL")
        waited = time.monotonic() - t0
        assert 4.5 <= waited <= 7.0, f"Kamailio rang Bob for {waited:.1f} s, expected the 5 s no-answer time"
        invite = box.expect(IncomingCall, 5).call.request
        assert invite.header("Diversion") is not None and "reason=no-answer" in invite.header("Diversion")
        alice.expect(Answered, 5, call=call)
        call.hangup()
