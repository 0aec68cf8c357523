#!/usr/bin/env bash
# nasforge's one entry point for a fresh Debian/Ubuntu machine with Python 3.10+.
#
#   ./run.sh search [flags]   set up (first time only), then run the demo architecture search:
#                             NAS-Bench-201 cells trained on Fashion-MNIST, ~5 minutes on 2 CPU cores
#   ./run.sh test [args]      set up (first time only), then run the whole test suite (pytest args pass through)
#   ./run.sh setup            only set up
#
# Set-up: Debian packages (python3-venv, dataset-fashion-mnist) when missing, a virtual environment in
# .venv, PyTorch's CPU build when no torch is installed there, then nasforge with its dev extras.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${NASFORGE_VENV:-.venv}"
PY="$VENV/bin/python"
TORCH_SPEC="${NASFORGE_TORCH:-torch==2.13.0}"

say() { printf '\033[1m[run.sh]\033[0m %s\n' "$*" >&2; }

apt_install() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            say "please install the Debian packages: $* (needs root)"; return 1; fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then say "no apt-get here; please install: $*"; return 1; fi
    $sudo apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

setup() {
    if ! python3 -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
        say "nasforge needs Python 3.10 or newer as python3"; exit 1
    fi
    if [ -x "$PY" ] && ! "$PY" -m pip --version >/dev/null 2>&1; then
        # A venv left half-made (e.g. python3-venv was missing when it was created): start again.
        say "$VENV has no working pip; recreating it"; rm -rf "$VENV"
    fi
    if [ ! -x "$PY" ]; then
        if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
            say "installing python3-venv"; apt_install python3-venv
        fi
        say "creating $VENV"; python3 -m venv "$VENV"
    fi
    if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${NASFORGE_DATA:-}" ]; then
        say "installing Debian's dataset-fashion-mnist"
        apt_install dataset-fashion-mnist || say "could not install it; set NASFORGE_DATA or pass --data"
    fi
    if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
        # The CPU wheel first: an unpinned `torch` from PyPI pulls a multi-GB CUDA build.
        say "installing PyTorch ($TORCH_SPEC, CPU build)"
        # PyTorch's CPU index when reachable (one quick try, no retries), else the configured indexes.
        "$PY" -m pip install -q --timeout 15 --retries 0 --index-url https://download.pytorch.org/whl/cpu \
            "$TORCH_SPEC" 2>/dev/null || "$PY" -m pip install -q "$TORCH_SPEC"
    fi
    local stamp="$VENV/.nasforge-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        say "installing nasforge and its dependencies into $VENV"
        "$PY" -m pip install -q -e ".[dev,export]"
        touch "$stamp"
    fi
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    setup)
        setup ;;
    search)
        setup
        # The demo (configs/demo.yaml): regularized evolution over NAS-Bench-201 cells under ASHA on
        # Fashion-MNIST, then a final test of the pick next to the ResNet cell and a verdict.
        # Flags override the file.
        exec "$VENV/bin/nasforge" search --config configs/demo.yaml "$@" ;;
    test)
        setup
        # The HTML report is checked in headless Chromium (the test skips, saying so, without it).
        if ! command -v chromium >/dev/null 2>&1; then
            say "installing Debian's chromium for the report test"
            apt_install chromium || say "could not install chromium; the report's browser test will skip"
        fi
        # Ray binds 127.0.0.1 only with this set (the tests must not use other interfaces).
        export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
        # One worker per core (at most 4; every test runs on one torch thread; a module marked
        # xdist_group stays on one worker), unless the
        # caller chose: any -n/--numprocesses, or -p no:xdist, in the arguments wins.
        par=(-n auto --maxprocesses=4 --dist loadgroup)
        case " $* " in *" -n"*|*" --numprocesses"*|*"no:xdist"*) par=() ;; esac
        set +e
        "$PY" -m pytest "${par[@]}" "$@"
        rc=$?
        set -e
        if [ "$rc" = 5 ]; then say "pytest collected no tests: failing on purpose"; exit 1; fi
        exit "$rc" ;;
    *)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
