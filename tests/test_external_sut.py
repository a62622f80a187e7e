"""The seed's features run unchanged against a server started outside the harness (behave -D sut=external),
with the accounts of -D users=FILE: the phones answer the server's digest challenges with those passwords,
and steps that need control of the server skip their scenario, saying why."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pysiptest.pbx.users import load_users
from pysiptest.sut import Kamailio
from pysiptest.sut._proc import ManagedProcess, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
BEHAVE = Path(sys.executable).with_name("behave")
FEATURE = "features/alice_calls.feature"

needs_behave = pytest.mark.skipif(not BEHAVE.exists(), reason="behave is not installed")
needs_kamailio = pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio is not installed")


def behave(target: str, users: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BEHAVE), "--no-color", "-D", "sut=external", "-D", f"target={target}",
                           "-D", f"users={users}", *extra, FEATURE],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)


def users_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "users.txt"
    path.write_text(text)
    return path


@needs_behave
@needs_kamailio
def test_seed_feature_runs_against_a_kamailio_started_elsewhere(tmp_path: Path) -> None:
    """Kamailio with digest auth runs as its own process; behave only knows its address and the accounts.
    "Alice calls Bob" passes; the DND scenario is skipped because DND cannot be set on an external server."""
    users = users_file(tmp_path, "# the accounts of this server\nalice:Al1ce-pw\nbob: b0b-pw  # Bob\n"
                                 "voicemail:vm-pw\n")
    with Kamailio(users=load_users(users)) as k:
        proc = behave(k.target, users)
        log = k.log_tail(400)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    assert "1 scenario passed, 0 failed, 1 skipped" in out, out
    assert re.search(r"Skipped: the external server at 127\.0\.0\.1:\d+ is not controlled by pysiptest "
                     r"\(sut=external\): DND cannot be set through it", out), out
    # the phones registered only after a 401, and the INVITE went only after a 407 (Kamailio's own log)
    assert "REGISTER of alice not authenticated" in log and "REGISTER of bob not authenticated" in log, log
    assert "INVITE from alice not authenticated" in log, log


@needs_behave
def test_seed_feature_runs_against_a_reference_pbx_process(tmp_path: Path) -> None:
    """`pysiptest pbx --users FILE --auth SHA-256` in its own process; no voicemail account there, so the
    scenario that needs the voicemail box is skipped with that reason."""
    users = users_file(tmp_path, "alice:Al1ce-pw\nbob:b0b-pw\n")
    port = free_port("127.0.0.1")
    pbx = ManagedProcess([sys.executable, "-m", "pysiptest", "pbx", "--listen", f"127.0.0.1:{port}",
                          "--users", str(users), "--auth", "SHA-256"], tmp_path / "pbx.log", cwd=ROOT)
    try:
        wait_until(lambda: "listening on" in pbx.log_tail(), 20, what="the reference PBX to listen")
        proc = behave(f"127.0.0.1:{port}", users)
        out = proc.stdout
        assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
        assert "1 scenario passed, 0 failed, 1 skipped" in out, out
        assert re.search(r"Skipped: the voicemail box could not register with 127\.0\.0\.1:\d+ \(voicemail could "
                         r"not register: 403 [^)]*\); give it an account", out), out

        # the same run with Bob's password wrong fails at Bob's registration: the passwords are really used
        bad = tmp_path / "bad.txt"
        bad.write_text("alice:Al1ce-pw\nbob:wrong\n")
        proc = behave(f"127.0.0.1:{port}", bad, "-n", "Alice calls Bob$")
        assert proc.returncode != 0
        assert "1 failed" in proc.stdout and "Bob could not register: 401" in proc.stdout, proc.stdout[-3000:]
    finally:
        pbx.stop()


def test_servers_the_harness_starts_get_the_accounts_and_challenge() -> None:
    """make_sut(users=...) (behave's -D users=FILE): the reference PBX challenges REGISTER with SHA-256 digest
    and refuses a wrong password; Kamailio gets the accounts (auth on); external servers are left alone."""
    from pysiptest import Engine, Phone, ResponseReceived
    from pysiptest.sut import ExternalSut, ReferencePbxSut, make_sut

    users = {"alice": "Al1ce-pw"}
    sut = make_sut("", "", users=users)
    assert isinstance(sut, ReferencePbxSut)
    k = make_sut("kamailio", "", users=users)
    assert isinstance(k, Kamailio) and k.auth and k.users == users
    ext = make_sut("external", "127.0.0.1:5999", users=users)
    assert isinstance(ext, ExternalSut)
    with pytest.raises(NotImplementedError, match="not controlled by pysiptest"):
        ext.set_dnd("alice", True)
    with pytest.raises(ValueError, match="sut=external needs -D target"):
        make_sut("external", "")
    with sut, Engine() as eng:
        good = Phone("alice", engine=eng, proxy=(sut.host, sut.port), password="Al1ce-pw")
        good.register(timeout=5)
        challenge = good.expect(ResponseReceived, 1, method="REGISTER")
        assert challenge.status == 401 and "SHA-256" in challenge.message.header("WWW-Authenticate")
        bad = Phone("alice", engine=eng, proxy=(sut.host, sut.port), password="nope")
        with pytest.raises(AssertionError, match="could not register: 401"):
            bad.register(timeout=5)
