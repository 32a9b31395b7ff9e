#!/usr/bin/env bash
# Starts or stops a single-node Apache Kafka 4.4 broker in KRaft mode (broker and controller in
# one JVM) for development and the integration tests, from the jars that infra/setup/kafka.sh
# installed. Listens on 127.0.0.1 only.
#
# Usage: infra/engines/kafka.sh start|stop STATE_DIR
# Env:   KAFKA_PORT            client listener port (default 19092)
#        KAFKA_CONTROLLER_PORT KRaft controller listener port (default 19093)
#        KAFKA_PROXIED_PORT    a second client listener, for clients that reach the broker through
#                              a proxy (the chaos tests' Toxiproxy); needs KAFKA_PROXIED_ADVERTISE
#        KAFKA_PROXIED_ADVERTISE  the proxy's host:port, which that listener advertises, so that
#                              clients bootstrapped through the proxy stay on it
#        KAFKA_REQUEST_LOG     a file where the broker logs every request it answers, one JSON
#                              line each (Kafka's kafka.request.logger at DEBUG; it costs CPU):
#                              what the tests count requests per photo by; none by default
#        KAFKA_HEAP_OPTS       JVM heap flags (default -Xmx512m)
#        KAFKA_JIT_OPTS        JVM compiler flags (default -XX:TieredStopAtLevel=1, the quick
#                              compiler only: a development broker's traffic never repays C2's
#                              compilations, which took about half its CPU per photo; set it
#                              empty for the JVM's default)
#        AUTORMA_KAFKA_HOME    the install to use (default: the one infra/setup/kafka.sh made)
# Files in STATE_DIR: server.properties (rewritten at every start), kafka-data/ (the log dir,
#        formatted with a random cluster id on the first start only, so a stop and a start keep
#        topics and committed offsets), kafka.pid, kafka.log (broker log, stdout and stderr).
#
# start: refuses if kafka.pid names a live broker; starts the broker detached, waits (60 s at
#        most) until it answers metadata requests and prints
#        "kafka ready at 127.0.0.1:PORT (pid N)". Topics are not created here: infra/engines/topics.sh.
# stop:  SIGTERM to the pid in kafka.pid, SIGKILL after 20 s; fine when nothing runs.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh
ENGINE="kafka"
# shellcheck source=infra/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: infra/engines/kafka.sh start|stop STATE_DIR"; }
[[ $# -eq 2 ]] || usage
action="$1"
state="$(require_state_dir "$2")"
port="${KAFKA_PORT:-19092}"
controller_port="${KAFKA_CONTROLLER_PORT:-19093}"
pidfile="${state}/kafka.pid"
logfile="${state}/kafka.log"
config="${state}/server.properties"
data="${state}/kafka-data"
# What /proc/PID/cmdline must contain for the pid file to be this broker.
match="kafka.Kafka ${config}"

start() {
  local home pid
  home="$(kafka_home)"
  refuse_if_running "${pidfile}" "${match}"
  require_port_free "${port}" "KAFKA_PORT"
  require_port_free "${controller_port}" "KAFKA_CONTROLLER_PORT"
  local listeners="PLAINTEXT://127.0.0.1:${port}" advertised="PLAINTEXT://127.0.0.1:${port}"
  local protocols="PLAINTEXT:PLAINTEXT"
  if [[ -n "${KAFKA_PROXIED_PORT:-}" ]]; then
    [[ "${KAFKA_PROXIED_ADVERTISE:-}" == *:* ]] ||
      die "KAFKA_PROXIED_PORT needs KAFKA_PROXIED_ADVERTISE (the proxy's host:port), got '${KAFKA_PROXIED_ADVERTISE:-}'"
    require_port_free "${KAFKA_PROXIED_PORT}" "KAFKA_PROXIED_PORT"
    listeners+=",PROXIED://127.0.0.1:${KAFKA_PROXIED_PORT}"
    advertised+=",PROXIED://${KAFKA_PROXIED_ADVERTISE}"
    protocols+=",PROXIED:PLAINTEXT"
  fi

  cat >"${config}" <<EOF
# Written by infra/engines/kafka.sh at every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controller_port}
listeners=${listeners},CONTROLLER://127.0.0.1:${controller_port}
advertised.listeners=${advertised}
listener.security.protocol.map=${protocols},CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=${data}

# One node: every internal topic has one replica.
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer partitions for __consumer_offsets than the default 50: it is created faster.
offsets.topic.num.partitions=8

# Topics are made by infra/engines/topics.sh, never by a typo in a producer or consumer.
auto.create.topics.enable=false
num.partitions=1
# Consumer groups start at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
EOF

  # Format the log dir on the first start only; later starts keep its topics and offsets.
  if [[ ! -f "${data}/meta.properties" ]]; then
    local cluster_id
    # A KRaft cluster id is 16 random bytes in URL-safe base64 without padding. One that
    # starts with `-` reads as an option to the storage tool, so draw again (as Kafka's own
    # Uuid.randomUuid does).
    cluster_id="-"
    while [[ "${cluster_id}" == -* ]]; do
      cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    if ! java -Xmx256m -Dlog4j2.configurationFile="${REPO_ROOT}/infra/kafka/log4j2-tools.xml" \
        -cp "${home}/libs/*" kafka.tools.StorageTool format \
        --config "${config}" --cluster-id "${cluster_id}" >>"${logfile}" 2>&1; then
      log_tail "${logfile}" 20
      die "formatting ${data} failed"
    fi
  fi

  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS and KAFKA_JIT_OPTS hold several flags.
  start_detached "${pidfile}" "${logfile}" \
    java ${KAFKA_HEAP_OPTS:--Xmx512m} ${KAFKA_JIT_OPTS--XX:TieredStopAtLevel=1} -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="${REPO_ROOT}/infra/kafka/log4j2-server.xml" \
    -Dautorma.kafka.log="${logfile}" \
    -Dautorma.kafka.requests="${KAFKA_REQUEST_LOG:-/dev/null}" \
    -Dautorma.kafka.requests.level="$([[ -n "${KAFKA_REQUEST_LOG:-}" ]] && echo debug || echo warn)" \
    -cp "${home}/libs/*" kafka.Kafka "${config}"
  pid="$(read_pid "${pidfile}")"
  # One client JVM, started at once so that its own start-up overlaps the broker's, polls until
  # metadata requests work; it gives up early if the broker process exits.
  local ready=0
  kafka_admin ready "127.0.0.1:${port}" 60 "${pid}" || ready=$?
  if ! pid_running "${pid}" "${match}"; then
    start_failed "${pidfile}" "${match}" "${logfile}" "the broker (pid ${pid}) exited during start-up"
  fi
  if ((ready != 0)); then
    start_failed "${pidfile}" "${match}" "${logfile}" \
      "the broker (pid ${pid}) did not answer metadata requests within 60 s; stopped it"
  fi
  echo "kafka ready at 127.0.0.1:${port} (pid ${pid})"
}

case "${action}" in
  start) start ;;
  stop) stop_pidfile "${pidfile}" "${match}" 20 ;;
  *) usage ;;
esac
