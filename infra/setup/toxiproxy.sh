#!/usr/bin/env bash
# Builds Shopify's Toxiproxy server (MIT) from source with `go install` and installs it in a
# per-user cache keyed by version:
#   ${XDG_DATA_HOME:-$HOME/.local/share}/autorma/toxiproxy/<version>/bin/toxiproxy-server
# `infra/engines/toxiproxy.sh` runs it: a TCP proxy with an HTTP API that adds network faults
# (latency, resets, timeouts, stalls) between the workers and Kafka or S3, for the chaos suite.
#
# Usage: infra/setup/toxiproxy.sh [DEST_DIR]
# Needs: go, network to the Go module proxy (Go checks every module against sum.golang.org).
# Idempotent: once installed (marker file VERSION next to bin/), a second run exits at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOXIPROXY_VERSION="2.12.0"
MODULE="github.com/Shopify/toxiproxy/v2/cmd/server"

# The module's command is named `server`: installed under a name that says what it is.
build() {
  go install "${MODULE}@v${TOXIPROXY_VERSION}"
  mv "${GOBIN}/server" "${GOBIN}/toxiproxy-server"
}

install_go_program toxiproxy.sh \
  "${1:-${XDG_DATA_HOME:-$HOME/.local/share}/autorma/toxiproxy/${TOXIPROXY_VERSION}}" \
  toxiproxy-server "${TOXIPROXY_VERSION}" build
