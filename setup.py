"""Build of the C extension pysiptest._core (metadata lives in pyproject.toml).

The C sources under csrc/sip, csrc/net, csrc/rtp and csrc/engine are plain C11
libraries; csrc/py is the CPython binding.  OpenSSL, libsrtp2 and libpcap are
found through pkg-config.
"""
from __future__ import annotations

import glob
import os
import shlex
import subprocess

from setuptools import Extension, setup

PKGS = ["openssl", "libsrtp2", "libpcap"]


def pkg_config(flag: str) -> list[str]:
    """Flags from pkg-config for all PKGS; a clear error when a library is missing."""
    try:
        out = subprocess.run(["pkg-config", flag, *PKGS], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError as exc:
        raise SystemExit("pkg-config is required to build pysiptest (apt-get install pkg-config)") from exc
    except subprocess.CalledProcessError as exc:
        raise SystemExit(
            "pkg-config could not find " + " ".join(PKGS) + ": install libssl-dev libsrtp2-dev libpcap-dev\n" + exc.stderr
        ) from exc
    return shlex.split(out)


def sources() -> list[str]:
    out: list[str] = []
    for sub in ("sip", "net", "rtp", "engine", "py"):
        out.extend(sorted(glob.glob(os.path.join("csrc", sub, "*.c"))))
    return out


cflags = pkg_config("--cflags")
libs = pkg_config("--libs")
extra_compile = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-O2", "-fvisibility=hidden"]
if os.environ.get("PYSIPTEST_WERROR", "1") == "1":
    extra_compile.append("-Werror")

setup(
    ext_modules=[
        Extension(
            "pysiptest._core",
            sources=sources(),
            include_dirs=["csrc"],
            extra_compile_args=extra_compile + cflags,
            extra_link_args=libs + ["-lpthread"],
        )
    ]
)
