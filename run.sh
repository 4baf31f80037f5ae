#!/usr/bin/env bash
# The two commands a newcomer needs (Linux/macOS; see docs/development.md for Windows):
#   ./run.sh demo   set up .venv, then run the compare demo on the bundled image (downloads weights)
#   ./run.sh test   set up .venv with the dev tools, then lint (ruff check, ruff format --check) and run the tests
# Extra arguments go to the demo (python -m interposer compare ...) or to pytest.
# Torch: an importable torch in .venv is kept; otherwise torch==$TORCH_VERSION is installed from PyPI
# (or from $TORCH_INDEX_URL, e.g. https://download.pytorch.org/whl/cu124 for a CUDA build on Windows).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

venv_python() {
  if [ -x "$VENV/bin/python" ]; then echo "$VENV/bin/python"; else echo "$VENV/Scripts/python.exe"; fi
}

setup() {  # $1: requirements file
  [ -x "$VENV/bin/python" ] || [ -x "$VENV/Scripts/python.exe" ] || "$PYTHON" -m venv "$VENV"
  local py; py="$(venv_python)"
  if ! "$py" -c "import torch" 2>/dev/null; then
    echo "Installing torch $TORCH_VERSION (set TORCH_INDEX_URL for another build)..."
    "$py" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION"
  fi
  # Skip pip when the requirements have not changed since the last successful install.
  local stamp="$VENV/.installed-$(basename "$1")" want
  want="$(cat requirements*.txt | cksum)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$py" -m pip install --quiet -r "$1"
    echo "$want" > "$stamp"
  fi
}

case "${1:-}" in
  demo)
    shift
    setup requirements.txt
    # Defaults first, so "$@" can override them; the grid is named after the direction (out/compare_<dir>_lakeside.png).
    exec "$(venv_python)" -m interposer compare examples/lakeside.jpg --src xl --dst v1 --out-dir out "$@"
    ;;
  test)
    shift
    setup requirements-dev.txt
    py="$(venv_python)"
    "$py" -m ruff check .
    "$py" -m ruff format --check .
    "$py" tests/fetch_taesd.py || true  # the tiny VAEs some tests need, when no folder has them (one quick try)
    set +e
    "$py" -m pytest "$@"
    code=$?
    set -e
    [ "$code" -eq 5 ] && { echo "pytest collected no tests"; exit 1; }
    exit "$code"
    ;;
  *)
    echo "usage: ./run.sh demo [compare options] | ./run.sh test [pytest options]" >&2
    exit 2
    ;;
esac
