#!/usr/bin/env bash
# A long distillation on the built-in teacher with a generator kept every STEP kimg, for the
# panel curves (scripts/curves.sh scores the kept generators). The demo's settings unless
# overridden by extra distill flags after the fourth argument.
# Usage: scripts/long_run.sh KAPPA KIMG STEP OUT [distill flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
SID=${SID_BIN:-build/sid}
KAPPA=$1; KIMG=$2; STEP=$3; OUT=$4; shift 4
mkdir -p "$OUT/snaps"
k=$STEP
if [ ! -f "$OUT/run/config.json" ]; then
    "$SID" distill --teacher models/teacher --out "$OUT/run" --kappa "$KAPPA" --kimg "$KIMG" --batch 16 \
        --tick 0.32 --snap 1000 --stop-after "$k" "$@" >/dev/null
    rm -rf "$OUT/snaps/$k"; cp -r "$OUT/run/generator" "$OUT/snaps/$k"
    k=$(awk -v a="$k" -v b="$STEP" 'BEGIN { print a + b }')
fi
while awk -v a="$k" -v b="$KIMG" 'BEGIN { exit !(a <= b + 1e-9) }'; do
    if [ ! -d "$OUT/snaps/$k" ]; then
        "$SID" distill --resume "$OUT/run" --stop-after "$k" >/dev/null
        rm -rf "$OUT/snaps/$k.tmp"; cp -r "$OUT/run/generator" "$OUT/snaps/$k.tmp"; mv "$OUT/snaps/$k.tmp" "$OUT/snaps/$k"
    fi
    k=$(awk -v a="$k" -v b="$STEP" 'BEGIN { print a + b }')
done
