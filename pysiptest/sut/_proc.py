"""Process helpers for systems under test: free ports, bounded waits, and
child processes that are stopped by their own PID only."""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Callable, Mapping, Sequence

__all__ = ["free_port", "wait_until", "ManagedProcess"]


def _family(host: str) -> int:
    """Return the socket family for a literal IPv4 or IPv6 address."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError as exc:
        raise ValueError(f"free_port needs a literal IP address, got {host!r}") from exc
    return socket.AF_INET6 if addr.version == 6 else socket.AF_INET


def _bind_ok(family: int, kind: int, host: str, port: int) -> bool:
    """Return True when ``host:port`` can be bound for the given socket kind."""
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # Same option the servers set: a port in TIME_WAIT is usable.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = "127.0.0.1", udp: bool = True, tcp: bool = True,
              attempts: int = 200) -> int:
    """Return a port that is currently free on ``host`` for UDP and/or TCP.

    ``host`` is a literal IPv4 or IPv6 address (``"::1"`` or ``"[::1]"``).
    The kernel picks an ephemeral port for the first protocol asked for; the
    other protocol is then checked on that same port. The port is only known
    to be free at the time of the check, so callers should start their
    server promptly (and retry on a bind failure if it matters).

    Raises ``RuntimeError`` when no port was found after ``attempts`` tries.
    """
    if not (udp or tcp):
        raise ValueError("free_port: ask for at least one of udp or tcp")
    host = host.strip("[]")
    family = _family(host)
    first = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    for _ in range(attempts):
        with socket.socket(family, first) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if udp and tcp and not _bind_ok(family, socket.SOCK_STREAM, host, port):
            continue
        return port
    raise RuntimeError(f"no port free for {'UDP' if udp else ''}{'+' if udp and tcp else ''}"
                       f"{'TCP' if tcp else ''} on {host} after {attempts} attempts")


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05,
               what: str = "condition") -> None:
    """Call ``predicate`` until it returns a true value or ``timeout`` passes.

    Raises ``TimeoutError`` naming ``what`` when the time runs out. The
    predicate is always called at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, remaining))


class ManagedProcess:
    """A child process we started, logging stdout and stderr to a file.

    Only this PID is ever signalled: ``stop()`` sends SIGTERM to it, waits,
    then SIGKILL. A server that forks (Kamailio) is expected to take its own
    children down when its main process gets SIGTERM.
    """

    def __init__(self, argv: Sequence[str], log_path: str | os.PathLike[str],
                 cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        """Start ``argv`` at once; its output goes to ``log_path`` (truncated)."""
        self.argv: list[str] = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        try:
            self._popen: subprocess.Popen[bytes] = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, cwd=cwd,
                env=dict(env) if env is not None else None,
                # Own process group: a Ctrl-C in the terminal is for us, not
                # for it; we still signal the PID only, never the group.
                start_new_session=True)
        except BaseException:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        """The PID of the process we started."""
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once the process has ended (negative: killed by signal)."""
        return self._popen.poll()

    def alive(self) -> bool:
        """True while the process has not exited (and been reaped)."""
        return self._popen.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait at most ``timeout`` seconds for the exit; return its status.

        Raises ``subprocess.TimeoutExpired`` if it is still running.
        """
        return self._popen.wait(timeout=timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop the process: SIGTERM, wait up to ``timeout``, then SIGKILL.

        Idempotent: calling it on a stopped process just returns its status.
        """
        try:
            if self._popen.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self._popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self._popen.wait(timeout=timeout)
            return self._popen.returncode
        finally:
            if not self._log.closed:
                self._log.close()

    def _signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to our PID only, unless it already exited."""
        try:
            self._popen.send_signal(sig)
        except ProcessLookupError:
            pass

    def log_tail(self, n: int = 40) -> str:
        """Return the last ``n`` lines of the process log (empty if none)."""
        try:
            with open(self.log_path, "rb") as fh:
                lines = deque(fh, maxlen=n)
        except OSError:
            return ""
        return b"".join(lines).decode("utf-8", "replace")

    def output(self) -> str:
        """Everything the process printed so far (its log)."""
        try:
            return Path(self.log_path).read_text("utf-8", "replace")
        except OSError:
            return ""

    def wait_for_output(self, pattern: str, timeout: float, count: int = 1,
                        name: str = "") -> list["re.Match[str]"]:
        """Wait until ``pattern`` (a regex, multi-line) matched the output ``count`` times; the matches.
        Raises AssertionError, with the output, when the process exits first or the time runs out."""
        rx = re.compile(pattern, re.MULTILINE)
        found: list[re.Match[str]] = []
        who = name or os.path.basename(self.argv[0])

        def ready() -> bool:
            found[:] = list(rx.finditer(self.output()))
            if len(found) >= count:
                return True
            if not self.alive():
                found[:] = list(rx.finditer(self.output()))  # the last lines may have come with the exit
                if len(found) >= count:
                    return True
                raise AssertionError(f"{who} exited with {self.returncode} before printing {pattern!r} "
                                     f"x{count}:\n{self.output()}")
            return False

        try:
            wait_until(ready, timeout, what=f"{who} printing {pattern!r} x{count}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; output so far:\n{self.output()[-6000:]}") from None
        return found

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.returncode}"
        return f"<ManagedProcess pid={self.pid} {state} {self.argv[0]!r}>"
