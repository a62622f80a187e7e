"""User accounts of the reference PBX (and of behave's ``-D users=FILE``): one ``name:password`` a line."""
from __future__ import annotations

from pathlib import Path
from typing import Union


def parse_users(text: str, source: str = "users") -> dict[str, str]:
    """``name:password`` lines, ``#`` comments and blank lines ignored; ValueError naming the bad line."""
    users: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, password = line.partition(":")
        name = name.strip()
        if not sep or not name or any(c in name for c in " <>@:;\"\t"):
            raise ValueError(f"{source} line {n}: expected name:password, got {raw.strip()!r}")
        users[name] = password.strip()
    return users


def load_users(path: Union[str, Path]) -> dict[str, str]:
    """Read a users file (see :func:`parse_users`)."""
    p = Path(path)
    return parse_users(p.read_text(encoding="utf-8"), str(p))
