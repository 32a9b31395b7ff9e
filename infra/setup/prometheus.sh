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

dest="${1:-${XDG_DATA_HOME:-$HOME/.local/share}/autorma/prometheus/${PROMETHEUS_VERSION}}"
bin="${dest}/bin/prometheus"
marker="${dest}/VERSION"

if [[ -x "${bin}" && -f "${marker}" && "$(cat "${marker}")" == "${PROMETHEUS_VERSION}" ]]; then
  echo "prometheus ${PROMETHEUS_VERSION} already installed at ${bin}"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "prometheus.sh: go is not on PATH; install Go (https://go.dev/dl/) and run again" >&2
  exit 1
fi

work="$(begin_install "${dest}" prometheus.sh bin VERSION)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/bin"
echo "building prometheus ${PROMETHEUS_VERSION} with $(go version | cut -d' ' -f3) (about 10 minutes of CPU when the Go caches are cold)..."
# Without the version stamp it reports an empty version.
if ! GOBIN="${work}/bin" go install \
  -ldflags "-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}" \
  "${MODULE}@${MODULE_VERSION}"; then
  echo "prometheus.sh: go install ${MODULE}@${MODULE_VERSION} failed (see above)" >&2
  exit 1
fi
"${work}/bin/prometheus" --version | grep -q "version ${PROMETHEUS_VERSION}" || {
  echo "prometheus.sh: the binary does not report version ${PROMETHEUS_VERSION}" >&2
  exit 1
}
echo "${PROMETHEUS_VERSION}" > "${work}/VERSION"
rm -rf "${dest}"
mv "${work}" "${dest}"
trap - EXIT
echo "installed prometheus ${PROMETHEUS_VERSION} at ${bin}"
