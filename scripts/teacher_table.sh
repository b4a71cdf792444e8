#!/usr/bin/env bash
# The teacher's FID and alignment at DDIM 10/25/50 steps x CFG 1/1.5/2/3 (5,000 images from the
# held-out prompts each, FID against the 10k test images), as the Markdown table of README.md.
# Usage: scripts/teacher_table.sh [MODEL_DIR] [N]   (make teacher-table)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/teacher}; N=${2:-5000}; SID=${SID_BIN:-build/sid}
out=${TABLE_OUT:-docs/teacher-table.md}
{
    echo "| DDIM steps | CFG 1 | CFG 1.5 | CFG 2 | CFG 3 |"
    echo "|---|---|---|---|---|"
    for steps in 10 25 50; do
        row="| $steps |"
        for cfg in 1 1.5 2 3; do
            line=$("$SID" eval-model --model "$MODEL" --n "$N" --steps "$steps" --cfg "$cfg")
            fid=$(sed -E 's/.*"fid": ([0-9.]+).*/\1/' <<<"$line"); al=$(sed -E 's/.*"alignment": ([0-9.]+).*/\1/' <<<"$line")
            row="$row FID $fid, align $al |"
            echo "$line" >&2
        done
        echo "$row"
    done
    echo
    echo "FID on the evaluation classifier's features (models/classifier), $N images per cell from the held-out"
    echo "prompts (data/prompts/fmnist_eval.txt), against the 10k test images; alignment = fraction classified as"
    echo "the prompted class. Real-vs-real floor: $("$SID" eval --real --n-small "$N" | grep -o 'first.*')."
} > "$out"
cat "$out"
