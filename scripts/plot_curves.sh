#!/usr/bin/env bash
# Plots the evaluation panel against images seen (docs: dev-time, needs gnuplot: apt-get install
# gnuplot-nox). Each run folder holds a panel.jsonl from scripts/curves.sh; TEACHER a teacher.jsonl
# from scripts/teacher_panel.sh, whose DDIM-25 lines at CFG 1 and 1.5 are drawn as references.
# Usage: scripts/plot_curves.sh OUT.png TEACHER.jsonl LABEL=RUN [LABEL=RUN ...]
set -euo pipefail
cd "$(dirname "$0")/.."
png=$1; teacher=$2; shift 2
command -v gnuplot >/dev/null || { echo "plot_curves: needs gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cols='[.panel.cnn.fid, .panel.mlp.fid, .panel.cnn.kid, .panel.mlp.kid, .panel.cnn.precision, .panel.cnn.recall, .alignment, .panel.pixels.contrast, .panel.pixels.hf_share]'
titles=("FID, CNN features" "FID, MLP features" "KID, CNN features" "KID, MLP features" "precision (CNN, k=3)" "recall (CNN, k=3)" "alignment (CNN)" "contrast (mean per-image std)" "high-frequency power share")
labels=(); first=
for arg in "$@"; do
    label=${arg%%=*}; run=${arg#*=}; labels+=("$label")
    jq -r "[.kimg] + $cols | @tsv" "$run/panel.jsonl" | sort -g > "$tmp/$label.tsv"
    [ -n "$first" ] || first="$run/panel.jsonl"
done
ref() { jq -r --argjson c "$1" "select(.steps == 25 and .cfg == \$c) | $cols | @tsv" "$teacher" | head -n 1; }
t1=($(ref 1)); t15=($(ref 1.5))
floor=($(head -n 1 "$first" | jq -r '[.panel.cnn.fid_floor, .panel.mlp.fid_floor, .panel.cnn.kid_floor, .panel.mlp.kid_floor, .panel.cnn.precision_floor, .panel.cnn.recall_floor, .panel.cnn.alignment_floor, .panel.pixels.test.contrast, .panel.pixels.test.hf_share] | @tsv'))
{
    echo "set terminal pngcairo size 1500,1200 font 'sans,10'"
    echo "set output '$png'"
    echo "set multiplot layout 3,3 title 'SiD on the built-in teacher: the evaluation panel against kimg (N = $(head -n 1 "$first" | jq .n) per point)'"
    echo "set key top right font 'sans,8'; set grid; set xlabel 'kimg'"
    for i in "${!titles[@]}"; do
        c=$((i + 2))
        echo "set title '${titles[$i]}'"
        plot="plot"
        for label in "${labels[@]}"; do plot="$plot '$tmp/$label.tsv' using 1:$c with linespoints title 'generator, $label',"; done
        plot="$plot ${t1[$i]} with lines dt 2 lw 2 title 'teacher DDIM-25 CFG 1', ${t15[$i]} with lines dt 2 lw 2 title 'teacher DDIM-25 CFG 1.5',"
        plot="$plot ${floor[$i]} with lines dt 3 lc 'black' title '$( [ $i -ge 7 ] && echo 'test set' || echo 'real-vs-real floor')'"
        echo "$plot"
    done
    echo "unset multiplot"
} > "$tmp/plot.gp"
gnuplot "$tmp/plot.gp"
echo "plot_curves: wrote $png"
