#!/usr/bin/env bash
# Dev-time: the GPU checks, run on a lent GPU machine over binaries built here
# (see tools/device/README.md). Writes everything to $OUT/gpu_check.log.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/sid-gpu-out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/.devlibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# cuBLAS and the CUDA runtime come from the machine; find them if the rpath misses
if ! ldconfig -p | grep -q 'libcublas.so.13'; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, "..") for p in nvidia.__path__))' 2>/dev/null); do
        [ -d "$d" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(find "$d" -name 'libcublas.so.13' -printf '%h:' 2>/dev/null)$(find "$d" -name 'libcudart.so.13' -printf '%h:' 2>/dev/null)"
    done
fi
B=${SID_GPU_BUILD:-build-gpu}
{
    date; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    echo "== libraries"; ldd "$B/tests/test_ops" | grep -E 'not found|cublas|cudart|openblas'
    echo "== sid info"; "$B/sid" info
    echo "== test_ops (every op on cpu and cuda: double reference, finite differences, PyTorch, cpu vs cuda at scale)"
    SID_TEST_VERBOSE=1 timeout 300 "$B/tests/test_ops"; echo "test_ops exit $?"
    echo "== bench_backends"; timeout 120 "$B/bench/bench_backends"; echo "bench exit $?"
    # the model-level suite: each runs on every usable backend (cpu, guard, cuda) and states its CUDA tolerance
    for t in test_unet test_clip_vae test_pipelines test_distill; do
        echo "== $t"; SID_TEST_VERBOSE=1 SID_TEST_DATA=tests/data timeout 300 "$B/tests/$t"; echo "$t exit $?"
    done
    echo "== the built-in demo's distillation on CUDA next to the CPU (8 kimg, batch 16, kappa 1)"
    for dev in cuda cpu; do
        rm -rf "$OUT/demo-$dev"
        /usr/bin/time -f "$dev: %e s wall" "$B/sid" distill --teacher models/teacher --out "$OUT/demo-$dev" --kappa 1 \
            --kimg 8 --tick 1.6 --snap 5 --device "$dev" 2>&1 | tail -n 2
        tail -n 1 "$OUT/demo-$dev/stats.jsonl"
    done
    "$B/sid" eval-model --model "$OUT/demo-cuda/generator" --n 1000 --device cuda
} 2>&1 | tee "$OUT/gpu_check.log"
