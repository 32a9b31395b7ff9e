#!/usr/bin/env bash
# The soak (tests/streaming/soak.rs) at full size: photos PUT at 50 a second for 30 minutes
# through Kafka, versitygw, ingest, one worker and serve; a line every 30 s with each process's
# resident memory, the backlog (photos not yet on rma.results) and the interval's
# upload-to-result p95; at the end each process's memory must be within 10 % of its value at
# 5 minutes, the backlog bounded and every photo out, once. CI runs the same test for 20 s.
#
# Usage: infra/soak.sh [SECONDS [RATE]]   (default 1800 and 50)
# Needs what infra/test.sh installs for the streaming tests, and the fashion5 test split at
# ../shared/datasets/fashion5/test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for setup in build-tools onnxruntime kafka versitygw; do
  "infra/setup/${setup}.sh"
done
# The broker's heap at its full size from the start (as Kafka's operations guide sets it, -Xms
# equal to -Xmx): otherwise the JVM grows it over the first quarter hour, which is not a leak
# but would read as one.
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m -XX:+AlwaysPreTouch}"
AUTORMA_SOAK_SECS="${1:-1800}" AUTORMA_SOAK_RATE="${2:-50}" AUTORMA_SOAK_SAMPLE_SECS=30 \
  cargo test --release --locked --test streaming -- --exact \
  soak::a_steady_stream_keeps_memory_and_backlog_flat --nocapture
