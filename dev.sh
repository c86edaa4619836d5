#!/usr/bin/env bash
# Set up and run rerank-gateway.
#   ./dev.sh serve [--no-local] [serve options]  create .venv with what serving needs, then start the gateway
#   ./dev.sh test  [pytest options]  create .venv with the test extras, JS packages and Chromium, then run the suite
#   ./dev.sh bench [--smoke | NAME [options]]  every benchmark (bench/suite.py), or one: bench/NAME.py
#   ./dev.sh setup                   only create/refresh .venv (everything the tests need)
# RERANK_GATEWAY_NO_LOCAL=1 (or serve --no-local) skips the embedded model and its llama.cpp build,
# for users who bring a key; so does a machine without a C++ compiler (with a message).
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
    local version dir
    version=$(sed -n 's/^llama[-_]cpp[-_]python==//p' constraints.txt)
    dir=$(llama_wheel_dir)
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

# -- the embedded model: build llama.cpp only when it is wanted and can be built ------------------------

wants_local() {
    [ "${RERANK_GATEWAY_NO_LOCAL:-0}" = 1 ] && return 1
    ls "$(llama_wheel_dir)"/llama_cpp_python-*.whl >/dev/null 2>&1 && return 0
    if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
        echo "no C++ compiler (c++/g++) found: skipping the embedded model, whose llama.cpp builds from source." \
             "Install one (Debian: apt-get install g++) to get it, or bring a key: OPENAI_API_KEY=... ./dev.sh serve" >&2
        return 1
    fi
    return 0
}

llama_wheel_dir() {
    local version tag
    version=$(sed -n 's/^llama[-_]cpp[-_]python==//p' constraints.txt)
    tag=$(printf '%s' "$version $LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)
    echo "$WHEELS/llama-$tag"
}

# -- the venv: serve installs the package (and the local extra); test adds the test and compat extras ----

setup() {
    local extras=$1
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "rerank-gateway needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
        exit 1
    fi
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    # Reinstall only when the dependency pins (or this script) change, or more extras are wanted.
    local stamp="$VENV/.installed"
    local want have
    want=$(cat pyproject.toml constraints.txt "$0" | sha256sum | cut -d' ' -f1)
    have=$(cat "$stamp" 2>/dev/null || true)
    if [ "${have%% *}" = "$want" ] && covers "${have#* }" "$extras"; then
        return
    fi
    echo "installing rerank-gateway${extras:+ [$extras]} and its pinned dependencies into $VENV ..." >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    local find=()
    case ",$extras," in *,local,*) find=(--find-links "$(llama_wheel)" --only-binary llama-cpp-python) ;; esac
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt \
        "${find[@]}" -e ".${extras:+[$extras]}"
    echo "$want $extras" > "$stamp"
}

covers() {  # does the comma list $1 hold every extra in the comma list $2?
    local extra
    for extra in ${2//,/ }; do
        case ",$1," in *,"$extra",*) ;; *) return 1 ;; esac
    done
}

# -- what the JS client and browser tests need: npm packages (tests/js/package-lock.json), Chromium -------

js_setup() {
    if ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm || { echo "npm is missing; the JS client and browser tests will skip" >&2; return; }
    fi
    local stamp=tests/js/node_modules/.installed want
    want=$(sha256sum tests/js/package-lock.json | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "installing the JS test packages (npm ci in tests/js) ..." >&2
        (cd tests/js && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) && echo "$want" > "$stamp"
    fi
    [ -x /usr/bin/chromium ] || apt_install chromium || echo "chromium is missing; the /docs browser test will skip" >&2
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || return 1
    echo "installing $* from Debian's packages ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    # Another apt (a fresh VM's unattended upgrades, a second setup) may hold the dpkg lock: wait for it.
    local wait=(-o DPkg::Lock::Timeout=600)
    { apt-get install -y -qq "${wait[@]}" "$@" || { apt-get update -qq "${wait[@]}" && apt-get install -y -qq "${wait[@]}" "$@"; }; } >/dev/null
}

# The Redis tests start their own redis-server on a free loopback port; Debian packages it.
ensure_redis_server() {
    command -v redis-server >/dev/null 2>&1 && return
    apt_install redis-server ||
        echo "redis-server could not be installed (needs root and apt-get): the Redis tests will be skipped" >&2
}

# wrk drives the latency benchmark (and its smoke run in the test suite): Debian's package.
need_wrk() {
    command -v wrk >/dev/null 2>&1 && return
    apt_install wrk || echo "could not install wrk (apt-get install wrk); the latency benchmark needs it" >&2
}

# valgrind counts the instructions of bench.instructions (and its smoke run in the test suite): Debian's package.
need_valgrind() {
    command -v valgrind >/dev/null 2>&1 && return
    apt_install valgrind || echo "could not install valgrind (apt-get install valgrind); bench.instructions needs it" >&2
}

# Tests and local upstreams live on loopback; a proxy in the environment must not capture them.
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

cmd=${1:-}
[ $# -gt 0 ] && shift
test_extras() {  # the local model's tests skip, naming why, when it cannot be built here
    if wants_local; then echo test,compat,bench,local; else echo test,compat,bench; fi
}

serve() {
    local args=() arg
    for arg in "$@"; do
        if [ "$arg" = --no-local ]; then RERANK_GATEWAY_NO_LOCAL=1; else args+=("$arg"); fi
    done
    if wants_local; then setup local; else setup ""; fi
    exec "$VENV/bin/rerank-gateway" serve "${args[@]}"
}

case "$cmd" in
    setup) setup "$(test_extras)"; js_setup ;;
    serve) serve "$@" ;;
    test) setup "$(test_extras)"; js_setup; ensure_redis_server; need_wrk; need_valgrind; exec "$VENV/bin/python" -m pytest "$@" ;;
    bench)
        setup "$(test_extras)"; need_wrk; need_valgrind
        if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
            name=$1; shift; exec "$VENV/bin/python" -m "bench.$name" "$@"
        fi
        exec "$VENV/bin/python" -m bench.suite "$@" ;;
    *) echo "usage: ./dev.sh {serve|test|bench|setup} [args...]" >&2; exit 2 ;;
esac
