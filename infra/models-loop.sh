#!/usr/bin/env bash
# The model loop end to end on the streaming stack (infra/stack.sh), as a returns desk lives it:
#   1. bench-style photos of returns (drawn from fashion5's train split) are uploaded through the
#      API and classified; people correct 50 of them through the API (POST /v1/review/{key});
#   2. the corrections are exported (`autorma corrections export`) and a model is fine-tuned from
#      the shipped one with them beside train/ (a short run), packaged (MLflow records both), pushed;
#   3. it runs as the shadow on fashion5's test photos; `autorma model compare` prints the
#      figures and `promote --gate` promotes it;
#   4. a deliberately bad version (its labels rotated) is promoted without the gate, and the
#      worker watching it rolls it back: the time from the promotion to the rollback is printed.
# It prints each step's figures, then stops the stack (its data stays in the state folder).
#
# Usage: infra/models-loop.sh          (about 15 minutes on 2 cores; needs ../shared/datasets)
# Env: AUTORMA_STACK_DIR (default .data/models-loop), LOOP_EPOCHS (2), and infra/stack.sh's ports.
set -euo pipefail
ENGINE="models-loop.sh"
source "$(dirname "${BASH_SOURCE[0]}")/engines/lib.sh"

export AUTORMA_STACK_DIR="${AUTORMA_STACK_DIR:-${REPO_ROOT}/.data/models-loop}"
state="$(require_state_dir "${AUTORMA_STACK_DIR}")"
data="${REPO_ROOT}/../shared/datasets/fashion5"
[[ -d "${data}/train" && -d "${data}/test" ]] || die "fashion5 is not at ${data}"
api="http://127.0.0.1:${SERVE_PORT:-18080}"
python="${REPO_ROOT}/.venv/bin/python"
export PYTHONPATH="${REPO_ROOT}/models"
autorma="${REPO_ROOT}/target/release/autorma"
# Every sampled photo shadowed, so the test split alone passes the gate's 200 photos; the
# worker watches a promotion on 50 photos (its defaults otherwise).
export AUTORMA_SHADOW_SAMPLE=1 AUTORMA_MODEL_POLL_S=2

"${REPO_ROOT}/infra/setup/python.sh"
# A fresh stack each time: the registry's version numbers and the topics start over.
"${REPO_ROOT}/infra/stack.sh" down >/dev/null 2>&1 || true
rm -rf "${state:?}"/*
"${REPO_ROOT}/infra/stack.sh" up
trap '"${REPO_ROOT}/infra/stack.sh" down >/dev/null 2>&1 || true' EXIT
source "${state}/env"
wait_for() { # DESCRIPTION SECONDS COMMAND...: until COMMAND succeeds
  local what="$1" seconds="$2" started="${SECONDS}"
  shift 2
  until "$@"; do
    ((SECONDS - started < seconds)) || die "timed out waiting for ${what}"
    sleep 2
  done
}
# upload PHASE DIR: every photo of DIR/<class>/ through the API, named PHASE--CLASS--FILE, the
# classes mixed as returns come (in the order of the file names); prints each stored key with
# its class ("KEY CLASS").
upload() {
  local phase="$1" dir="$2" class file
  find "${dir}" -mindepth 2 -maxdepth 2 -type f -printf '%f %h\n' | sort | while read -r file class; do
    class="$(basename "${class}")"
    curl -sf -X POST --data-binary "@${dir}/${class}/${file}" "${api}/v1/uploads?name=${phase}--${class}--${file}" |
      grep -o '"key":"[^"]*"' | sed "s/^\"key\":\"\(.*\)\"$/\1 ${class}/"
  done
}
results_of() { curl -sf "${api}/v1/results.csv?prefix=inbox/uploads/" | grep -c -- "-$1--" || true; }
has_results() { (($(results_of "$1") >= $2)); }

echo "== 1. returns classified, 50 corrected through the API"
"${python}" -m autorma_models.bench_photos --data "${data}/train" --out "${state}/returns" --limit 12 --seed 1 >/dev/null
upload returns "${state}/returns" >"${state}/returns.keys"
wait_for "the returns' results" 300 has_results returns "$(wc -l <"${state}/returns.keys")"
head -n 50 "${state}/returns.keys" | while read -r key class; do
  curl -sf -X POST -H 'content-type: application/json' -d "{\"label\":\"${class}\",\"by\":\"loop\"}" \
    "${api}/v1/review/${key}" >/dev/null
done
echo "corrected 50 of $(wc -l <"${state}/returns.keys") returns"

echo "== 2. exported, trained with them, packaged, pushed"
"${autorma}" corrections export --out "${state}/corrections"
"${python}" -m autorma_models.train --data "${data}" --extra "${state}/corrections" --init "${REPO_ROOT}/models/fashion5" \
  --arch resnet_s --size 128 --epochs "${LOOP_EPOCHS:-2}" --lr 0.02 --out "${state}/run"
echo "training manifest: $(grep -c "${state}/corrections" "${state}/run/train_manifest.csv" || true) photos from the corrections"
"${python}" -m autorma_models.package --run "${state}/run" --data "${data}" --out "${state}/package" --version loop
pushed="$("${autorma}" model push "${state}/package" --reason "fine-tuned with 50 corrections")"
echo "${pushed}"
candidate="$(sed -n 's/.* as version \([0-9]*\) .*/\1/p' <<<"${pushed}" | head -n 1)"
"${autorma}" model show "${candidate}" >/dev/null

echo "== 3. version ${candidate} as the shadow on the test photos, then through the gate"
"${autorma}" model promote "${candidate}" --alias shadow
sleep 5
upload shadow "${data}/test" >"${state}/shadow.keys"
wait_for "the test photos' results" 300 has_results shadow "$(wc -l <"${state}/shadow.keys")"
sleep 3
"${autorma}" model compare "${candidate}"
"${autorma}" model promote "${candidate}" --gate --reason "fine-tuned with 50 corrections"
watches() { grep -c "watching the promoted version" "${state}/worker.log" || true; }
swapped_to() { (($(watches) >= $1)); }
wait_for "the worker's swap to version ${candidate}" 60 swapped_to 1

echo "== 4. a bad version promoted without the gate, rolled back by the worker"
"${python}" -m autorma_models.bad_package --model "${state}/package" --out "${state}/bad"
bad="$("${autorma}" model push "${state}/bad" --reason "rehearsal: labels rotated" | sed -n 's/.* as version \([0-9]*\) .*/\1/p')"
"${autorma}" model promote "${bad}" --reason "rehearsal: a bad release"
promoted="$(date +%s.%N)"
wait_for "the worker's swap to version ${bad}" 60 swapped_to 2
upload after-bad "${data}/test" >"${state}/after-bad.keys" &
rolled_back() { "${autorma}" model history --json | grep -q '"reason": "automatic: version '"${bad}"; }
wait_for "the automatic rollback" 300 rolled_back
took="$(awk -v a="${promoted}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
wait
"${autorma}" model history | tail -n 3
echo "promotion of version ${bad} to its automatic rollback: ${took} s as this script saw it (it polls every 2 s;"
echo "the audit trail's times above are the registry's)"
"${autorma}" model list
