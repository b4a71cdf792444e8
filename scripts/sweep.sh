#!/usr/bin/env bash
# The guidance trade-off on the built-in teacher: distil at kappa 1, 1.5, 2, 3 with the demo's
# settings and budget, and tabulate the one-step generator's FID and alignment next to the
# teacher's own DDIM-25 samples at the same guidance (the paper: lower kappa, lower FID; higher
# kappa, higher alignment). Usage: scripts/sweep.sh [KIMG] [N_EVAL] [KAPPAS]  -> docs/sweep.md
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
SID=${SID_BIN:-build/sid}; KIMG=${1:-8}; N=${2:-1000}; KAPPAS=${3:-1 1.5 2 3}
out=${SWEEP_OUT:-docs/sweep.md}
{
    echo "| kappa | generator FID | generator alignment | teacher DDIM-25 FID | teacher alignment | distillation |"
    echo "|---|---|---|---|---|---|"
    for k in $KAPPAS; do
        t0=$(date +%s)
        "$SID" distill --teacher models/teacher --out "out/sweep/kappa$k" --kappa "$k" --kimg "$KIMG" --snap 1000 >/dev/null
        t=$(( $(date +%s) - t0 ))
        g=$("$SID" eval-model --model "out/sweep/kappa$k/generator" --n "$N")
        r=$("$SID" eval-model --model models/teacher --n "$N" --steps 25 --cfg "$k")
        echo "$k: generator $g; teacher $r" >&2
        echo "| $k | $(field "$g" fid) | $(field "$g" alignment) | $(field "$r" fid) | $(field "$r" alignment) | $t s |"
    done
    echo
    echo "$KIMG kimg at batch 16 per run (the demo's defaults otherwise), $(nproc) cores, $(date -u +%Y-%m-%d)."
    echo "FID (N=$N, held-out prompts, against the 10k test images) and alignment from \`sid eval-model\`;"
    echo "the teacher samples with DDIM-25 and classifier-free guidance equal to kappa."
} > "$out"
cat "$out"
