#!/usr/bin/env bash
# The guidance trade-off on the built-in teacher, on the whole evaluation panel: distil at each
# kappa with the demo's settings and budget and score the one-step generator next to the teacher's
# own DDIM-25 samples at CFG = kappa (the paper: alignment rises with kappa, and so does FID).
# Runs and scores already in out/sweep are reused (a run counts once out/sweep/kappaK.done exists).
# Usage: scripts/sweep.sh [KIMG] [N_EVAL] [KAPPAS]  -> docs/sweep.md
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/panel_rows.sh
SID=${SID_BIN:-build/sid}; KIMG=${1:-8}; N=${2:-1000}; KAPPAS=${3:-1 1.5 2 3 4.5}
out=${SWEEP_OUT:-docs/sweep.md}; dir=out/sweep; mkdir -p "$dir"
cells=""
for k in $KAPPAS; do
    if [ ! -f "$dir/kappa$k.done" ]; then
        t0=$(date +%s)
        rm -rf "$dir/kappa$k"
        "$SID" distill --teacher models/teacher --out "$dir/kappa$k" --kappa "$k" --kimg "$KIMG" --snap 1000 >/dev/null
        echo "$(( $(date +%s) - t0 ))" > "$dir/kappa$k.done"
    fi
    [ -s "$dir/kappa$k.json" ] || "$SID" eval-model --model "$dir/kappa$k/generator" --n "$N" > "$dir/kappa$k.json"
    cells="$cells 25:$k"
done
SID_BIN=$SID bash scripts/teacher_panel.sh "$dir" "$N" "$cells"
teacher() { jq -c --argjson c "$1" --argjson n "$N" 'select(.steps == 25 and .cfg == $c and .n == $n)' "$dir/teacher.jsonl" | head -n 1; }
{
    panel_header
    for k in $KAPPAS; do
        panel_row "kappa $k: one-step generator" "$(cat "$dir/kappa$k.json")"
        panel_row "kappa $k: teacher DDIM-25, CFG $k" "$(teacher "$k")"
    done
    panel_floor_row "$(cat "$dir/kappa1.json" 2>/dev/null || teacher 1)"
    echo
    echo "$KIMG kimg at batch 16 per run (the demo's settings otherwise), $(nproc) cores, $(date -u +%Y-%m-%d);"
    echo "N = $N held-out prompts per row, scored by \`sid eval-model\` (docs/evaluation.md): FID and KID against"
    echo "the 10k test images in the features of the shipped CNN classifier and of the MLP (models/features-mlp),"
    echo "precision / recall / coverage (k = 3) against the first N test images, alignment = classified as the"
    echo "prompted class by each network, pixel statistics on [0, 1]. What the rows show: docs/evaluation.md."
} > "$out"
cat "$out"
