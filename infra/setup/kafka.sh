#!/usr/bin/env bash
# Installs a runnable Apache Kafka (broker in KRaft mode, storage tool, topic and console tools)
# from Maven Central, no tarball and no Docker: Maven copies the jars that infra/kafka/pom.xml
# lists into a per-user cache keyed by version,
#   ${XDG_DATA_HOME:-$HOME/.local/share}/autorma/kafka/<version>/libs/*.jar
# and the sha256 of the main Kafka jars is checked against the values pinned below (Maven itself
# checks every download against the repository's checksums: --strict-checksums).
# `infra/engines/kafka.sh` and `infra/engines/topics.sh` run Kafka from there
# (`java -cp '<dest>/libs/*' kafka.Kafka server.properties`).
#
# Usage: infra/setup/kafka.sh [DEST_DIR]
# Needs: java >= 17 and mvn on PATH, network to Maven Central (about 44 MB; the default local
# repository ~/.m2 is reused, so a reinstall is quick once it is warm).
# Idempotent: once installed (marker file JARS_SHA256 next to libs/), a second run exits at once.
# Prints the install path.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION="4.4.0"
# sha256 of the jars from Maven Central (the same as the .sha256 files published there).
PINNED_SHA256="\
76d3314f873571677ff98620ab9a431e508e3687f921a3df4f70d692a970475e  kafka_2.13-${KAFKA_VERSION}.jar
1ab07317eb6633241392449d329dbdc5d9251e6ffc4926860f42dd966e88bdf9  kafka-clients-${KAFKA_VERSION}.jar
5f5456c2976203525080220212639f7033274b94458ceabf44197f4800bd615c  kafka-server-${KAFKA_VERSION}.jar
4eb9a7fbfd63badfd8d1a677aa2d54b47b2b2d442ff7d68fd223972afea1954c  kafka-tools-${KAFKA_VERSION}.jar"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pom="${repo_root}/infra/kafka/pom.xml"
dest="${1:-${XDG_DATA_HOME:-$HOME/.local/share}/autorma/kafka/${KAFKA_VERSION}}"
marker="${dest}/JARS_SHA256"

if [[ -d "${dest}/libs" && -f "${marker}" && "$(cat "${marker}")" == "${PINNED_SHA256}" ]]; then
  echo "kafka ${KAFKA_VERSION} already installed at ${dest}"
  exit 0
fi
if ! grep -q "<kafka.version>${KAFKA_VERSION}</kafka.version>" "${pom}"; then
  echo "kafka.sh: ${pom} does not ask for kafka ${KAFKA_VERSION}; bump both together" >&2
  exit 1
fi
for tool in java mvn; do
  if ! command -v "${tool}" >/dev/null 2>&1; then
    echo "kafka.sh: ${tool} is not on PATH; Kafka ${KAFKA_VERSION} needs a JDK >= 17 and Maven" >&2
    exit 1
  fi
done
java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
if [[ -z "${java_major}" || "${java_major%%.*}" -lt 17 ]]; then
  echo "kafka.sh: java on PATH is version '${java_major}'; Kafka ${KAFKA_VERSION} needs >= 17" >&2
  exit 1
fi

work="$(begin_install "${dest}" kafka.sh libs JARS_SHA256)"
trap 'rm -rf "${work}"' EXIT
if ! mvn -q -B -Dstyle.color=never --strict-checksums -f "${pom}" \
    dependency:copy-dependencies -DoutputDirectory="${work}/libs" >"${work}/mvn.log" 2>&1; then
  cat "${work}/mvn.log" >&2
  echo "kafka.sh: mvn dependency:copy-dependencies failed (output above)" >&2
  exit 1
fi
if ! (cd "${work}/libs" && sha256sum --quiet --check --strict) <<<"${PINNED_SHA256}"; then
  echo "kafka.sh: sha256 mismatch (or missing jar) among the pinned Kafka jars Maven fetched; nothing installed" >&2
  exit 1
fi
rm -f "${work}/mvn.log"
echo "${PINNED_SHA256}" > "${work}/JARS_SHA256"
rm -rf "${dest}"
mv "${work}" "${dest}"
trap - EXIT
jars=("${dest}"/libs/*.jar)
echo "installed kafka ${KAFKA_VERSION} (${#jars[@]} jars) at ${dest}"
