#!/usr/bin/env bash
# Builds the Versity S3 Gateway (versitygw, Apache-2.0) from source with `go install` and installs
# the binary in a per-user cache keyed by version:
#   ${XDG_DATA_HOME:-$HOME/.local/share}/autorma/versitygw/<version>/bin/versitygw
# `infra/engines/versitygw.sh` runs it from there (an S3 endpoint that publishes bucket
# notifications to Kafka), for development and the integration tests; no Docker needed.
#
# Usage: infra/setup/versitygw.sh [DEST_DIR]
# Needs: go >= 1.25 (the module's go.mod asks for it), network to the Go module proxy. Go itself
# checks every module against sum.golang.org. The default Go caches are reused, so a rebuild is
# quick once they are warm; a cold build takes about 3 minutes.
# Idempotent: once installed (marker file VERSION next to bin/), a second run exits at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSITYGW_VERSION="1.8.0"
MODULE="github.com/versity/versitygw/cmd/versitygw"

dest="${1:-${XDG_DATA_HOME:-$HOME/.local/share}/autorma/versitygw/${VERSITYGW_VERSION}}"
bin="${dest}/bin/versitygw"
marker="${dest}/VERSION"

if [[ -x "${bin}" && -f "${marker}" && "$(cat "${marker}")" == "${VERSITYGW_VERSION}" ]]; then
  echo "versitygw ${VERSITYGW_VERSION} already installed at ${bin}"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "versitygw.sh: go is not on PATH; install Go >= 1.25 (https://go.dev/dl/) and run again" >&2
  exit 1
fi

work="$(begin_install "${dest}" versitygw.sh bin VERSION)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/bin"
echo "building versitygw ${VERSITYGW_VERSION} with $(go version | cut -d' ' -f3) (a few minutes when the Go caches are cold)..."
if ! GOBIN="${work}/bin" go install "${MODULE}@v${VERSITYGW_VERSION}"; then
  echo "versitygw.sh: go install ${MODULE}@v${VERSITYGW_VERSION} failed (see above)" >&2
  exit 1
fi
if [[ ! -x "${work}/bin/versitygw" ]]; then
  echo "versitygw.sh: go install did not produce ${work}/bin/versitygw" >&2
  exit 1
fi
echo "${VERSITYGW_VERSION}" > "${work}/VERSION"
rm -rf "${dest}"
mv "${work}" "${dest}"
trap - EXIT
echo "installed versitygw ${VERSITYGW_VERSION} at ${bin}"
