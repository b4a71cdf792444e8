#!/usr/bin/env bash
# The main job (make demo): distil the shipped Fashion-MNIST teacher into a one-step generator
# with SiD-LSG, then compare the two on held-out prompts and write out/demo/report.md.
# Budget: about 10 minutes on 2 cores. Settings can be overridden: KAPPA, KIMG, BATCH, N_EVAL.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/panel_rows.sh
SID=${SID_BIN:-build/sid}
TEACHER=${TEACHER:-models/teacher}
OUT=${OUT:-out/demo}
KAPPA=${KAPPA:-1}; KIMG=${KIMG:-8}; BATCH=${BATCH:-16}; N_EVAL=${N_EVAL:-1000}
[ -f "$TEACHER/unet/diffusion_pytorch_model.safetensors" ] || { echo "demo: $TEACHER is missing (make teacher trains it)" >&2; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"
t_all=$(date +%s)

echo "== 1/3 distilling $TEACHER (kappa $KAPPA, $KIMG kimg, batch $BATCH)"
t0=$(date +%s)
"$SID" distill --teacher "$TEACHER" --out "$OUT/run" --kappa "$KAPPA" --kimg "$KIMG" --batch "$BATCH" \
    --tick 0.32 --snap 4 --metrics --metrics-n 500
t_distill=$(( $(date +%s) - t0 ))

echo "== 2/3 one-step generator vs teacher (DDIM-25, cfg $KAPPA) on $N_EVAL held-out images each"
gen=$("$SID" eval-model --model "$OUT/run/generator" --n "$N_EVAL" --grid "$OUT/generator_eval.png")
tea=$("$SID" eval-model --model "$TEACHER" --n "$N_EVAL" --steps 25 --cfg "$KAPPA" --grid "$OUT/teacher_eval.png")
echo "generator: $gen"; echo "teacher:   $tea"

cp "$OUT/run/fakes_init.png" "$OUT/generator_at_start.png"
echo "== 3/3 report"
cfgval() { json_number "$OUT/run/config.json" "$1"; }
{
    echo "# sid demo: SiD-LSG on the built-in Fashion-MNIST teacher"
    echo
    echo "Teacher \`$TEACHER\` distilled into a one-step generator with kappa1..4 = $KAPPA, alpha $(cfgval alpha),"
    echo "lr (fake net) $(cfgval lr), glr (generator) $(cfgval glr), $KIMG kimg at batch $BATCH,"
    echo "in ${t_distill} s on $(nproc) cores ($(date -u +%Y-%m-%d))."
    echo
    echo "| model | steps | FID (N=$N_EVAL) | alignment | images/s |"
    echo "|---|---|---|---|---|"
    echo "| teacher, DDIM-25, CFG $KAPPA | $(awk -v k="$KAPPA" 'BEGIN { print (k == 1 ? 25 : 50) }') UNet evals | $(field "$tea" fid) | $(field "$tea" alignment) | $(field "$tea" images_per_s) |"
    echo "| one-step generator (EMA) | 1 UNet eval | $(field "$gen" fid) | $(field "$gen" alignment) | $(field "$gen" images_per_s) |"
    echo
    echo "FID on the evaluation classifier's features against the 10k test images (models/classifier);"
    echo "alignment = fraction classified as the prompted class; held-out prompts (data/prompts/fmnist_eval.txt)."
    echo
    echo "## The whole evaluation panel (docs/evaluation.md)"
    echo
    panel_header
    panel_row "teacher, DDIM-25, CFG $KAPPA" "$tea"
    panel_row "one-step generator" "$gen"
    panel_floor_row "$gen"
    echo
    panel_compare "the one-step generator" "$gen" "the teacher (DDIM-25, CFG $KAPPA)" "$tea"
    echo
    echo "Two feature networks of different architecture, trained apart: the CNN classifier and an MLP on the"
    echo "pixels (models/features-mlp). N=$N_EVAL keeps the demo within its time budget; both models use the"
    echo "same N, prompts and seeds, so they compare; FID is biased upward at small N (the floor row is real"
    echo "images scored the same way). The curves of a longer run and the guidance sweep: docs/evaluation.md,"
    echo "docs/sweep.md."
    echo
    echo "## Samples for the same held-out prompts (columns: the 10 classes, T-shirt/top ... Ankle boot)"
    echo
    echo "| teacher, DDIM-25, CFG $KAPPA | one-step generator | before distillation (teacher, one step from t=625) |"
    echo "|---|---|---|"
    echo "| ![](teacher_eval.png) | ![](generator_eval.png) | ![](generator_at_start.png) |"
    echo
    echo "## Training curve (EMA generator, 500 held-out images per point)"
    echo
    echo "| kimg | FID | alignment | loss (fake) | loss (generator) | s/kimg |"
    echo "|---|---|---|---|---|---|"
    grep '"fid"' "$OUT/run/stats.jsonl" | while read -r l; do
        echo "| $(field "$l" kimg) | $(field "$l" fid) | $(field "$l" alignment) | $(field "$l" loss_fake) | $(field "$l" loss_gen) | $(field "$l" sec_per_kimg) |"
    done
    echo
    echo "Whole demo: $(( $(date +%s) - t_all )) s. Run folder: \`$OUT/run\` (config.json, stats.jsonl, grids, generator/, training state)."
} > "$OUT/report.md"
cat "$OUT/report.md"
