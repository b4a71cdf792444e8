#!/usr/bin/env bash
# Seconds per SiD-LSG iteration (kappa 1.5, batch 16 and 64) for sid and for the PyTorch reference
# on the same machine in the same run, and one-step generation vs teacher DDIM-25 throughput.
set -u
B=${BUILD:-build}; SID="$B/sid"
T=models/teacher; [ -f "$T/unet/config.json" ] || T=tests/data/sid/teacher
PY=${SID_REF_PYTHON:-}; [ -z "$PY" ] && [ -x /root/sid-ref-venv/bin/python ] && PY=/root/sid-ref-venv/bin/python
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
peak=$("$B/bench/bench_ops" peak | sed -nE 's/.*: ([0-9.]+) GFLOP\/s.*/\1/p')
echo "SiD-LSG iteration on $T ($(nproc) threads each; sgemm peak in this run: $peak GFLOP/s)"
for batch in 16 64; do
    # two ticks of 3 iterations; the second (warm) one is reported
    "$SID" distill --teacher "$T" --out "$tmp/run$batch" --kappa 1.5 --batch "$batch" --kimg $(python3 -c "print($batch*6/1000)") \
        --tick $(python3 -c "print($batch*3/1000)") --snap 1000 >/dev/null 2>&1
    last=$(tail -n 1 "$tmp/run$batch/stats.jsonl")
    s=$(sed -E 's/.*"sec_per_iter": ([0-9.]+).*/\1/' <<<"$last")
    gf=$(sed -E 's/.*"gflop_per_s": ([0-9.]+).*/\1/' <<<"$last")
    echo "sid     sid iteration batch $batch: $s s/iter, $gf GFLOP/s in matrix products ($(python3 -c "print('%.0f' % (100 * $gf / $peak))")% of the sgemm peak)"
    if [ -n "$PY" ]; then
        p=$(SID_THREADS=$(nproc) "$PY" tools/reference/bench_sid.py "$T" "$batch" 2>/dev/null | tail -n 1)
        echo "$p"
        pt=$(sed -E 's/.*: ([0-9.]+) s\/iter.*/\1/' <<<"$p")
        python3 -c "print('ratio sid/pytorch: %.2f' % ($s / $pt))" 2>/dev/null
    fi
done
echo "one-step generator vs teacher DDIM-25 (CFG 1.5), 500 images:"
"$SID" eval-model --model "$tmp/run16/generator" --n 500 | sed -E 's/.*"images_per_s": ([0-9.]+).*/  generator: \1 images\/s/'
"$SID" eval-model --model "$T" --n 500 --steps 25 --cfg 1.5 | sed -E 's/.*"images_per_s": ([0-9.]+).*/  teacher DDIM-25: \1 images\/s/'
