# shellcheck shell=bash disable=SC2034 # the versions are read by the sourcing scripts.
# Shared helpers for the infra/engines scripts; sourced, not run. Callers set `set -euo pipefail`;
# the engine scripts also set ENGINE (the name in stop's messages, e.g. "kafka").
#
# Processes are started detached (their own session, stdin from /dev/null, output appended to a
# log) and recorded in a pid file; they are only ever stopped through that pid, after checking
# that /proc/PID/cmdline still names the expected program (so a recycled pid is never killed).

# The ports the engine being started asked for (require_port_free adds them).
ENGINE_PORTS=()
ENGINES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${ENGINES_DIR}/../.." && pwd)"
AUTORMA_DATA="${XDG_DATA_HOME:-$HOME/.local/share}/autorma"
KAFKA_VERSION="4.4.0"
VERSITYGW_VERSION="1.8.0"
PROMETHEUS_VERSION="3.16.0"
JAEGER_VERSION="2.13.0"
TOXIPROXY_VERSION="2.12.0"

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

# log_tail FILE [LINES]: the end of a log, for error messages.
log_tail() {
  local file="$1" lines="${2:-40}"
  if [[ -f "${file}" ]]; then
    echo "---- last ${lines} lines of ${file} ----" >&2
    tail -n "${lines}" "${file}" >&2
    echo "----" >&2
  fi
}

# kafka_home: the Kafka install made by infra/setup/kafka.sh (override: AUTORMA_KAFKA_HOME).
kafka_home() {
  local home="${AUTORMA_KAFKA_HOME:-${AUTORMA_DATA}/kafka/${KAFKA_VERSION}}"
  if [[ ! -d "${home}/libs" || ! -f "${home}/JARS_SHA256" ]]; then
    die "no Kafka ${KAFKA_VERSION} install at ${home}; run infra/setup/kafka.sh first"
  fi
  command -v java >/dev/null 2>&1 || die "java is not on PATH; Kafka ${KAFKA_VERSION} needs a JDK >= 17"
  echo "${home}"
}

# kafka_admin ARGS...: runs infra/kafka/KafkaAdmin.java (single-file source) on the cached jars.
# The JVM flags trade peak speed for start-up time; the log4j2 config keeps client chatter at WARN.
kafka_admin() {
  local home
  home="$(kafka_home)"
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="${REPO_ROOT}/infra/kafka/log4j2-tools.xml" \
    -cp "${home}/libs/*" "${REPO_ROOT}/infra/kafka/KafkaAdmin.java" "$@"
}

# require_state_dir DIR: makes DIR if needed and prints its absolute path.
require_state_dir() {
  [[ -n "${1:-}" ]] || die "missing STATE_DIR argument"
  mkdir -p "$1" || die "cannot create state dir $1"
  (cd "$1" && pwd)
}

# port_open HOST PORT: true when something accepts TCP connections there (bash /dev/tcp, 1 s max).
port_open() {
  timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# http_status HOST PORT PATH: the status line of GET PATH there (2 s at most), or nothing.
http_status() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n" "$3" "$1" "$2" >&3
    IFS= read -r line <&3 && echo "${line}"' _ "$1" "$2" "$3" 2>/dev/null
}

# http_answers HOST PORT: true when an HTTP server answers there, whatever the status code.
http_answers() {
  [[ "$(http_status "$1" "$2" /)" == HTTP/* ]]
}

# http_ok HOST PORT PATH: true when GET PATH answers 200 there.
http_ok() {
  [[ "$(http_status "$1" "$2" "$3")" == "HTTP/1.1 200"* ]]
}

# port_owner PORT: who listens on PORT (ss's line, with the process where ss may show it), or
# "nothing listens".
port_owner() {
  local line
  command -v ss >/dev/null 2>&1 || { echo "unknown: ss (iproute2) is not installed"; return 0; }
  line="$(ss -Hltnp "sport = :$1" 2>/dev/null | tr -s ' ' | head -n 3)"
  echo "${line:-nothing listens}"
}

# require_port_free PORT WHAT: refuses to go on when 127.0.0.1:PORT is already taken; remembers
# PORT in ENGINE_PORTS, whose owners a failed start reports.
require_port_free() {
  if port_open 127.0.0.1 "$1"; then
    die "127.0.0.1:$1 ($2) is already in use ($(port_owner "$1")); stop it or pick another port"
  fi
  ENGINE_PORTS+=("$1")
}

# process_alive PID: true when PID exists and is not a zombie (one that has exited and waits to
# be reaped still answers kill -0).
process_alive() {
  local stat state
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The state follows the command name, which is in parentheses and may hold spaces.
  state="${stat##*) }"
  state="${state%% *}"
  [[ -n "${state}" && "${state}" != "Z" && "${state}" != "X" ]]
}

# cmdline_of PID: PID's command line, its arguments joined by spaces; fails when PID is gone.
# Empty while the process execs (and for a zombie).
cmdline_of() {
  { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null
}

# pid_running PID MATCH: true when PID is alive and its command line contains MATCH.
pid_running() {
  local pid="$1" match="$2" cmdline
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  kill -0 "${pid}" 2>/dev/null || return 1
  cmdline="$(cmdline_of "${pid}")" || return 1
  [[ "${cmdline}" == *"${match}"* ]]
}

# read_pid PIDFILE: the pid recorded there, or nothing.
read_pid() {
  [[ -f "$1" ]] && tr -dc '0-9' <"$1" || true
}

# refuse_if_running PIDFILE MATCH: dies when PIDFILE names a live process whose command line
# contains MATCH; removes a stale PIDFILE.
refuse_if_running() {
  local pid
  pid="$(read_pid "$1")"
  if [[ -n "${pid}" ]] && pid_running "${pid}" "$2"; then
    die "already running (pid ${pid}, from $1); run stop first"
  fi
  rm -f "$1"
}

# start_detached PIDFILE LOGFILE CMD...: starts CMD in its own session, detached from the caller
# (it survives the calling script and its terminal), stdout and stderr appended to LOGFILE, and
# records its pid in PIDFILE. Prints nothing; the pid is in PIDFILE.
#
# A small supervisor (bash, in the new session) runs CMD as its child and, when CMD ends, appends
# how it ended to LOGFILE ("... exited with status 1", "... killed by SIGKILL"): an engine that
# dies before its own logger starts still leaves that line. PIDFILE names CMD itself, so stop
# signals the engine, not the supervisor.
#
# Returns only once the child has exec'd CMD (or has already ended). Until then its
# /proc/PID/cmdline is the supervisor's, and while the kernel swaps the program in it reads as
# empty: a pid_running check in that window took a healthy engine for one that had exited
# ("exited before answering HTTP" with an empty log, then stopped it), the versitygw start
# failure seen under load.
start_detached() {
  local pidfile="$1" logfile="$2" pid cmdline
  shift 2
  rm -f "${pidfile}"
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c '# autorma engine supervisor
    pidfile="$1"
    shift
    "$@" &
    child=$!
    echo "${child}" >"${pidfile}"
    status=0
    wait "${child}" || status=$?
    if ((status > 128)) && signal="$(kill -l "$((status - 128))" 2>/dev/null)"; then
      how="killed by SIG${signal} (status ${status})"
    else
      how="exited with status ${status}"
    fi
    echo "[infra/engines $(date -u +%Y-%m-%dT%H:%M:%SZ)] $1 (pid ${child}) ${how}"
  ' infra/engines "${pidfile}" "$@" </dev/null >>"${logfile}" 2>&1 &
  for _ in $(seq 1 100); do
    pid="$(read_pid "${pidfile}")"
    if [[ -n "${pid}" ]]; then
      # Until the exec the child is a copy of the supervisor (its command line names it), during
      # the exec its command line is empty; gone or a zombie: it has already ended.
      cmdline="$(cmdline_of "${pid}")" || cmdline=""
      if [[ -n "${cmdline}" && "${cmdline}" != *"# autorma engine supervisor"* ]] || ! process_alive "${pid}"; then
        return 0
      fi
    fi
    sleep 0.05
  done
  die "the process did not start $1 within 5 s (pid file ${pidfile})"
}

# start_failed PIDFILE MATCH LOGFILE MESSAGE: after a failed start, prints the log tail, stops the
# process if it still runs (so a failed start leaves nothing behind) and dies with MESSAGE.
start_failed() {
  local pidfile="$1" match="$2" logfile="$3" message="$4" port
  log_tail "${logfile}"
  for port in "${ENGINE_PORTS[@]}"; do
    echo "127.0.0.1:${port} now: $(port_owner "${port}")" >&2
  done
  stop_pidfile "${pidfile}" "${match}" 10 >/dev/null
  die "${message}; log: ${logfile}"
}

# wait_until PIDFILE MATCH LOGFILE TIMEOUT_S WHAT CHECK...: polls `CHECK...` every 0.2 s until it
# succeeds while the process lives; fails through start_failed when the process exits or
# TIMEOUT_S pass first.
wait_until() {
  local pidfile="$1" match="$2" logfile="$3" timeout_s="$4" what="$5" pid deadline
  shift 5
  pid="$(read_pid "${pidfile}")"
  deadline=$((SECONDS + timeout_s))
  while true; do
    if ! pid_running "${pid}" "${match}"; then
      start_failed "${pidfile}" "${match}" "${logfile}" "the process (pid ${pid}) exited before ${what}"
    fi
    "$@" && return 0
    if ((SECONDS >= deadline)); then
      start_failed "${pidfile}" "${match}" "${logfile}" "not ${what} after ${timeout_s} s; stopped it"
    fi
    sleep 0.2
  done
}

# stop_pidfile PIDFILE MATCH [TIMEOUT_S]: SIGTERM to the pid in PIDFILE, up to TIMEOUT_S (20) s
# for it to exit, then SIGKILL. Nothing to do (and success) when it is not running.
stop_pidfile() {
  local pidfile="$1" match="$2" timeout_s="${3:-20}" pid deadline
  pid="$(read_pid "${pidfile}")"
  if [[ -z "${pid}" ]] || ! pid_running "${pid}" "${match}"; then
    rm -f "${pidfile}"
    echo "${ENGINE} not running"
    return 0
  fi
  kill -TERM "${pid}" 2>/dev/null || true
  deadline=$((SECONDS + timeout_s))
  while pid_running "${pid}" "${match}"; do
    if ((SECONDS >= deadline)); then
      echo "$(basename "$0"): pid ${pid} still running after ${timeout_s} s; sending SIGKILL" >&2
      kill -KILL "${pid}" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "${pidfile}"
  echo "${ENGINE} stopped (pid ${pid})"
}

# rss_kb PID: resident memory of PID in kB (VmRSS from /proc/PID/status).
rss_kb() {
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null
}
