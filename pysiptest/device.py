"""Device profiles: how a phone model behaves on the wire.

A profile is data first (class attributes the engine can act on) and
behaviour second (hooks a subclass may override).  Concrete models live in a
project's ``devices/`` folder, one module per model; each subclass of
:class:`Device` registers itself under its ``model`` name, and
:func:`find_device` looks a name up ("Squirrel350", "squirrel 350").
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import ClassVar, Iterable, Optional

_REGISTRY: dict[str, type["Device"]] = {}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


class Device:
    """Base class of device profiles; the defaults describe a plain, quick desk phone."""

    model: ClassVar[str] = "Generic"
    vendor: ClassVar[str] = "pysiptest"
    user_agent: ClassVar[str] = "pysiptest/0.1"
    #: audio payload types in order of preference (0 PCMU, 8 PCMA)
    codecs: ClassVar[list[int]] = [0, 8]
    ptime: ClassVar[int] = 20
    transport: ClassVar[str] = "udp"
    #: option tags put in Supported
    supported: ClassVar[list[str]] = []
    #: seconds from an incoming INVITE to our 180 Ringing (None: no 180)
    ring_delay: ClassVar[Optional[float]] = 0.0
    #: seconds from the INVITE to answering by itself (None: wait for the user)
    auto_answer_after: ClassVar[Optional[float]] = None
    #: REGISTER expiry asked for, in seconds
    register_expires: ClassVar[int] = 3600
    #: what the phone sends while a call is up: "tone", "silence" or "echo"
    media_source: ClassVar[str] = "tone"
    tone_hz: ClassVar[float] = 440.0

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "model" in cls.__dict__:
            _REGISTRY[_norm(cls.model)] = cls

    # -- hooks ----------------------------------------------------------------------------
    def incoming_call_status(self, caller: str) -> Optional[int]:
        """A final status to reject an incoming call with at once (e.g. 486 when busy), or None to ring."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.vendor} {self.model}>"


_REGISTRY[_norm(Device.model)] = Device


def default_device_paths() -> list[Path]:
    """Folders searched for device modules: $PYSIPTEST_DEVICES (os.pathsep-separated), then ./devices."""
    paths = [Path(p) for p in os.environ.get("PYSIPTEST_DEVICES", "").split(os.pathsep) if p]
    paths.append(Path.cwd() / "devices")
    return paths


def load_devices(paths: Optional[Iterable[Path]] = None) -> None:
    """Import every module in the given device folders so that their models register."""
    for folder in paths if paths is not None else default_device_paths():
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.py")):
            if f.name.startswith("_"):
                continue
            modname = f"pysiptest_devices.{f.stem}"
            if modname in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(modname, f)
            if spec is None or spec.loader is None:
                continue
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            spec.loader.exec_module(mod)


def known_devices() -> list[str]:
    """Model names that can be found, sorted."""
    load_devices()
    return sorted({cls.model for cls in _REGISTRY.values()})


def find_device(name: str) -> type[Device]:
    """The Device class for a model name; KeyError listing the known models when there is none."""
    key = _norm(name)
    if key not in _REGISTRY:
        load_devices()
    try:
        return _REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown device {name!r}; known devices: {', '.join(known_devices())}") from None
