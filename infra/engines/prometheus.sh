#!/usr/bin/env bash
# Starts or stops Prometheus 3.16.0 for the telemetry test and the development stack: on
# 127.0.0.1, with its OTLP receiver on (`autorma` pushes metrics to
# http://127.0.0.1:PORT/api/v1/otlp/v1/metrics; no collector needed), the resource attributes a
# dashboard groups by promoted to labels, and its data under STATE_DIR.
# Needs the binary from infra/setup/prometheus.sh.
#
# Usage: infra/engines/prometheus.sh start|stop STATE_DIR
# Env:   PROMETHEUS_PORT       listen port (default 19090)
#        PROMETHEUS_RULES      alerting rules to load (default infra/prometheus/alerts.yml); a
#                              rule that does not parse stops the start
#        AUTORMA_PROMETHEUS    the binary to run (default: the one infra/setup/prometheus.sh made)
# Files in STATE_DIR: prometheus.yml (written at start), data/, prometheus.pid, prometheus.log.
#
# start: refuses if prometheus.pid names a live server; starts it detached, waits (60 s at most)
#        until /-/ready answers and prints "prometheus ready at http://127.0.0.1:PORT (pid N)".
# stop:  SIGTERM to the pid in prometheus.pid, SIGKILL after 20 s; fine when nothing runs.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh
ENGINE="prometheus"
# shellcheck source=infra/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: infra/engines/prometheus.sh start|stop STATE_DIR"; }
[[ $# -eq 2 ]] || usage
action="$1"
state="$(require_state_dir "$2")"
port="${PROMETHEUS_PORT:-19090}"
pidfile="${state}/prometheus.pid"
logfile="${state}/prometheus.log"
bin="${AUTORMA_PROMETHEUS:-${AUTORMA_DATA}/prometheus/${PROMETHEUS_VERSION}/bin/prometheus}"
match="prometheus --config.file=${state}/prometheus.yml"
rules="${PROMETHEUS_RULES:-${REPO_ROOT}/infra/prometheus/alerts.yml}"

start() {
  local pid
  [[ -x "${bin}" ]] || die "no prometheus binary at ${bin}; run infra/setup/prometheus.sh first"
  [[ -f "${rules}" ]] || die "no rules file at ${rules} (PROMETHEUS_RULES)"
  refuse_if_running "${pidfile}" "${match}"
  require_port_free "${port}" "PROMETHEUS_PORT"
  mkdir -p "${state}/data"
  # Nothing is scraped: every series arrives by OTLP. Pushed series get no staleness markers,
  # so queries look over the run's window. `service.instance.id` becomes `instance` and
  # `service.name` `job` on their own; the model's identity is promoted too.
  cat >"${state}/prometheus.yml" <<YML
global:
  evaluation_interval: 15s
rule_files:
  - ${rules}
otlp:
  promote_resource_attributes:
    - service.namespace
    - deployment.environment.name
    - host.name
storage:
  tsdb:
    out_of_order_time_window: 10m
YML
  start_detached "${pidfile}" "${logfile}" \
    "${bin}" --config.file="${state}/prometheus.yml" \
    --web.listen-address="127.0.0.1:${port}" \
    --web.enable-otlp-receiver \
    --storage.tsdb.path="${state}/data" \
    --storage.tsdb.retention.time=2d
  pid="$(read_pid "${pidfile}")"
  # /-/ready answers 503 while the storage starts.
  wait_until "${pidfile}" "${match}" "${logfile}" 60 "ready on 127.0.0.1:${port}" http_ok 127.0.0.1 "${port}" /-/ready
  echo "prometheus ready at http://127.0.0.1:${port} (pid ${pid})"
}

case "${action}" in
  start) start ;;
  stop) stop_pidfile "${pidfile}" "${match}" 20 ;;
  *) usage ;;
esac
