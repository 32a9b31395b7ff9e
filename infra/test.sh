#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs all of them:
# the Python model tests (training smoke test, export parity, metrics) and the Rust workspace.
# Usage: infra/test.sh
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

infra/setup/python.sh
infra/setup/onnxruntime.sh

echo "== python tests (models/)"
(cd models && ../.venv/bin/python -m pytest -q)

echo "== rust tests (workspace)"
cargo test --workspace --release --locked
