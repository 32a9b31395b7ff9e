#!/usr/bin/env bash
# Trains candidate models side by side on one GPU (each is a small net, so several share the
# card well). Each line of CANDIDATES is `name train.py-arguments...`; `#` starts a comment.
#   models/scripts/train_candidates.sh DATA_ROOT OUT_DIR CANDIDATES
# EPOCHS (default 200; a line's own --epochs wins), BUDGET (seconds of training per
# candidate, 0 = none) and REPORT_TEST=1 (also print test accuracy, for the record: rounds 1-4
# did; choosing reads val alone) may be set.
set -uo pipefail
usage="usage: train_candidates.sh DATA_ROOT OUT_DIR CANDIDATES"
data=${1:?$usage}
out=${2:?$usage}
list=$(realpath "${3:?$usage}")
py=${PYTHON:-python3}
cd "$(dirname "$0")/.." || exit 1
mkdir -p "$out"
# Several trainers share the CPU cores: keep each one's thread pool small.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
pids=()
while read -r name args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  # shellcheck disable=SC2086  # the arguments are meant to split
  "$py" -m autorma_models.train --data "$data" --out "$out/$name" --epochs "${EPOCHS:-200}" \
    --time-budget "${BUDGET:-0}" --workers 2 ${REPORT_TEST:+--report-test} $args >"$out/$name.log" 2>&1 &
  pids+=($!)
done <"$list"
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for f in "$out"/*.log; do echo "== $f"; tail -n 2 "$f"; done
exit $status
