#!/usr/bin/env bash
# Builds Jaeger v2 (Apache-2.0; the OpenTelemetry Collector with Jaeger's storage and query)
# from source and installs the binary in the per-user cache the other engines use:
#   ${XDG_DATA_HOME:-$HOME/.local/share}/autorma/jaeger/<version>/bin/jaeger
# `infra/engines/jaeger.sh` runs it from there (OTLP in, traces in memory, the query API out),
# for the trace test and the development stack; no Docker needed.
#
# Usage: infra/setup/jaeger.sh [DEST_DIR]
# Needs: go >= 1.26.8 (jaeger/go.mod says so), network to the Go module proxy. Jaeger's go.mod has `replace` lines, so
# `go install pkg@version` refuses it: it is built as a tool of infra/jaeger/go.mod, whose
# go.sum pins every module. About 4 minutes of CPU when the Go caches are cold. The UI is
# not in a source build (the query API is; the Docker image has both).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAEGER_VERSION="2.13.0"
# Jaeger 2.13.0 is tagged v1.76.0 on the module proxy (its module path has no /v2);
# infra/jaeger/go.mod requires that tag.
MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../jaeger" && pwd)"

build() {
  (cd "${MODULE_DIR}" && go build -trimpath -o "${GOBIN}/jaeger" \
    -ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=v${JAEGER_VERSION}" \
    github.com/jaegertracing/jaeger/cmd/jaeger) &&
    [[ "$("${GOBIN}/jaeger" version 2>/dev/null)" == *"\"gitVersion\":\"v${JAEGER_VERSION}\""* ]]
}

install_go_program jaeger.sh \
  "${1:-${XDG_DATA_HOME:-$HOME/.local/share}/autorma/jaeger/${JAEGER_VERSION}}" \
  jaeger "${JAEGER_VERSION}" build
