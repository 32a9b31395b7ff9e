#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs all of them:
# the Python model tests (training smoke test, export parity, metrics) and the Rust workspace,
# whose streaming tests (tests/streaming/) start their own Kafka and versitygw through
# infra/engines/ from the installs made here, and whose browser test (tests/browser.rs) drives
# Debian's Chromium through playwright-core, and whose telemetry tests (tests/telemetry.rs,
# tests/streaming/telemetry.rs) start Prometheus and Jaeger through infra/engines/.
# Usage: infra/test.sh
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

infra/setup/build-tools.sh
infra/setup/python.sh
infra/setup/onnxruntime.sh
infra/setup/kafka.sh
infra/setup/versitygw.sh
infra/setup/prometheus.sh
infra/setup/jaeger.sh
infra/setup/browser.sh

log_dir="$(mktemp -d)"
trap 'rm -rf "${log_dir}"' EXIT

echo "== python tests (models/)"
(cd models && ../.venv/bin/python -m pytest -q) 2>&1 | tee "${log_dir}/python.log"

echo "== rust tests (workspace)"
# --lib --bins --tests: the crates carry no doc tests, whose empty runs would close the log.
cargo test --workspace --release --locked --lib --bins --tests 2>&1 | tee "${log_dir}/rust.log"

# One closing line over both runners.
py_passed=$(grep -Eo '[0-9]+ passed' "${log_dir}/python.log" | tail -n 1 | grep -Eo '[0-9]+')
rs_passed=$(awk '/^test result: ok. / { n += $4 } END { print n + 0 }' "${log_dir}/rust.log")
echo "all tests: $((py_passed + rs_passed)) passed, 0 failed"
