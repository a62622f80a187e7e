"""Kamailio as a system under test, started from the config kept in the repo.

Each :class:`Kamailio` runs its own ``kamailio`` process in the foreground,
unprivileged options only, in a fresh temporary working directory, listening
on UDP and TCP on one ``host:port`` (a free port unless given). JSON-RPC is
answered over HTTP on the same TCP port at ``/RPC``; :meth:`Kamailio.rpc`
calls it and :meth:`Kamailio.set_dnd` uses it to keep DND state in the
``dnd`` htable. Given a certificate and key (``tls_cert``/``tls_key``), it
also listens for TLS on ``tls_port`` (tls.so, with a ``tls.cfg`` written in
the working directory).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import weakref
from pathlib import Path
from typing import Any

from ._proc import ManagedProcess, free_port
from .base import SystemUnderTest

__all__ = ["Kamailio", "RunningKamailio", "KamailioError", "KamailioRpcError", "DEFAULT_CONFIG"]

log = logging.getLogger(__name__)

#: The Kamailio config shipped with pysiptest.
DEFAULT_CONFIG = Path(__file__).with_name("kamailio") / "kamailio.cfg"

_NOT_INSTALLED = "kamailio is not installed: apt-get install kamailio"


class KamailioError(RuntimeError):
    """Kamailio could not be started or did not become ready."""


class KamailioRpcError(RuntimeError):
    """A JSON-RPC call was answered with an error object."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        super().__init__(f"kamailio RPC {method} failed: {code} {message}")
        self.method = method
        self.code = code
        self.message = message


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False


def _cleanup(proc: ManagedProcess, workdir: Path | None) -> None:
    """Safety net run at garbage collection or interpreter exit: stop our PID."""
    if proc.alive():
        proc.stop(timeout=2.0)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


class Kamailio(SystemUnderTest):
    """A Kamailio proxy/registrar started and stopped by pysiptest.

    Args:
        host: literal IPv4 or IPv6 address to listen on.
        port: SIP port for UDP and TCP; ``None`` picks a free one at start.
        domain: SIP domain served (added as an alias); defaults to ``host``.
        config: Kamailio config file; defaults to :data:`DEFAULT_CONFIG`.
        binary: path or name of the kamailio executable.
        log_level: Kamailio ``debug`` level (2 = info, 3 = debug).
        ready_timeout: seconds to wait for the first OPTIONS to be answered.
        keep_workdir: keep the temp working dir (with ``kamailio.log``) after stop.
        shm_mb, pkg_mb: shared and private memory sizes (``-m`` and ``-M``).
        users: ``{user: password}`` for digest authentication, kept in a db_text
            database in the working dir.
        auth: challenge REGISTER (401) and calls from local users (407); default
            on when ``users`` are given, off otherwise.
        auth_algorithm: digest algorithm Kamailio offers (``SHA-256`` default, or ``MD5``).
        tls_cert, tls_key: PEM certificate (chain) and key to serve TLS with; when given,
            Kamailio also listens for TLS (``sips:``) on ``tls_port``. As a TLS client
            (relaying to a phone's TLS contact) it does not verify the phone's certificate.
        tls_port: TLS port; ``None`` picks a free one at start.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    name = "kamailio"
    transport = "udp"

    def __init__(self, host: str = "127.0.0.1", port: int | None = None,
                 domain: str | None = None, *, config: str | Path | None = None,
                 binary: str = "kamailio", log_level: int = 2, ready_timeout: float = 10.0,
                 keep_workdir: bool = False, shm_mb: int = 16, pkg_mb: int = 4,
                 users: dict[str, str] | None = None, auth: bool | None = None,
                 auth_algorithm: str = "SHA-256", tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None, tls_port: int | None = None) -> None:
        self.host = host.strip("[]")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("Kamailio TLS needs both tls_cert and tls_key")
        self.tls_cert = Path(tls_cert).resolve() if tls_cert is not None else None
        self.tls_key = Path(tls_key).resolve() if tls_key is not None else None
        self._fixed_tls_port = tls_port
        self.tls_port = tls_port if tls_port is not None else 0
        self.users = dict(users or {})
        self.auth = bool(self.users) if auth is None else auth
        self.auth_algorithm = auth_algorithm
        self._fixed_port = port
        self.port = port if port is not None else 0
        self._bracketed = f"[{self.host}]" if _is_ipv6(self.host) else self.host
        self.domain = domain if domain is not None else self._bracketed
        self.config = Path(config) if config is not None else DEFAULT_CONFIG
        self.binary = binary
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.keep_workdir = keep_workdir
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        self.workdir: Path | None = None
        self._proc: ManagedProcess | None = None
        self._finalizer: weakref.finalize | None = None

    # ----- lifecycle -------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """PID of the main kamailio process, or None when not started."""
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        """True while our kamailio process runs."""
        return self._proc is not None and self._proc.alive()

    def command(self) -> list[str]:
        """The kamailio command line for the current port and working dir."""
        if self.workdir is None:
            raise KamailioError("command() needs a working directory: call start()")
        exe = shutil.which(self.binary)
        if exe is None:
            raise KamailioError(_NOT_INSTALLED)
        defines = [f"SIP_ADDR={self._bracketed}", f"SIP_PORT={self.port}",
                   f"LOG_LEVEL={self.log_level}"]
        if self.domain.strip("[]") != self.host:
            # Only a real domain becomes an alias: an IP alias would match
            # every port on that IP, local UAs' contacts included.
            defines.append(f"SIP_DOMAIN={self.domain}")
        if self.auth:
            defines += ["WITH_AUTH", f'AUTH_DB_URL="text://{self.workdir / "db"}"',
                        f'AUTH_ALGORITHM="{self.auth_algorithm}"']
        if self.tls:
            defines += ["WITH_TLS", f"TLS_PORT={self.tls_port}",
                        f'TLS_CONFIG="{self.workdir / "tls.cfg"}"']
        return [
            exe, "-f", str(self.config),
            *(arg for define in defines for arg in ("-A", define)),
            "-DD",          # main process stays in the foreground: our PID
            "-E",           # log to stderr (captured in kamailio.log)
            "-Y", str(self.workdir),
            "-w", str(self.workdir),
            "-P", str(self.workdir / "kamailio.pid"),
            "-m", str(self.shm_mb),
            "-M", str(self.pkg_mb),
        ]

    def start(self) -> None:
        """Start kamailio and wait until it answers OPTIONS with 200.

        Raises ``KamailioError`` (a ``RuntimeError``) if kamailio is missing,
        exits, or is not ready within ``ready_timeout``; the message holds
        the tail of its log.
        """
        if self.alive():
            return
        if shutil.which(self.binary) is None:
            raise KamailioError(_NOT_INSTALLED)
        if not self.config.is_file():
            raise KamailioError(f"kamailio config not found: {self.config}")
        # A port picked by us may be taken by someone else before kamailio
        # binds it: then try again with another one.
        attempts = 1 if self._fixed_port is not None else 3
        for attempt in range(1, attempts + 1):
            if self._fixed_port is None:
                self.port = free_port(self.host)
            if self.tls and self._fixed_tls_port is None:
                self.tls_port = free_port(self.host, udp=False)
            try:
                self._launch()
                return
            except KamailioError as exc:
                bind_failed = "bind" in str(exc).lower()
                if attempt == attempts or not bind_failed:
                    raise
                log.warning("kamailio could not bind %s, retrying on another port", self.target)

    def _launch(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="pysiptest-kamailio-"))
        if self.auth:
            self._write_users()
        if self.tls:
            self._write_tls_config()
        argv = self.command()
        log.info("starting kamailio: %s", " ".join(argv))
        proc = ManagedProcess(argv, self.workdir / "kamailio.log", cwd=self.workdir)
        self._proc = proc
        self._finalizer = weakref.finalize(
            self, _cleanup, proc, None if self.keep_workdir else self.workdir)
        try:
            self._wait_ready()   # its errors carry the log tail
        except BaseException:
            self.stop()
            raise
        log.info("kamailio pid %d ready on %s", proc.pid, self.target)

    def _write_users(self) -> None:
        """The db_text database of auth_db: a ``version`` table and ``subscriber`` with plain passwords
        (``calculate_ha1``: Kamailio hashes them with the configured algorithm)."""
        assert self.workdir is not None
        db = self.workdir / "db"
        db.mkdir()

        def esc(v: str) -> str:
            if any(c in v for c in "\r\n\0"):
                raise KamailioError(f"user or password {v!r} has a line break or NUL")
            return v.replace("\\", "\\\\").replace(":", "\\:")

        (db / "version").write_text("id(int,auto) table_name(string) table_version(int) \n"
                                    "0:version:1\n1:subscriber:7\n")
        rows = "".join(f"{i}:{esc(u)}:{esc(self.domain)}:{esc(p)}\n"
                       for i, (u, p) in enumerate(self.users.items(), 1))
        (db / "subscriber").write_text("id(int,auto) username(string) domain(string) password(string) \n" + rows)

    def _write_tls_config(self) -> None:
        """tls.cfg of the tls module: our certificate as server; as client no verification (lab use:
        the phones' certificates are the test's own), TLS 1.2 or later both ways."""
        assert self.workdir is not None and self.tls_cert is not None and self.tls_key is not None
        for path in (self.tls_cert, self.tls_key):
            if not path.is_file():
                raise KamailioError(f"TLS file not found: {path}")
            if any(c in str(path) for c in "\r\n#[]="):
                raise KamailioError(f"TLS file path {str(path)!r} cannot go into tls.cfg")
        (self.workdir / "tls.cfg").write_text(
            "[server:default]\n"
            "method = TLSv1.2+\n"
            "verify_certificate = no\n"
            "require_certificate = no\n"
            f"certificate = {self.tls_cert}\n"
            f"private_key = {self.tls_key}\n"
            "\n"
            "[client:default]\n"
            "method = TLSv1.2+\n"
            "verify_certificate = no\n"
            "require_certificate = no\n")

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout
        family = socket.AF_INET6 if _is_ipv6(self.host) else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((self.host, 0))
            while True:
                if not self._proc.alive():
                    raise KamailioError(
                        f"kamailio exited with status {self._proc.returncode} during start "
                        f"on {self.target}:\n{self._proc.log_tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise KamailioError(
                        f"kamailio not ready on {self.target} after {self.ready_timeout:g}s "
                        f"(no 200 to OPTIONS):\n{self._proc.log_tail()}")
                if self._options_ok(sock, min(0.25, remaining)):
                    return

    def _options_ok(self, sock: socket.socket, timeout: float) -> bool:
        """Send one OPTIONS to kamailio and return True on a 200 for it."""
        local_host, local_port = sock.getsockname()[:2]
        local = f"[{local_host}]" if ":" in local_host else local_host
        call_id = f"{uuid.uuid4().hex}@pysiptest"
        branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
        msg = (
            f"OPTIONS sip:{self.target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local}:{local_port};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:ping@{local}:{local_port}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{self.target}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: 1 OPTIONS\r\n"
            f"Content-Length: 0\r\n\r\n"
        ).encode()
        try:
            sock.sendto(msg, (self.host, self.port))
        except OSError:
            time.sleep(timeout)
            return False
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data = sock.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                # ICMP port unreachable arrives as ECONNREFUSED: not up yet.
                time.sleep(max(0.0, min(remaining, 0.05)))
                continue
            text = data.decode("utf-8", "replace")
            if call_id in text and text.startswith("SIP/2.0 200"):
                return True
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop kamailio: SIGTERM to our PID, wait ``timeout``, then SIGKILL.

        Idempotent. Removes the working directory unless ``keep_workdir``.
        """
        proc, self._proc = self._proc, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is not None:
            proc.stop(timeout=timeout)
        if self.workdir is not None and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def log_tail(self, n: int = 40) -> str:
        """Last ``n`` lines of kamailio's log (while running or kept)."""
        if self._proc is not None:
            return self._proc.log_tail(n)
        if self.workdir is not None:
            path = self.workdir / "kamailio.log"
            if path.is_file():
                return "".join(path.read_text(errors="replace").splitlines(True)[-n:])
        return ""

    # ----- control through JSON-RPC ----------------------------------------

    @property
    def rpc_url(self) -> str:
        """URL of the JSON-RPC endpoint (HTTP on the SIP TCP port)."""
        return f"http://{self.target}/RPC"

    def rpc(self, method: str, *params: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Call a Kamailio RPC command over JSON-RPC/HTTP and return the response.

        The return value is the decoded JSON-RPC response object; the
        command's answer is under ``"result"``. An ``"error"`` answer raises
        :class:`KamailioRpcError`; a transport failure raises ``OSError``.
        """
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": uuid.uuid4().hex[:8]}
        if params:
            body["params"] = list(params)
        req = urllib.request.Request(
            self.rpc_url, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            if not raw:
                raise
        answer: dict[str, Any] = json.loads(raw)
        if "error" in answer:
            err = answer["error"] or {}
            raise KamailioRpcError(method, err.get("code"), str(err.get("message", err)))
        return answer

    def set_dnd(self, user: str, enabled: bool) -> None:
        """Turn DND on or off for ``user``: the ``dnd`` htable entry is 1 or absent."""
        if enabled:
            self.rpc("htable.seti", "dnd", user, 1)
            return
        try:
            self.rpc("htable.delete", "dnd", user)
        except KamailioRpcError:
            # Already off: deleting an absent key is not an error for us.
            if self.dnd(user):
                raise

    def set_forward(self, user: str, target: str | None) -> None:
        """Forward every call for ``user`` to ``target``: the ``fwd`` htable entry (absent = off)."""
        if target:
            self.rpc("htable.sets", "fwd", user, target)
            return
        try:
            self.rpc("htable.delete", "fwd", user)
        except KamailioRpcError:
            pass

    def dnd(self, user: str) -> bool:
        """True when ``user`` has DND on in the ``dnd`` htable."""
        try:
            answer = self.rpc("htable.get", "dnd", user)
        except KamailioRpcError:
            return False
        return bool(answer.get("result", {}).get("item", {}).get("value"))


class RunningKamailio(Kamailio):
    """A Kamailio started by someone else from this repo's config, at ``host:port``: pysiptest only
    talks to it (SIP, and JSON-RPC for DND and forwarding) and never starts or stops it."""

    def __init__(self, host: str, port: int, domain: str | None = None) -> None:
        super().__init__(host, port, domain)

    def start(self) -> None:
        """Nothing to start: it runs already."""

    def stop(self, timeout: float = 5.0) -> None:
        """Nothing to stop: it is not ours."""
