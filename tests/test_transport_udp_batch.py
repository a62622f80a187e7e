"""UDP sends of one loop iteration go out in one sendmmsg per socket (engine.c); a datagram that cannot be
sent is still reported on its own, with its transaction and dialog, and the datagrams after it in the
batch still go.  The peer is a raw UDP socket, so every datagram is seen on the wire."""
from __future__ import annotations

import socket
import time

from pysiptest import _core
from transport_util import wait_event

HOST = "127.0.0.1"


def _recv_all(s: socket.socket, want: int, timeout: float = 2.0) -> list[bytes]:
    out: list[bytes] = []
    end = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            out.append(s.recv(65535))
        except socket.timeout:
            break
    return out


def _ok_for(invite: bytes, contact: str) -> bytes:
    head = invite.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    keep = [h for h in head[1:] if h.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq")]
    to = next(h for h in head[1:] if h.lower().startswith("to:"))
    return ("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + f"\r\n{to};tag=peer\r\nContact: <{contact}>\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def test_a_failed_datagram_in_a_batch_is_reported_alone_and_the_rest_are_sent() -> None:
    eng = _core.Engine(t1=0.1)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        peer.bind((HOST, 0))
        pport = peer.getsockname()[1]
        tid, _ = eng.listen_udp(HOST)
        txns = []
        for i in range(3):
            hdrs = [("From", f"<sip:a@x>;tag=a{i}"), ("To", "<sip:b@x>"), ("Call-ID", f"batch-{i}"),
                    ("CSeq", "1 INVITE"), ("Contact", f"<sip:a@{HOST}>")]
            txns.append(eng.request(tid, HOST, pport, "INVITE", f"sip:b@{HOST}:{pport}", hdrs))
        invites = _recv_all(peer, 3)
        assert len(invites) == 3
        by_cid = {next(h for h in i.decode().split("\r\n") if h.startswith("Call-ID")).split(": ")[1]: i
                  for i in invites}
        # one burst: the middle 200's Contact is the broadcast address, which sendmmsg refuses (EACCES); the
        # engine ACKs all three in one loop iteration
        a_addr = (HOST, int(invites[0].decode().split("Via: SIP/2.0/UDP ")[1].split(";")[0].split(":")[1]))
        for cid, contact in (("batch-0", f"sip:b@{HOST}:{pport}"), ("batch-1", "sip:b@255.255.255.255:5060"),
                             ("batch-2", f"sip:b@{HOST}:{pport}")):
            peer.sendto(_ok_for(by_cid[cid], contact), a_addr)
        acks = _recv_all(peer, 2)
        assert sorted(a.split(b"\r\n")[0] for a in acks) == [f"ACK sip:b@{HOST}:{pport} SIP/2.0".encode()] * 2
        got = {next(h for h in a.decode().split("\r\n") if h.startswith("Call-ID")).split(": ")[1] for a in acks}
        assert got == {"batch-0", "batch-2"}
        seen: list = []
        err = wait_event(eng, "transport_error", seen=seen)
        assert "send failed: Permission denied" in err.info and err.src_host == "255.255.255.255", err
        while len([e for e in seen if e.kind == "response"]) < 3:
            seen.append(wait_event(eng, "response"))
        dialog_of = {e.txn_id: e.dialog_id for e in seen if e.kind == "response"}
        assert err.txn_id == txns[1] and err.dialog_id == dialog_of[txns[1]] != 0
        assert eng.counts()["tx_messages"] == 5  # 3 INVITEs, 2 ACKs: the refused one is not counted
        assert _recv_all(peer, 1, 0.3) == []
    finally:
        peer.close()
        eng.close()
