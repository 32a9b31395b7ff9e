#!/usr/bin/env bash
# Creates the project's Python environment (.venv) with models/requirements.txt: training,
# export, evaluation and the Python tests. The Rust pipeline does not need it.
# Usage: infra/setup/python.sh
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${repo_root}/.venv"
if [[ ! -x "${venv}/bin/python" ]]; then
  echo "creating ${venv}"
  python3 -m venv "${venv}"
fi
# Quiet unless it fails; the torch wheels are large, so say what is happening.
echo "installing models/requirements.txt into ${venv} (first time: a few GB of wheels)"
"${venv}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${repo_root}/models/requirements.txt"
