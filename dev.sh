#!/usr/bin/env bash
# Set up and run rerank-gateway.
#   ./dev.sh serve [serve options]   create .venv if needed, then start the gateway
#   ./dev.sh test  [pytest options]  create .venv if needed, then run the whole test suite
#   ./dev.sh setup                   only create/refresh .venv
set -euo pipefail
cd "$(dirname "$0")"

VENV=${RERANK_GATEWAY_VENV:-.venv}
PYTHON=${PYTHON:-python3}

setup() {
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "rerank-gateway needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
        exit 1
    fi
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    # Reinstall only when the dependency pins change.
    local stamp="$VENV/.installed"
    local want
    want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "installing rerank-gateway and its pinned dependencies into $VENV ..." >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -c constraints.txt -e ".[test,compat]"
        echo "$want" > "$stamp"
    fi
}

# Tests and local upstreams live on loopback; a proxy in the environment must not capture them.
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) setup ;;
    serve) setup; exec "$VENV/bin/rerank-gateway" serve "$@" ;;
    test) setup; exec "$VENV/bin/python" -m pytest "$@" ;;
    *) echo "usage: ./dev.sh {serve|test|setup} [args...]" >&2; exit 2 ;;
esac
