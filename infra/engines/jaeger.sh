#!/usr/bin/env bash
# Starts or stops Jaeger 2.13.0 for the trace test and the development stack: on 127.0.0.1,
# OTLP/HTTP in (`autorma --otlp-traces-endpoint http://127.0.0.1:OTLP_PORT`), traces kept in
# memory (gone when it stops), the query API at http://127.0.0.1:QUERY_PORT/api/traces.
# Needs the binary from infra/setup/jaeger.sh; its configuration is infra/jaeger/config.yaml.
#
# Usage: infra/engines/jaeger.sh start|stop STATE_DIR
# Env:   JAEGER_OTLP_PORT        OTLP/HTTP port (default 19318)
#        JAEGER_QUERY_PORT       query API port (default 19686)
#        JAEGER_QUERY_GRPC_PORT  query gRPC port (default 19685)
#        AUTORMA_JAEGER          the binary to run (default: the one infra/setup/jaeger.sh made)
# Files in STATE_DIR: jaeger.pid, jaeger.log.
#
# start: refuses if jaeger.pid names a live server; starts it detached, waits (60 s at most)
#        until the query API answers and the OTLP port accepts, and prints
#        "jaeger ready: OTLP at http://127.0.0.1:OTLP_PORT, query at http://127.0.0.1:QUERY_PORT (pid N)".
# stop:  SIGTERM to the pid in jaeger.pid, SIGKILL after 20 s; fine when nothing runs.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh
ENGINE="jaeger"
# shellcheck source=infra/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: infra/engines/jaeger.sh start|stop STATE_DIR"; }
[[ $# -eq 2 ]] || usage
action="$1"
state="$(require_state_dir "$2")"
export JAEGER_OTLP_PORT="${JAEGER_OTLP_PORT:-19318}"
export JAEGER_QUERY_PORT="${JAEGER_QUERY_PORT:-19686}"
export JAEGER_QUERY_GRPC_PORT="${JAEGER_QUERY_GRPC_PORT:-19685}"
pidfile="${state}/jaeger.pid"
logfile="${state}/jaeger.log"
bin="${AUTORMA_JAEGER:-${AUTORMA_DATA}/jaeger/${JAEGER_VERSION}/bin/jaeger}"
config="${REPO_ROOT}/infra/jaeger/config.yaml"
match="--config=file:${config}"

ready() {
  http_ok 127.0.0.1 "${JAEGER_QUERY_PORT}" /api/services && port_open 127.0.0.1 "${JAEGER_OTLP_PORT}"
}

start() {
  local pid
  [[ -x "${bin}" ]] || die "no jaeger binary at ${bin}; run infra/setup/jaeger.sh first"
  refuse_if_running "${pidfile}" "${match}"
  require_port_free "${JAEGER_OTLP_PORT}" "JAEGER_OTLP_PORT"
  require_port_free "${JAEGER_QUERY_PORT}" "JAEGER_QUERY_PORT"
  require_port_free "${JAEGER_QUERY_GRPC_PORT}" "JAEGER_QUERY_GRPC_PORT"
  start_detached "${pidfile}" "${logfile}" "${bin}" --config="file:${config}"
  pid="$(read_pid "${pidfile}")"
  wait_until "${pidfile}" "${match}" "${logfile}" 60 "ready on 127.0.0.1:${JAEGER_QUERY_PORT}" ready
  echo "jaeger ready: OTLP at http://127.0.0.1:${JAEGER_OTLP_PORT}, query at http://127.0.0.1:${JAEGER_QUERY_PORT} (pid ${pid})"
}

case "${action}" in
  start) start ;;
  stop) stop_pidfile "${pidfile}" "${match}" 20 ;;
  *) usage ;;
esac
