#!/usr/bin/env bash
# The COCO protocol's FID Inception-v3, forward per image: sid (every usable backend) next to
# pytorch-fid's network in PyTorch on this machine in this run, same threads, batches 1, 4 and 16.
# PyTorch comes from the dev-time reference environment (tools/reference/README.md); without it only
# sid's rows are printed.
set -u
B=${BUILD:-build}
. bench/isa_env.sh
PY=${SID_REF_PYTHON:-}
[ -z "$PY" ] && [ -x /root/sid-ref-venv/bin/python ] && PY=/root/sid-ref-venv/bin/python
a=$("$B/bench/bench_eval") || exit 1
echo "$a"
if [ -z "$PY" ] || ! "$PY" -c 'import pytorch_fid, torchvision' 2>/dev/null; then
    echo "(PyTorch reference environment not found: set SID_REF_PYTHON to compare)"
    exit 0
fi
for b in 1 4 16; do
    t=$(cd tools/reference && SID_THREADS=$(nproc) "$PY" bench_inception.py "$b" 2>/dev/null) || { echo "pytorch failed"; continue; }
    echo "$t"
    s=$(grep -E "sid cpu +inception-v3 299x299  batch +$b " <<<"$a" | grep -oE 'fwd +[0-9.]+' | grep -oE '[0-9.]+$')
    p=$(grep -oE 'fwd +[0-9.]+' <<<"$t" | grep -oE '[0-9.]+$')
    [ -n "$s" ] && [ -n "$p" ] && awk -v s="$s" -v p="$p" -v b="$b" 'BEGIN { printf "ratio sid/pytorch inception batch %d: %.2f\n", b, s / p }'
done
