"""The ``pysiptest`` command: ``phone``, ``pbx``, ``devices``."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import NoReturn, Optional, Sequence

from pysiptest.sut import parse_target


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
    host, port = args.listen
    engine = Engine(user_agent=device.user_agent)
    stop = _wait_for_signal()
    try:
        proxy = args.register
        phone = Phone(args.user, device, engine=engine, host=host, port=port, proxy=proxy)
        print(f"phone {phone.user} ({device.model}) listening on {_hostport(host, phone.port)}", flush=True)
        if proxy is not None:
            phone.register()
            print(f"registered {phone.aor} at {_hostport(*proxy)}", flush=True)
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


def cmd_pbx(args: argparse.Namespace) -> int:
    """Run the reference PBX in the foreground until SIGINT/SIGTERM."""
    from pysiptest.engine import Engine
    from pysiptest.pbx import ReferencePBX

    host, port = args.listen
    engine = Engine(user_agent="pysiptest-pbx")
    stop = _wait_for_signal()
    try:
        pbx = ReferencePBX(engine, host, port)
        print(f"reference PBX listening on {_hostport(host, pbx.port)} (domain {pbx.domain})", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        engine.close()
    return 0


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
    ph.add_argument("--listen", type=_listen, required=True, help="HOST:PORT to listen on (UDP)")
    ph.add_argument("--device", default=None, help="device model, e.g. Squirrel350")
    ph.add_argument("--user", default="pysiptest", help="SIP user name (default pysiptest)")
    ph.add_argument("--answer-after", type=_seconds, default=0.0, help="seconds before answering (default 0)")
    ph.add_argument("--register", type=_listen, default=None, help="registrar HOST:PORT to register with")
    ph.set_defaults(func=cmd_phone)
    pb = sub.add_parser("pbx", help="run the reference PBX")
    pb.add_argument("--listen", type=_listen, required=True, help="HOST:PORT to listen on (UDP)")
    pb.set_defaults(func=cmd_pbx)
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
