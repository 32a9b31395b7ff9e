#!/usr/bin/env bash
# Starts or stops Shopify's Toxiproxy (2.12.0, MIT) for the chaos tests: TCP proxies, made and
# given faults ("toxics": latency, timeouts, resets, stalls) through its HTTP API, between the
# workers and Kafka or S3. Needs the binary from infra/setup/toxiproxy.sh.
#
# Usage: infra/engines/toxiproxy.sh start|stop STATE_DIR
# Env:   TOXIPROXY_PORT      the HTTP API's port on 127.0.0.1 (default 18474)
#        TOXIPROXY_CONFIG    a JSON file of proxies to make at start ([{"name", "listen",
#                            "upstream"}], Toxiproxy's -config); none by default (make them with
#                            POST /proxies)
#        AUTORMA_TOXIPROXY   the binary to run (default: the one infra/setup/toxiproxy.sh made)
# Files in STATE_DIR: toxiproxy.pid, toxiproxy.log (its stdout and stderr).
#
# start: refuses if toxiproxy.pid names a live server; starts it detached, waits (30 s at most)
#        until GET /version answers 200 and prints "toxiproxy ready at http://127.0.0.1:PORT (pid N)".
# stop:  SIGTERM to the pid in toxiproxy.pid, SIGKILL after 10 s; fine when nothing runs.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh
ENGINE="toxiproxy"
# shellcheck source=infra/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: infra/engines/toxiproxy.sh start|stop STATE_DIR"; }
[[ $# -eq 2 ]] || usage
action="$1"
state="$(require_state_dir "$2")"
port="${TOXIPROXY_PORT:-18474}"
pidfile="${state}/toxiproxy.pid"
logfile="${state}/toxiproxy.log"
bin="${AUTORMA_TOXIPROXY:-${AUTORMA_DATA}/toxiproxy/${TOXIPROXY_VERSION}/bin/toxiproxy-server}"
match="toxiproxy-server -host 127.0.0.1"

start() {
  local pid config=()
  [[ -x "${bin}" ]] || die "no toxiproxy-server binary at ${bin}; run infra/setup/toxiproxy.sh first"
  refuse_if_running "${pidfile}" "${match}"
  require_port_free "${port}" "TOXIPROXY_PORT"
  if [[ -n "${TOXIPROXY_CONFIG:-}" ]]; then
    [[ -f "${TOXIPROXY_CONFIG}" ]] || die "TOXIPROXY_CONFIG: no file at ${TOXIPROXY_CONFIG}"
    config=(-config "${TOXIPROXY_CONFIG}")
  fi
  start_detached "${pidfile}" "${logfile}" "${bin}" -host 127.0.0.1 -port "${port}" "${config[@]}"
  pid="$(read_pid "${pidfile}")"
  wait_until "${pidfile}" "${match}" "${logfile}" 30 "answering GET /version on 127.0.0.1:${port}" \
    http_ok 127.0.0.1 "${port}" /version
  echo "toxiproxy ready at http://127.0.0.1:${port} (pid ${pid})"
}

case "${action}" in
  start) start ;;
  stop) stop_pidfile "${pidfile}" "${match}" 10 ;;
  *) usage ;;
esac
