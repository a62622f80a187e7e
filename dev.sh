#!/usr/bin/env bash
# Set pysiptest up on a fresh Debian or Ubuntu machine and run it.
#
#   ./dev.sh run    install what is missing, then run the example features (features/)
#                   against the embedded reference PBX
#   ./dev.sh test   install what is missing, then run the test suite: pytest (C unit tests plain and
#                   under ASan+UBSan, Python API, SIPp and Kamailio interop, the features against
#                   Kamailio), then Behave on features/ against the reference PBX
#
# System packages (deps/apt.txt) come from apt, through sudo when not root; Python packages go into
# the virtual environment .venv. Extra arguments after run/test are passed to behave/pytest.
set -euo pipefail
cd "$(dirname "$0")"

apt_packages() { grep -v '^\s*#' deps/apt.txt | grep -v '^\s*$'; }

install_system() {
    local missing=()
    for p in $(apt_packages); do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "dev.sh: not a Debian/Ubuntu machine; install these yourself: ${missing[*]}" >&2
        exit 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "dev.sh: installing ${missing[*]}"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}"
}

install_python() {
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
    .venv/bin/python -m pip install -q -e '.[test]'
}

cmd="${1:-}"
shift || true
case "$cmd" in
run)
    install_system
    install_python
    exec .venv/bin/behave features/ "$@"
    ;;
test)
    install_system
    install_python
    .venv/bin/python -m pytest "$@"
    .venv/bin/behave features/
    ;;
*)
    echo "usage: ./dev.sh run | ./dev.sh test" >&2
    exit 2
    ;;
esac
