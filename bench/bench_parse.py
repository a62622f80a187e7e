"""Parse rate of pysiptest.parse on a typical INVITE (from Python, so it includes the binding's cost).

    .venv/bin/python bench/bench_parse.py [N]
"""
from __future__ import annotations

import sys
import time

import pysiptest

INVITE = (
    b"INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"Record-Route: <sip:127.0.0.1:5060;lr>\r\n"
    b"From: \"Alice\" <sip:alice@127.0.0.1>;tag=1928301774\r\n"
    b"To: <sip:bob@127.0.0.1>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\nMax-Forwards: 70\r\n"
    b"Contact: <sip:alice@127.0.0.1:5061>\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 131\r\n\r\n"
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    parse = pysiptest.parse
    t0 = time.perf_counter()
    for _ in range(n):
        parse(INVITE)
    dt = time.perf_counter() - t0
    print(f"parse: {n} INVITEs ({len(INVITE)} bytes) in {dt:.3f} s = {n / dt:,.0f} msg/s, {dt / n * 1e6:.2f} us/msg")


if __name__ == "__main__":
    main()
