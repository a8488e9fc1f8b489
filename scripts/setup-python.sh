#!/usr/bin/env bash
# Make sure the Python that the example pipeline and the conformance corpus use is complete:
# python3 >= 3.9 whose `venv` creates an environment with pip, plus git. Installs the missing
# Debian packages (python3, python3-venv, python3-pip, git) otherwise. Idempotent; run as root.
#
# The example pipeline (examples/python-app) installs its own tools (flake8, xenon, pytest, ...)
# from PyPI into .venv; nothing of it is preinstalled here.
set -euo pipefail

python_ok() {
  command -v python3 >/dev/null &&
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' &&
    python3 -m pip --version >/dev/null 2>&1 &&
    (tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT && python3 -m venv "$tmp/v" && "$tmp/v/bin/pip" --version >/dev/null)
}

if ! python_ok || ! command -v git >/dev/null; then
  echo "installing python3, python3-venv, python3-pip and git from apt"
  [[ -n "$(apt-get indextargets)" ]] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip git >/dev/null
  python_ok || { echo "python3 with venv and pip is still missing" >&2; exit 1; }
fi
echo "$(python3 --version) with venv and $(python3 -m pip --version | cut -d' ' -f1-2); $(git --version)"
