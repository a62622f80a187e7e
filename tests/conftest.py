"""Shared fixtures: an Engine, the reference PBX, registered phones, the ``pysiptest`` command as a child
process, and the ``requires_binary`` marker for tests that need an outside program (SIPp, Kamailio)."""
from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional, Union

import pytest

from pysiptest import Device, Engine, Phone, find_device
from pysiptest.sut import ReferencePbxSut
from pysiptest.sut._proc import ManagedProcess, wait_until

ROOT = Path(__file__).resolve().parent.parent
# device profiles live in the repository's devices/ folder; find them whatever the working directory
os.environ.setdefault("PYSIPTEST_DEVICES", str(ROOT / "devices"))

#: how to install the programs that ``requires_binary`` knows about
INSTALL_HINTS = {"sipp": "apt-get install sip-tester", "kamailio": "apt-get install kamailio",
                 "baresip": "apt-get install baresip-core"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_binary(name, ...): skip the test when one of the named programs is not on PATH")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires_binary"):
        for name in mark.args:
            if shutil.which(name) is None:
                hint = INSTALL_HINTS.get(name)
                pytest.skip(f"{name} is not installed" + (f" ({hint})" if hint else ""))


# -- the library ---------------------------------------------------------------------------
@pytest.fixture
def engine() -> Iterator[Engine]:
    """An Engine for the test's phones, closed at teardown."""
    eng = Engine()
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def pbx() -> Iterator[ReferencePbxSut]:
    """The reference PBX on a free loopback port, on its own Engine."""
    sut = ReferencePbxSut()
    sut.start()
    try:
        yield sut
    finally:
        sut.stop()


MakePhone = Callable[..., Phone]


@pytest.fixture
def make_phone(engine: Engine, pbx: ReferencePbxSut) -> Iterator[MakePhone]:
    """Factory of phones that use the pbx fixture as their proxy and registrar.

    ``make_phone("alice", device="Squirrel350", register=True, **phone_kwargs)``; ``device`` is a model
    name, a Device instance or None for the generic device. Every call still up is hung up at teardown.
    """
    phones: list[Phone] = []

    def make(user: str, device: Union[str, Device, None] = "Squirrel350", register: bool = True,
             **kwargs: Any) -> Phone:
        dev = find_device(device)() if isinstance(device, str) else device
        phone = Phone(user, dev, engine=engine, proxy=(pbx.host, pbx.port), **kwargs)
        phones.append(phone)
        if register:
            phone.register(timeout=3)
        return phone

    try:
        yield make
    finally:
        for phone in phones:
            phone.close()


# -- the pysiptest command -----------------------------------------------------------------
class CliProcess:
    """``python -m pysiptest ...`` as a child process; stdout and stderr go to one log file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.args = args
        self.proc = ManagedProcess([sys.executable, "-m", "pysiptest", *args], log_path, cwd=ROOT, env=env)

    def output(self) -> str:
        """Everything the command printed so far."""
        return self.proc.output()

    def wait_for(self, pattern: str, timeout: float = 10.0, count: int = 1) -> list[re.Match[str]]:
        """Wait until ``pattern`` (a regex, per line) matched at least ``count`` lines; returns the matches.
        Fails at once, with the output, when the process exits first."""
        return self.proc.wait_for_output(pattern, timeout, count, name=f"pysiptest {' '.join(self.args)}")

    def send_signal(self, sig: int) -> None:
        """Send sig to this PID only."""
        os.kill(self.proc.pid, sig)

    def stop(self) -> Optional[int]:
        """SIGTERM (then SIGKILL) to this PID only; returns the exit status."""
        return self.proc.stop(timeout=5)


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[Callable[..., CliProcess]]:
    """Factory: ``run_cli("phone", "--listen", "127.0.0.1:5070")`` starts the command; all are stopped at
    teardown."""
    started: list[CliProcess] = []

    def run(*args: str) -> CliProcess:
        cli = CliProcess(list(args), tmp_path / f"cli-{len(started)}-{args[0]}.log")
        started.append(cli)
        return cli

    try:
        yield run
    finally:
        for cli in started:
            cli.stop()
