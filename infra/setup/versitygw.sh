#!/usr/bin/env bash
# Builds the Versity S3 Gateway (versitygw, Apache-2.0) from source with `go install` and installs
# the binary in a per-user cache keyed by version:
#   ${XDG_DATA_HOME:-$HOME/.local/share}/autorma/versitygw/<version>/bin/versitygw
# `infra/engines/versitygw.sh` runs it from there (an S3 endpoint that publishes bucket
# notifications to Kafka), for development and the integration tests; no Docker needed.
#
# Usage: infra/setup/versitygw.sh [DEST_DIR]
# Needs: go >= 1.25 (the module's go.mod asks for it), network to the Go module proxy. Go itself
# checks every module against sum.golang.org. A cold build takes about 3 minutes.
# Idempotent: once installed (marker file VERSION next to bin/), a second run exits at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSITYGW_VERSION="1.8.0"
MODULE="github.com/versity/versitygw/cmd/versitygw"

install_go_program versitygw.sh \
  "${1:-${XDG_DATA_HOME:-$HOME/.local/share}/autorma/versitygw/${VERSITYGW_VERSION}}" \
  versitygw "${VERSITYGW_VERSION}" go install "${MODULE}@v${VERSITYGW_VERSION}"
