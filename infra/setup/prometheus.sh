#!/usr/bin/env bash
# Builds Prometheus (Apache-2.0) from source with `go install` and installs the binary in the
# per-user cache the other engines use, keyed by version:
#   ${XDG_DATA_HOME:-$HOME/.local/share}/autorma/prometheus/<version>/bin/prometheus
# `infra/engines/prometheus.sh` runs it from there with its OTLP receiver on, for the telemetry
# test and the development stack; no Docker needed.
#
# Usage: infra/setup/prometheus.sh [DEST_DIR]
# Needs: go (the module's go.mod says which), network to the Go module proxy. The build is the
# slowest step of a cold `.ci/run` (about 10 minutes of CPU); once installed, a second run exits
# at once (marker file VERSION next to bin/).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROMETHEUS_VERSION="3.16.0"
# Prometheus 3.x is published on the module proxy as v0.3xx.y.
MODULE="github.com/prometheus/prometheus/cmd/prometheus"
MODULE_VERSION="v0.316.0"

build() {
  # Without the version stamp it reports an empty version.
  go install -ldflags "-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}" \
    "${MODULE}@${MODULE_VERSION}" &&
    [[ "$("${GOBIN}/prometheus" --version 2>&1)" == *"version ${PROMETHEUS_VERSION}"* ]]
}

install_go_program prometheus.sh \
  "${1:-${XDG_DATA_HOME:-$HOME/.local/share}/autorma/prometheus/${PROMETHEUS_VERSION}}" \
  prometheus "${PROMETHEUS_VERSION}" build
