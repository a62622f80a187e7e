"""Fill a libFuzzer seed folder from the shared corpus: every RFC 4475 message and every flow message.
Usage: python3 fuzz/seed.py CORPUS_DIR OUT_DIR"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sipcorpus import flow_messages  # noqa: E402


def main() -> int:
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    seeds = [p.read_bytes() for p in sorted((root / "rfc4475").rglob("*.dat"))]
    seeds += [data for _, data in flow_messages(root)]
    for data in seeds:
        (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{len(seeds)} seeds in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
