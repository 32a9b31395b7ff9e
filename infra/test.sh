#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs all of them:
# the Python model tests (training smoke test, export parity, metrics) and the Rust workspace,
# whose streaming tests (tests/streaming/) start their own Kafka and versitygw (and, for the
# chaos suite, Toxiproxy) through infra/engines/ from the installs made here, and whose browser test (tests/browser.rs) drives
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
infra/setup/toxiproxy.sh
infra/setup/prometheus.sh
infra/setup/jaeger.sh
infra/setup/browser.sh

log_dir="$(mktemp -d)"
trap 'rm -rf "${log_dir}"' EXIT

# Both runners run to their end whatever fails, and every test binary runs (--no-fail-fast): one
# failure must not hide the others. The exit status says whether everything passed.
status=0

echo "== python tests (models/)"
(cd models && ../.venv/bin/python -m pytest -q) 2>&1 | tee "${log_dir}/python.log" || status=1

echo "== rust tests (workspace)"
# --lib --bins --tests: the crates carry no doc tests, whose empty runs would close the log.
cargo test --workspace --release --locked --no-fail-fast --lib --bins --tests 2>&1 | tee "${log_dir}/rust.log" || status=1

echo "== rust lints (cargo fmt --check, cargo clippy -D warnings)"
# After the tests: clippy in the release profile reuses the build scripts' native builds
# (librdkafka, libjpeg-turbo, SQLite) that the tests just made.
lint_status=0
cargo fmt --all --check || lint_status=1
cargo clippy --workspace --all-targets --release --locked -- -D warnings || lint_status=1
if ((lint_status != 0)); then
  echo "lints failed: see cargo fmt's diff or clippy's errors above" >&2
  status=1
fi

# One closing line over both runners: pytest's summary line, and cargo's "test result:" lines
# (one per test binary).
py_summary=$(grep -E '[0-9]+ (passed|failed).* in [0-9.]+s' "${log_dir}/python.log" | tail -n 1 || true)
count() { grep -Eo "[0-9]+ $1" <<<"${py_summary}" | grep -Eo '[0-9]+' || echo 0; }
py_passed=$(count passed)
py_failed=$(($(count failed) + $(count 'errors?')))
rs_passed=$(awk '/^test result: / { n += $4 } END { print n + 0 }' "${log_dir}/rust.log")
rs_failed=$(awk '/^test result: / { n += $6 } END { print n + 0 }' "${log_dir}/rust.log")
failed=$((py_failed + rs_failed))
if ((status != 0 && failed == 0 && lint_status == 0)); then
  echo "a runner failed without a failing test (a build error?): see its output above" >&2
fi
echo "total: $((py_passed + rs_passed)) passed, ${failed} failed"
exit "${status}"
