#!/usr/bin/env bash
# The teacher's DDIM samplers scored with the evaluation panel (the references of the curves and
# the sweep): one eval-model line per (steps, cfg) in OUT/teacher.jsonl, kept when already there.
# Usage: scripts/teacher_panel.sh OUT N_EVAL "STEPS:CFG ..."
set -euo pipefail
cd "$(dirname "$0")/.."
SID=${SID_BIN:-build/sid}; OUT=$1; N=$2; CELLS=$3
mkdir -p "$OUT"; out="$OUT/teacher.jsonl"; touch "$out"
for cell in $CELLS; do
    s=${cell%%:*}; c=${cell##*:}
    jq -c --argjson s "$s" --argjson c "$c" --argjson n "$N" 'select(.steps == $s and .cfg == $c and .n == $n)' "$out" \
        | grep -q . && continue
    "$SID" eval-model --model models/teacher --n "$N" --steps "$s" --cfg "$c" >> "$out"
    echo "teacher DDIM-$s CFG $c scored" >&2
done
