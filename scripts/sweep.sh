#!/usr/bin/env bash
# The guidance trade-off on the built-in teacher: distil at kappa 1, 1.5, 2, 3 (the demo's
# settings otherwise) and tabulate FID against alignment (the paper's Table: lower kappa, lower
# FID; higher kappa, higher alignment). Usage: scripts/sweep.sh [KIMG] [N_EVAL]  -> docs/sweep.md
set -euo pipefail
cd "$(dirname "$0")/.."
SID=${SID_BIN:-build/sid}; KIMG=${1:-6.4}; N=${2:-2000}
out=docs/sweep.md
{
    echo "| kappa | FID (N=$N) | alignment | distillation time |"
    echo "|---|---|---|---|"
    for k in 1 1.5 2 3; do
        t0=$(date +%s)
        "$SID" distill --teacher models/teacher --out "out/sweep/kappa$k" --kappa "$k" --kimg "$KIMG" --batch 16 --snap 1000 >/dev/null
        l=$("$SID" eval-model --model "out/sweep/kappa$k/generator" --n "$N")
        echo "| $k | $(sed -E 's/.*"fid": ([0-9.]+).*/\1/' <<<"$l") | $(sed -E 's/.*"alignment": ([0-9.]+).*/\1/' <<<"$l") | $(( $(date +%s) - t0 )) s |"
    done
} > "$out"
cat "$out"
