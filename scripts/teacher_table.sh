#!/usr/bin/env bash
# The teacher's FID and alignment at DDIM 10/25/50 steps x CFG 1/1.5/2/3 (5,000 images from the
# held-out prompts each, FID against the 10k test images), as the Markdown table of README.md.
# Each cell's result is kept in docs/teacher-table-cells/ (or $TABLE_CELLS; per weights and N), so an
# interrupted run continues where it stopped; cells not yet measured show as "-".
# Usage: scripts/teacher_table.sh [MODEL_DIR] [N]   (make teacher-table; about 1.5 h on 2 cores)
#        TABLE_PRINT_ONLY=1 scripts/teacher_table.sh   writes the table from the cells measured so far
# Writes docs/teacher-table.md ($TABLE_OUT) and, once every cell is measured, the rows between
# README.md's teacher-table markers ($TABLE_README; set it empty to leave the README alone).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
MODEL=${1:-models/teacher}; N=${2:-5000}; SID=${SID_BIN:-build/sid}
out=${TABLE_OUT:-docs/teacher-table.md}
# keyed by the weights, so a retrained model never reuses old cells
key=$(cat "$MODEL"/unet/*.safetensors "$MODEL"/text_encoder/*.safetensors | sha256sum | cut -c1-12)
cells=${TABLE_CELLS:-docs/teacher-table-cells}/$(basename "$MODEL")-$key-n$N
mkdir -p "$cells"
table() {
    local steps cfg f j row  # the measuring loop below uses the same names
    echo "| DDIM steps | CFG 1 | CFG 1.5 | CFG 2 | CFG 3 |"
    echo "|---|---|---|---|---|"
    for steps in 10 25 50; do
        row="| $steps |"
        for cfg in 1 1.5 2 3; do
            f="$cells/ddim${steps}_cfg$cfg.json"
            if [ -s "$f" ]; then j=$(cat "$f"); row="$row FID $(field "$j" fid), align $(field "$j" alignment) |"
            else row="$row - |"; fi
        done
        echo "$row"
    done
    echo
    echo "FID on the evaluation classifier's features (models/classifier), $N images per cell from the held-out"
    echo "prompts (data/prompts/fmnist_eval.txt), against the 10k test images; alignment = fraction classified as"
    echo "the prompted class. $1"
}
if [ -n "${TABLE_PRINT_ONLY:-}" ]; then
    table "(Partial: cells marked - are not measured yet; \`make teacher-table\` measures only those.)" > "$out"
    cat "$out"
    exit 0
fi
for steps in 25 10 50; do  # DDIM-25 first: the row the distilled generators are compared with
    for cfg in 1 1.5 2 3; do
        f="$cells/ddim${steps}_cfg$cfg.json"
        [ -s "$f" ] && continue
        "$SID" eval-model --model "$MODEL" --n "$N" --steps "$steps" --cfg "$cfg" > "$f.tmp"
        mv "$f.tmp" "$f"
        cat "$f" >&2
        table "(Partial: measuring.)" > "$out"
    done
done
r=$("$SID" eval --real --n-small "$N" | grep '^fid_train_test=')
floor="FID of $N training images vs the test images $(sed -E 's/.*fid_small_test=([0-9.]+).*/\1/' <<<"$r"), of all 60k $(sed -E 's/fid_train_test=([0-9.]+).*/\1/' <<<"$r")"
table "Real-vs-real floor: $floor." > "$out"
cat "$out"
# the README's copy: the table's rows, between its <!-- teacher-table --> markers
readme=${TABLE_README-README.md}
if [ -n "$readme" ] && grep -q '^<!-- teacher-table -->$' "$readme"; then
    awk -v rows="$(grep '^|' "$out")" '
        /^<!-- teacher-table -->$/ { print; print rows; skip = 1; next }
        /^<!-- \/teacher-table -->$/ { skip = 0 }
        !skip' "$readme" > "$readme.tmp" && mv "$readme.tmp" "$readme"
fi
