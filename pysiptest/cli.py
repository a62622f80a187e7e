"""The ``pysiptest`` command: ``phone``, ``pbx``, ``load``, ``devices``."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, NoReturn, Optional, Sequence

from pysiptest.sut import parse_target

if TYPE_CHECKING:
    from pysiptest.device import Device
    from pysiptest.transport import TlsConfig


def _listen(value: str) -> tuple[str, int]:
    try:
        return parse_target(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:5070 or [::1]:5070)") from None


def _seconds(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 <= v <= 3600:
        raise argparse.ArgumentTypeError("seconds must be between 0 and 3600")
    return v


def _timer(value: str) -> int:
    """--timer: a whole number of seconds for Session-Expires (RFC 4028)."""
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if not 1 <= v <= 86400:
        raise argparse.ArgumentTypeError("--timer must be between 1 and 86400 seconds")
    return v


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _wait_for_signal() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _media(text: str) -> tuple[str, object]:
    """--media: echo | silence | tone:HZ | pcap:FILE | wav:FILE."""
    kind, _, value = text.partition(":")
    if kind in ("echo", "silence") and not value:
        return kind, None
    if kind == "tone":
        try:
            hz = float(value)
        except ValueError:
            hz = -1.0
        if not 0 < hz < 4000:
            raise argparse.ArgumentTypeError(f"tone needs a frequency in (0, 4000) Hz: tone:440, got {text!r}")
        return kind, hz
    if kind == "pcap" and value:
        return kind, value
    if kind == "wav" and value:
        from pysiptest.wav import read_pcm

        try:
            read_pcm(value)
        except (OSError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return kind, value
    raise argparse.ArgumentTypeError(f"--media must be echo, silence, tone:HZ, pcap:FILE or wav:FILE, got {text!r}")


def cmd_phone(args: argparse.Namespace) -> int:
    """Run one emulated phone that answers every call until SIGINT/SIGTERM, one line per call event."""
    from pysiptest.device import Device, find_device
    from pysiptest.engine import Engine
    from pysiptest.events import Event
    from pysiptest.errors import ExpectationError
    from pysiptest.phone import Phone

    cls = find_device(args.device) if args.device else Device
    device = cls()
    device.auto_answer_after = args.answer_after  # type: ignore[misc]
    if args.hold is not None:
        device.hold_time = args.hold  # type: ignore[misc]
    if args.media is not None:
        kind, value = args.media
        device.media_source = kind  # type: ignore[misc]
        if kind == "tone":
            device.tone_hz = value  # type: ignore[misc]
        elif kind == "pcap":
            device.media_pcap = value  # type: ignore[attr-defined]
        elif kind == "wav":  # replayed as a PCMU capture made from the file
            import atexit
            import os
            import tempfile

            from pysiptest.wav import wav_to_pcap

            fd, clip = tempfile.mkstemp(prefix="pysiptest-wav-", suffix=".pcap")
            os.close(fd)
            atexit.register(os.unlink, clip)
            wav_to_pcap(value, clip, device.ptime)
            device.media_source, device.media_pcap, device.codecs = "pcap", clip, [0]  # type: ignore[misc]
    if args.srtp is not None:
        device.srtp = args.srtp  # type: ignore[misc]
    _apply_extensions(device, args)
    host, port = args.listen
    engine = Engine(user_agent=device.user_agent)
    stop = _wait_for_signal()
    try:
        proxy = args.register
        tls = _tls_config(args)
        phone = Phone(args.user, device, engine=engine, host=host, port=port, proxy=proxy,
                      transport=args.transport, tls=tls, password=args.password, fast=True if args.fast else None,
                      fast_summaries=False)  # the command only counts fast calls: no Python work per call
        over = "" if args.transport == "udp" else f" over {args.transport.upper()}"
        print(f"phone {phone.user} ({device.model}) listening on {_hostport(host, phone.port)}{over}", flush=True)
        if proxy is not None:
            phone.register()
            print(f"registered {phone.aor} at {_hostport(*proxy)}", flush=True)
        reported, reported_bad = 0, 0
        while phone.fast and not stop.wait(1.0):  # calls run in C: one line a second, not one per call
            n, answered = phone.fast_counts()
            if n != reported:
                bad = (n - answered) - reported_bad
                print(f"{time.strftime('%H:%M:%S')} {n} calls ended ({n - reported} new, {bad} not answered)",
                      flush=True)
                reported, reported_bad = n, n - answered
        while not stop.is_set():
            try:
                ev = phone.expect(Event, timeout=0.2)
            except ExpectationError:
                continue
            call = getattr(ev, "call", None)
            who = f" call {call.call_id[:12]} {call.remote}" if call is not None else ""
            print(f"{time.strftime('%H:%M:%S')} {ev.describe()}{who}", flush=True)
        phone.close()
    finally:
        engine.close()
    return 0


def _apply_extensions(device: "Device", args: argparse.Namespace) -> None:
    """--prack and --timer onto the device profile (instance attributes: the model's class stays as it is)."""
    if (args.prack or args.timer is not None) and args.fast:
        raise ValueError("--prack and --timer need calls handled in Python; they do not work with --fast")
    supported = list(device.supported)
    if args.prack:
        # RFC 3262: 100rel in Supported and Require of our INVITEs; our 180/183 go reliably when the caller
        # offers or requires 100rel
        supported += [] if "100rel" in supported else ["100rel"]
        device.require = [*device.require, *([] if "100rel" in device.require else ["100rel"])]  # type: ignore[misc]
        device.reliable_provisionals = True  # type: ignore[misc]
    if args.timer is not None:
        # RFC 4028: ask for (and, as callee, grant) this Session-Expires; a lab timer may be below the RFC's
        # 90 s floor, so Min-SE follows it down
        supported += [] if "timer" in supported else ["timer"]
        device.session_expires = args.timer  # type: ignore[misc]
        device.min_se = min(device.min_se, args.timer)  # type: ignore[misc]
    device.supported = supported  # type: ignore[misc]


def cmd_pbx(args: argparse.Namespace) -> int:
    """Run the reference PBX in the foreground until SIGINT/SIGTERM."""
    from pysiptest.engine import Engine
    from pysiptest.pbx import ReferencePBX
    from pysiptest.pbx.users import load_users

    host, port = args.listen
    engine = Engine(user_agent="pysiptest-pbx")
    stop = _wait_for_signal()
    try:
        users = load_users(args.users) if args.users else None
        if bool(args.tls) != bool(args.cert and args.key):
            raise ValueError("--tls HOST:PORT needs --cert and --key (PEM files), and they need --tls")
        from pysiptest.transport import TlsConfig

        tls = TlsConfig(cert=args.cert, key=args.key, ca=args.ca) if args.tls else None
        if args.tls and args.tls[0] != host:
            raise ValueError(f"--tls must listen on the same host as --listen ({host})")
        pbx = ReferencePBX(engine, host, port, users=users, no_answer_timeout=args.no_answer,
                           auth_algorithm=args.auth, challenge_requests=False if args.no_challenge else None,
                           tls=tls, tls_port=args.tls[1] if args.tls else 0)
        print(f"reference PBX listening on {_hostport(host, pbx.port)} (domain {pbx.domain})"
              + (f", TLS on {_hostport(host, pbx.tls_port)}" if pbx.tls_transport_id is not None else "")
              + (f", {len(users)} users from {args.users}" if users is not None else ""), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        engine.close()
    return 0


def _tls_config(args: argparse.Namespace) -> Optional[TlsConfig]:
    """The TLS settings of ``--cert/--key/--ca/--no-verify`` with ``--transport tls``; None for udp/tcp."""
    if args.transport == "tls":
        from pysiptest.transport import TlsConfig
        return TlsConfig(cert=args.cert, key=args.key, ca=args.ca, verify=not args.no_verify)
    if args.cert or args.key or args.ca or args.no_verify:
        raise ValueError("--cert, --key, --ca and --no-verify need --transport tls")
    return None


def _add_tls_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cert", default=None, help="TLS: our certificate chain (PEM)")
    p.add_argument("--key", default=None, help="TLS: the private key of --cert (PEM)")
    p.add_argument("--ca", default=None, help="TLS: trusted CA file or directory (default: the system store)")
    p.add_argument("--no-verify", action="store_true", help="TLS: do not verify peers (lab use; logged)")


def cmd_load(args: argparse.Namespace) -> int:
    """Place calls at a rate from the C fast path and print (or write) the statistics."""
    import json

    from pysiptest.engine import Engine
    from pysiptest.load import run_load

    host, port = args.listen
    tls = _tls_config(args)
    engine = Engine(user_agent="pysiptest-load")
    try:
        def progress(st: dict[str, object]) -> None:
            if not args.quiet:
                print(f"{st['started']} started, {st['answered']} answered, {st['failed']} failed, "
                      f"{st['active']} active", file=sys.stderr, flush=True)

        res = run_load(engine, args.transport, args.target, args.rate, args.calls, args.concurrency, args.hold,
                       host=host, port=port, progress=progress, tls=tls)
    finally:
        engine.close()
    print(res.describe(), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(res.to_json() + "\n")
    if args.csv:
        with open(args.csv, "w", encoding="utf-8", newline="") as fh:
            fh.write(res.to_csv())
    if args.json == "-":
        print(json.dumps(res.to_dict()))
    return 0 if res.ok else 1


def _positive_int(value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def _rate(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of calls per second") from None
    if not 0 < v <= 100000:
        raise argparse.ArgumentTypeError("rate must be between 0 and 100000 calls/s")
    return v


def cmd_devices(args: argparse.Namespace) -> int:
    """List the device models that can be found."""
    from pysiptest.device import find_device, known_devices

    for name in known_devices():
        cls = find_device(name)
        print(f"{name:16} {cls.user_agent:24} {(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the pysiptest command."""
    p = _Parser(prog="pysiptest", description="SIP test framework: emulated phones and a reference PBX")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ph = sub.add_parser("phone", help="run one emulated phone that answers calls")
    ph.add_argument("--listen", type=_listen, required=True, help="HOST:PORT to listen on (IPv6: [::1]:PORT)")
    ph.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp", help="transport (default udp)")
    _add_tls_options(ph)
    ph.add_argument("--device", default=None, help="device model, e.g. Squirrel350")
    ph.add_argument("--user", default="pysiptest", help="SIP user name (default pysiptest)")
    ph.add_argument("--answer-after", type=_seconds, default=0.0, help="seconds before answering (default 0)")
    ph.add_argument("--media", type=_media, default=None,
                    help="what the phone sends: echo, silence, tone:HZ, pcap:FILE or wav:FILE (8 kHz 16-bit mono, "
                         "sent as PCMU) (default: the device's)")
    ph.add_argument("--srtp", default=None, choices=("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32",
                                                     "AEAD_AES_128_GCM"),
                    help="SRTP suite to offer and require (RTP/SAVP with a=crypto, RFC 4568)")
    ph.add_argument("--register", type=_listen, default=None, help="registrar HOST:PORT to register with")
    ph.add_argument("--password", default=None,
                    help="digest password of --user, for --register and for any 401/407 challenge")
    ph.add_argument("--prack", action="store_true",
                    help="100rel (RFC 3262): Supported/Require 100rel, reliable 180/183 when the caller offers it")
    ph.add_argument("--timer", type=_timer, default=None, metavar="SECONDS",
                    help="session timer (RFC 4028): Session-Expires asked for and granted, refresh at half")
    ph.add_argument("--fast", action="store_true", help="run calls on the C fast path (summaries only, no media)")
    ph.add_argument("--hold", type=_seconds, default=None, help="fast path: hang up this many seconds after answering")
    ph.set_defaults(func=cmd_phone)
    pb = sub.add_parser("pbx", help="run the reference PBX")
    pb.add_argument("--listen", type=_listen, required=True, help="HOST:PORT to listen on (UDP and TCP)")
    pb.add_argument("--users", default=None, help="users FILE, one name:password a line (default: anyone)")
    pb.add_argument("--auth", default=None, metavar="ALGORITHM",
                    help="challenge REGISTER with digest auth: MD5, SHA-256, SHA-512-256 (needs --users); the "
                         "users' INVITE, MESSAGE, SUBSCRIBE and REFER are challenged with 407 too")
    pb.add_argument("--no-challenge", action="store_true",
                    help="with --auth: challenge REGISTER only, trust the registered users' calls and messages")
    pb.add_argument("--tls", type=_listen, default=None, metavar="HOST:PORT",
                    help="also listen for TLS (sips:) there (same host as --listen; needs --cert and --key)")
    pb.add_argument("--cert", default=None, help="PEM certificate (chain) for --tls")
    pb.add_argument("--key", default=None, help="PEM private key for --tls")
    pb.add_argument("--ca", default=None,
                    help="with --tls: PEM file or hashed directory of the CAs of the phones' certificates "
                         "(default: the system store)")
    pb.add_argument("--no-answer", type=_seconds, default=20.0,
                    help="seconds of ringing before a call goes to voicemail (default 20)")
    pb.set_defaults(func=cmd_pbx)
    ld = sub.add_parser("load", help="place calls at a rate (C fast path) and print statistics")
    ld.add_argument("--target", type=_listen, required=True, help="HOST:PORT to call")
    ld.add_argument("--rate", type=_rate, required=True, help="calls per second")
    ld.add_argument("--calls", type=_positive_int, required=True, help="number of calls")
    ld.add_argument("--concurrency", type=_positive_int, default=0, help="calls at once at most (0 = no limit)")
    ld.add_argument("--hold", type=_seconds, default=0.0, help="seconds from answer to BYE (default 0)")
    ld.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp", help="transport (default udp)")
    ld.add_argument("--listen", type=_listen, default=("127.0.0.1", 0), help="local HOST:PORT (default 127.0.0.1:0)")
    _add_tls_options(ld)
    ld.add_argument("--json", default=None, help="write the statistics as JSON to FILE")
    ld.add_argument("--csv", default=None, help="write the statistics as CSV to FILE")
    ld.add_argument("--quiet", action="store_true", help="no progress lines")
    ld.set_defaults(func=cmd_load)
    dv = sub.add_parser("devices", help="list known device models")
    dv.set_defaults(func=cmd_devices)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; errors are one line on stderr with exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 0
    except (ValueError, KeyError, OSError, RuntimeError, AssertionError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"pysiptest {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
