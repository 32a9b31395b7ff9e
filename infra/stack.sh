#!/usr/bin/env bash
# The whole streaming stack on this machine, for trying AutoRMA out: Kafka (KRaft), the topics,
# versitygw (an S3 server over a folder that publishes bucket notifications to Kafka), then
# `autorma ingest`, one `autorma worker` and `autorma serve --streaming` (the API and the
# returns-bench page). Everything listens on 127.0.0.1 and is stopped by its own pid.
#
# Usage: infra/stack.sh up|down|status|results
#   up       installs what is missing (Kafka, versitygw, ONNX Runtime), builds autorma (release),
#            starts everything and prints where to PUT photos
#   down     stops everything (serve, worker, ingest, versitygw, Kafka), keeping the data
#   status   which parts run, with their resident memory
#   results  follows rma.results (Ctrl-C to stop)
# Env: AUTORMA_STACK_DIR (default .data/stack: data, pid files and logs), KAFKA_PORT (19092),
#      KAFKA_CONTROLLER_PORT (19093), S3_PORT (19000), S3_BUCKET (returns), SERVE_PORT (18080).
set -euo pipefail
ENGINE="stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/engines/lib.sh"

state="$(require_state_dir "${AUTORMA_STACK_DIR:-${REPO_ROOT}/.data/stack}")"
export KAFKA_PORT="${KAFKA_PORT:-19092}" KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
export S3_PORT="${S3_PORT:-19000}" S3_BUCKET="${S3_BUCKET:-returns}" SERVE_PORT="${SERVE_PORT:-18080}"
export S3_ACCESS_KEY="${S3_ACCESS_KEY:-autorma}" S3_SECRET_KEY="${S3_SECRET_KEY:-autorma-secret}"
export KAFKA_BROKER="127.0.0.1:${KAFKA_PORT}"
autorma="${REPO_ROOT}/target/release/autorma"

# The settings `autorma ingest` and `autorma worker` read (see `autorma worker --help`).
write_env() {
  cat >"${state}/env" <<ENV
export AUTORMA_KAFKA_BROKERS=${KAFKA_BROKER}
export AUTORMA_S3_ENDPOINT=http://127.0.0.1:${S3_PORT}
export AUTORMA_BUCKET=${S3_BUCKET}
export AUTORMA_KEY_ENCODING=raw
export AUTORMA_MODEL=${REPO_ROOT}/models/fashion5
export AWS_ACCESS_KEY_ID=${S3_ACCESS_KEY}
export AWS_SECRET_ACCESS_KEY=${S3_SECRET_KEY}
export AWS_REGION=us-east-1
ENV
}

# start_autorma COMMAND [ARGS...]: `autorma COMMAND ARGS` in the background, pid and log named
# for COMMAND.
start_autorma() {
  local name="$1"
  refuse_if_running "${state}/${name}.pid" "autorma ${name}"
  # shellcheck disable=SC1091
  (source "${state}/env" && start_detached "${state}/${name}.pid" "${state}/${name}.log" "${autorma}" "$@")
  sleep 2
  pid_running "$(read_pid "${state}/${name}.pid")" "autorma ${name}" ||
    start_failed "${state}/${name}.pid" "autorma ${name}" "${state}/${name}.log" "autorma ${name} exited at start"
  echo "autorma ${name} running (pid $(read_pid "${state}/${name}.pid"), log ${state}/${name}.log)"
}

case "${1:-}" in
  up)
    "${REPO_ROOT}/infra/setup/build-tools.sh"
    "${REPO_ROOT}/infra/setup/kafka.sh"
    "${REPO_ROOT}/infra/setup/versitygw.sh"
    "${REPO_ROOT}/infra/setup/onnxruntime.sh"
    (cd "${REPO_ROOT}" && cargo build --release --locked --quiet)
    "${ENGINES_DIR}/kafka.sh" start "${state}/kafka"
    "${ENGINES_DIR}/topics.sh" "${KAFKA_BROKER}"
    "${ENGINES_DIR}/versitygw.sh" start "${state}/s3"
    write_env
    start_autorma ingest
    start_autorma worker
    start_autorma serve --streaming --listen "127.0.0.1:${SERVE_PORT}" --index "${state}/serve-index.sqlite"
    cat <<EOF2

The stack is up. The returns-bench page and the API: http://127.0.0.1:${SERVE_PORT}/
Drop photos on the page, or PUT them under inbox/ in bucket '${S3_BUCKET}' at http://127.0.0.1:${S3_PORT}
(access key '${S3_ACCESS_KEY}', secret '${S3_SECRET_KEY}', region us-east-1), e.g.:

  AWS_ACCESS_KEY_ID=${S3_ACCESS_KEY} AWS_SECRET_ACCESS_KEY=${S3_SECRET_KEY} AWS_REGION=us-east-1 \\
    aws --endpoint-url http://127.0.0.1:${S3_PORT} s3 cp --recursive ../shared/datasets/fashion5/test s3://${S3_BUCKET}/inbox/

Results: results/<key>.json in the bucket, and the topic rma.results: infra/stack.sh results
Models: the worker seeded the registry (s3://${S3_BUCKET}/models/fashion5/) with models/fashion5 as
version 1 of 'production'. With the settings below: ${autorma} model list | push DIR | promote N |
rollback | history, and ${autorma} replay (the inbox again, through the production version).
Settings for more workers (same group, up to 4 partitions): source ${state}/env && ${autorma} worker
Stop: infra/stack.sh down
EOF2
    ;;
  down)
    ENGINE="autorma serve" stop_pidfile "${state}/serve.pid" "autorma serve"
    ENGINE="autorma worker" stop_pidfile "${state}/worker.pid" "autorma worker"
    ENGINE="autorma ingest" stop_pidfile "${state}/ingest.pid" "autorma ingest"
    "${ENGINES_DIR}/versitygw.sh" stop "${state}/s3"
    "${ENGINES_DIR}/kafka.sh" stop "${state}/kafka"
    ;;
  status)
    for entry in "kafka/kafka.pid:kafka.Kafka" "s3/versitygw.pid:versitygw" "ingest.pid:autorma ingest" "worker.pid:autorma worker" "serve.pid:autorma serve"; do
      pidfile="${state}/${entry%%:*}" match="${entry#*:}"
      pid="$(read_pid "${pidfile}")"
      if [[ -n "${pid}" ]] && pid_running "${pid}" "${match}"; then
        echo "${match}: running (pid ${pid}, $(($(rss_kb "${pid}") / 1024)) MiB resident)"
      else
        echo "${match}: not running"
      fi
    done
    ;;
  results)
    home="$(kafka_home)"
    exec java -Xmx256m -Dlog4j2.configurationFile="${REPO_ROOT}/infra/kafka/log4j2-tools.xml" -cp "${home}/libs/*" \
      org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "${KAFKA_BROKER}" --topic rma.results \
      --from-beginning --formatter-property print.key=true
    ;;
  *)
    die "usage: infra/stack.sh up|down|status|results"
    ;;
esac
