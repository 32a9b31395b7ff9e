#!/usr/bin/env bash
# Starts or stops the Versity S3 Gateway (versitygw 1.8.0, posix backend) for development and the
# integration tests: an S3 endpoint on 127.0.0.1 serving the folders of S3_ROOT as buckets, which
# publishes an S3 event notification (JSON) to a Kafka topic for every object change.
# Needs the binary from infra/setup/versitygw.sh, and a running broker that already has the event
# topic (infra/engines/kafka.sh, then infra/engines/topics.sh): versitygw exits at start
# otherwise. At start it sends one "s3:TestEvent" message to the topic.
#
# Usage: infra/engines/versitygw.sh start|stop STATE_DIR
# Env:   S3_PORT          listen port (default 19000)
#        S3_ROOT          the posix backend's root; every sub-folder is a bucket
#                         (default STATE_DIR/s3; its file system must support user xattrs)
#        S3_BUCKET        bucket folder made under S3_ROOT at start (default returns)
#        S3_ACCESS_KEY    root access key (default autorma)
#        S3_SECRET_KEY    root secret key (default autorma-secret)
#        S3_EVENT_TOPIC   Kafka topic for the notifications (default rma.uploads.raw)
#        KAFKA_BROKER     broker address (default 127.0.0.1:19092)
#        S3_ACCESS_LOG    a file for S3 server access logs (one whole line per request: bucket,
#                         operation, key, status; what tests count requests by); none by default
#        AUTORMA_VERSITYGW  the binary to run (default: the one infra/setup/versitygw.sh made)
# Files in STATE_DIR: versitygw.pid, versitygw.log (its stdout and stderr, one line per request).
#
# start: refuses if versitygw.pid names a live gateway; starts it detached, waits (30 s at most)
#        until it answers HTTP while still alive and prints
#        "versitygw ready at http://127.0.0.1:PORT (pid N)".
# stop:  SIGTERM to the pid in versitygw.pid, SIGKILL after 20 s; fine when nothing runs.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh
ENGINE="versitygw"
# shellcheck source=infra/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: infra/engines/versitygw.sh start|stop STATE_DIR"; }
[[ $# -eq 2 ]] || usage
action="$1"
state="$(require_state_dir "$2")"
port="${S3_PORT:-19000}"
root="${S3_ROOT:-${state}/s3}"
bucket="${S3_BUCKET:-returns}"
broker="${KAFKA_BROKER:-127.0.0.1:19092}"
topic="${S3_EVENT_TOPIC:-rma.uploads.raw}"
pidfile="${state}/versitygw.pid"
logfile="${state}/versitygw.log"
bin="${AUTORMA_VERSITYGW:-${AUTORMA_DATA}/versitygw/${VERSITYGW_VERSION}/bin/versitygw}"
# What /proc/PID/cmdline must contain for the pid file to be a gateway started here (whatever
# S3_PORT was then: stop must not depend on the env it is called with).
match="versitygw --port 127.0.0.1:"

start() {
  local pid
  [[ -x "${bin}" ]] || die "no versitygw binary at ${bin}; run infra/setup/versitygw.sh first"
  refuse_if_running "${pidfile}" "${match}"
  require_port_free "${port}" "S3_PORT"
  # Fail here with a clear message rather than in versitygw's log.
  port_open "${broker%:*}" "${broker##*:}" ||
    die "no Kafka broker at ${broker}; start it first (infra/engines/kafka.sh, then infra/engines/topics.sh)"
  [[ "${bucket}" != */* && -n "${bucket}" ]] || die "S3_BUCKET must be one folder name, got '${bucket}'"
  mkdir -p "${root}/${bucket}"

  start_detached "${pidfile}" "${logfile}" \
    "${bin}" --port "127.0.0.1:${port}" \
    --access "${S3_ACCESS_KEY:-autorma}" --secret "${S3_SECRET_KEY:-autorma-secret}" \
    --region us-east-1 \
    --event-kafka-url "${broker}" --event-kafka-topic "${topic}" \
    ${S3_ACCESS_LOG:+--access-log "${S3_ACCESS_LOG}"} \
    posix "${root}"
  pid="$(read_pid "${pidfile}")"
  wait_until "${pidfile}" "${match}" "${logfile}" 30 "answering HTTP on 127.0.0.1:${port}" \
    http_answers 127.0.0.1 "${port}"
  if ! pid_running "${pid}" "${match}"; then
    start_failed "${pidfile}" "${match}" "${logfile}" "versitygw (pid ${pid}) exited"
  fi
  echo "versitygw ready at http://127.0.0.1:${port} (pid ${pid})"
}

case "${action}" in
  start) start ;;
  stop) stop_pidfile "${pidfile}" "${match}" 20 ;;
  *) usage ;;
esac
