"""Readers for the shared SIP test corpus (``../shared/corpus`` or ``$PYSIPTEST_CORPUS``): the RFC 4475
torture messages with their verdicts and the call-flow messages transcribed in ``flows/*/*.yaml``.
Used by the message tests and by ``fuzz/seed.py``; plain standard library, no YAML package."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Optional


def corpus_dir() -> Optional[Path]:
    """The corpus folder, or None when it is not on this machine."""
    env = os.environ.get("PYSIPTEST_CORPUS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "corpus"
    return path if (path / "MANIFEST.md").exists() else None


def rfc4475_verdicts(root: Path) -> dict[str, dict[str, Any]]:
    """verdicts.json keyed by file name (``wsinv.dat``), each entry with its ``path`` added."""
    data = json.loads((root / "rfc4475" / "verdicts.json").read_text())
    items = data if isinstance(data, list) else data.get("messages", data)
    out: dict[str, dict[str, Any]] = {}
    if isinstance(items, dict):
        items = [dict(v, file=k) if isinstance(v, dict) else v for k, v in items.items()]
    for item in items:
        name = Path(item.get("file") or item.get("path")).name
        out[name] = item
    for path in (root / "rfc4475").rglob("*.dat"):
        out.setdefault(path.name, {})["path"] = path
    return out


def yaml_blocks(text: str) -> list[str]:
    """The ``- |+`` block scalars of a flows/*.yaml file (a list of literal blocks, two-space indent)."""
    blocks: list[list[str]] = []
    cur: Optional[list[str]] = None
    for line in text.split("\n"):
        if line.startswith("- |"):
            cur = []
            blocks.append(cur)
        elif cur is not None and (line.startswith("  ") or line.strip() == ""):
            cur.append(line[2:])
        elif cur is not None and not line.startswith("#"):
            cur = None
    out = []
    for b in blocks:
        while b and b[-1] == "":  # the file's final newline(s) belong to no message's body we can check
            b.pop()
        out.append("\n".join(b) + "\n")
    return out


def flow_messages(root: Path) -> Iterator[tuple[str, bytes]]:
    """(id, wire bytes) of every message in flows/*/*.yaml, line ends turned into CRLF."""
    for path in sorted((root / "flows").glob("*/*.yaml")):
        for i, block in enumerate(yaml_blocks(path.read_text())):
            yield f"{path.parent.name}/{path.stem}#{i + 1}", block.replace("\n", "\r\n").encode()
