#!/usr/bin/env bash
# Set up and run rerank-gateway.
#   ./dev.sh serve [serve options]   create .venv if needed, then start the gateway
#   ./dev.sh test  [pytest options]  create .venv if needed, then run the whole test suite
#   ./dev.sh setup                   only create/refresh .venv
set -euo pipefail
cd "$(dirname "$0")"

VENV=${RERANK_GATEWAY_VENV:-.venv}
PYTHON=${PYTHON:-python3}

# llama-cpp-python compiles llama.cpp (~5 min on 2 cores): build its wheel once per version and
# flags, outside the venv, and install from there. Not -march=native: these VMs report AMX in
# cpuid but fault on it (SIGSEGV in ggml_backend_amx_mul_mat), so the build targets AVX2.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
WHEELS="${RERANK_GATEWAY_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/rerank-gateway/wheels}"

llama_wheel() {
    local version tag dir
    version=$(sed -n 's/^llama[-_]cpp[-_]python==//p' constraints.txt)
    tag=$(printf '%s' "$version $LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)
    dir="$WHEELS/llama-$tag"
    if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "building llama-cpp-python $version for the embedded local model: about 5 minutes on 2 cores," \
             "once (the wheel is kept in $dir) ..." >&2
        local started=$SECONDS
        CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$VENV/bin/python" -m pip wheel --quiet --disable-pip-version-check \
            --no-deps --no-cache-dir --wheel-dir "$dir" "llama-cpp-python==$version" &
        local build=$!
        while kill -0 "$build" 2>/dev/null; do
            sleep 30
            kill -0 "$build" 2>/dev/null && echo "  ... still building llama-cpp-python ($((SECONDS - started)) s)" >&2
        done
        wait "$build" || { echo "building llama-cpp-python failed" >&2; exit 1; }
        echo "built llama-cpp-python in $((SECONDS - started)) s" >&2
    fi
    echo "$dir"
}

setup() {
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "rerank-gateway needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
        exit 1
    fi
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    # Reinstall only when the dependency pins (or this script) change.
    local stamp="$VENV/.installed"
    local want
    want=$(cat pyproject.toml constraints.txt "$0" | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "installing rerank-gateway and its pinned dependencies into $VENV ..." >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        local wheels
        wheels=$(llama_wheel)
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt \
            --find-links "$wheels" --only-binary llama-cpp-python -e ".[test,compat,local]"
        echo "$want" > "$stamp"
    fi
}

# The Redis tests start their own redis-server on a free loopback port; Debian packages it.
ensure_redis_server() {
    command -v redis-server >/dev/null 2>&1 && return
    echo "installing redis-server (Debian package) for the Redis tests ..." >&2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            redis-server; } >/dev/null 2>&1 || true
    fi
    command -v redis-server >/dev/null 2>&1 ||
        echo "redis-server could not be installed (needs root and apt-get): the Redis tests will be skipped" >&2
}

# Tests and local upstreams live on loopback; a proxy in the environment must not capture them.
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) setup ;;
    serve) setup; exec "$VENV/bin/rerank-gateway" serve "$@" ;;
    test) setup; ensure_redis_server; exec "$VENV/bin/python" -m pytest "$@" ;;
    *) echo "usage: ./dev.sh {serve|test|setup} [args...]" >&2; exit 2 ;;
esac
