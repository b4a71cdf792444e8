#!/usr/bin/env bash
# FID and alignment of teacher snapshots against the images seen in training (the curve that says
# when training has flattened). Usage: scripts/teacher_curve.sh N STEPS CFG BATCH SNAPSHOT_DIR...
# (snapshot folders named step-NNNNN or kimg-NNNNNN, as make teacher's --keep-snapshots writes)
set -euo pipefail
cd "$(dirname "$0")/.."
SID=${SID_BIN:-build/sid}; N=$1; STEPS=$2; CFG=$3; BATCH=$4; shift 4
echo "| training images | FID (N=$N, DDIM-$STEPS, CFG $CFG) | alignment |"
echo "|---|---|---|"
for d in "$@"; do
    b=$(basename "$d")
    case "$b" in
        step-*) img=$(( 10#${b#step-} * BATCH )) ;;
        kimg-*) img=$(( 10#${b#kimg-} * 1000 )) ;;
        *) img="?" ;;
    esac
    l=$("$SID" eval-model --model "$d" --n "$N" --steps "$STEPS" --cfg "$CFG")
    echo "| $img | $(sed -E 's/.*"fid": ([0-9.]+).*/\1/' <<<"$l") | $(sed -E 's/.*"alignment": ([0-9.]+).*/\1/' <<<"$l") |"
done
