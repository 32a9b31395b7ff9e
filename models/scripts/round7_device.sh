#!/usr/bin/env bash
# Round 7 of findings-fashion5-v2.md, as run in one call on a lent GPU:
#   phase 1 (p1): 14 seeds of the round-5 recipe (resnet_s, 128 px, 100 epochs, train.py defaults otherwise);
#   phase 2 (p2): 8 students taught by the 4 phase-1 runs best on val, and 4 more seeds.
#   models/scripts/round7_device.sh DATA_ROOT RUNS_DIR
# The data set needs train/ and val/ only (test stays behind: choosing reads val alone).
# BUDGET1/BUDGET2 cap each run's training seconds per phase; EXTRA is appended to every run's
# arguments (a dry run: EXTRA="--device cpu --limit-per-class 4 --max-steps 2").
# With PACK_TO set, each phase's logs and summaries, and the checkpoints of its 6 runs best on
# val (two per tar, to fit the device tool's 16 MiB per file), are packed there as soon as the
# phase ends, so a call cut short still brings back phase 1.
set -uo pipefail
usage="usage: round7_device.sh DATA_ROOT RUNS_DIR"
data=$(realpath "${1:?$usage}")
runs=$(realpath -m "${2:?$usage}")
cd "$(dirname "$0")/.." || exit 1
py=${PYTHON:-python3}
recipe="--arch resnet_s --size 128 ${EXTRA:-}"  # the rest is train.py's defaults

# Run folders of a phase, best on val first (then best with flips), one per line.
best() {
  "$py" - "$1" <<'PY'
import json, pathlib, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` may stop reading
rows = [(json.loads(p.read_text()), p.parent) for p in pathlib.Path(sys.argv[1]).glob("*/summary.json")]
for s, d in sorted(rows, key=lambda r: (-r[0]["val_acc"], -r[0]["val_acc_flip"])):
    print(d)
PY
}

pack() {
  local phase=$1
  [[ -n "${PACK_TO:-}" ]] || return 0
  tar -C "$runs" -czf "$PACK_TO/${phase}_logs.tgz" --exclude=checkpoint.pt "$phase"
  mapfile -t top < <(best "$runs/$phase" | head -n 6)
  top=("${top[@]/#$runs\//}")  # paths inside the tar: p1/seed10/checkpoint.pt
  for ((i = 0; i < ${#top[@]}; i += 2)); do
    tar -C "$runs" -cf "$PACK_TO/${phase}_ck$((i / 2)).tar" "${top[@]:i:2}"
  done
}

phase() {  # phase NAME BUDGET LIST
  BUDGET=$2 EPOCHS=100 PYTHON=$py scripts/train_candidates.sh "$data" "$runs/$1" "$3"
  echo "== $1, best on val first:"
  for d in $(best "$runs/$1"); do
    "$py" -c "import json,sys; s=json.load(open(sys.argv[1])); print(sys.argv[2], round(s['val_acc']*375), round(s['val_acc_flip']*375), s['steps'], round(s['train_seconds']))" "$d/summary.json" "$(basename "$d")"
  done
  pack "$1"
}

lists=$(mktemp -d)
for s in $(seq 10 23); do echo "seed$s --seed $s $recipe"; done >"$lists/p1.txt"
phase p1 "${BUDGET1:-170}" "$lists/p1.txt"

teachers=$(best "$runs/p1" | head -n 4 | sed 's/^/--teacher /' | tr '\n' ' ')
{
  for s in $(seq 30 37); do echo "student$s --seed $s $teachers $recipe"; done
  for s in $(seq 24 27); do echo "seed$s --seed $s $recipe"; done
} >"$lists/p2.txt"
phase p2 "${BUDGET2:-200}" "$lists/p2.txt"
