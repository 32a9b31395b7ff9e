#!/usr/bin/env bash
# What a photo costs the streaming system (tests/streaming/cost.rs) at the size issue 26 measured
# it: 750 photos PUT 8 at a time through Kafka, versitygw, ingest, one worker and serve; prints
# each process's CPU per photo with its idle rate subtracted, the worker against `autorma run` on
# the same photos, and the requests the broker answered per photo by client and API (its request
# log). CI runs the same test at 375 photos.
#
# Usage: infra/cost.sh [PHOTOS]
# Needs what infra/test.sh installs for the streaming tests, and the fashion5 test split at
# ../shared/datasets/fashion5/test. Run it on a quiet machine, twice: the figures are noisy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for setup in build-tools onnxruntime kafka versitygw; do
  "infra/setup/${setup}.sh"
done
AUTORMA_COST_PHOTOS="${1:-750}" cargo test --release --locked --test streaming -- --exact \
  cost::what_a_photo_costs_the_broker_the_bucket_and_the_worker --nocapture
