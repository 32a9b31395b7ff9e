#!/usr/bin/env bash
# The chaos suite (tests/streaming/chaos.rs) at full size: 4,000 photos PUT into the bucket at
# 20 a second while 20 `kill -9` of a worker or the ingest (each restarted a moment later), a
# broker restart, an S3 server restart and network faults between the workers and Kafka or S3
# (Toxiproxy: latency, stalls, resets) come at moments drawn from a seed; then every photo must
# have one result object and one record on rma.results, and no committed offset may have passed
# a photo without an outcome. CI runs the same test at 300 photos and 4 kills.
#
# Usage: infra/chaos.sh [PHOTOS [KILLS]]
# Env:   AUTORMA_CHAOS_RATE  photos PUT per second (default 20)
#        AUTORMA_CHAOS_SEED  the seed of an earlier run (printed at its start), to replay its moments
# Needs what infra/test.sh installs for the streaming tests, and the fashion5 test split at
# ../shared/datasets/fashion5/test. Prints the faults, the retries and the time to drain.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for setup in build-tools onnxruntime kafka versitygw toxiproxy; do
  "infra/setup/${setup}.sh"
done
AUTORMA_CHAOS_PHOTOS="${1:-4000}" AUTORMA_CHAOS_KILLS="${2:-20}" AUTORMA_CHAOS_RATE="${AUTORMA_CHAOS_RATE:-20}" \
  cargo test --release --locked --test streaming -- --exact \
  chaos::chaos_kills_restarts_and_network_faults_lose_and_duplicate_no_result --nocapture
