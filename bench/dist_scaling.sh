#!/usr/bin/env bash
# Data-parallel scaling of one SiD-LSG iteration on this machine (docs/distributed.md): the same
# global batch as 1 process x 1 thread, 1 process x all threads, and N ranks x 1 thread (N = cores),
# in the same run, each the fastest tick of two alternating runs (noise only adds time).
set -u
B=${BUILD:-build}; SID="$B/sid"
T=models/teacher; [ -f "$T/unet/config.json" ] || T=tests/data/sid/teacher
N=$(nproc)
if ! command -v mpirun >/dev/null || ! "$SID" info | grep -q 'mpi: built'; then
    echo "dist scaling: SKIP (sid built without MPI, or no mpirun)"; exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
best() {  # fastest tick after the first of a run folder's stats.jsonl
    tail -n +2 "$1/stats.jsonl" | sed -E 's/.*"sec_per_iter": ([0-9.]+).*/\1/' | sort -g | head -n 1
}
run() {  # label, launcher, threads, batch
    rm -rf "$tmp/$1"
    $2 "$SID" --threads "$3" distill --teacher "$T" --out "$tmp/$1" --kappa 1.5 --batch "$4" \
        --kimg "$(awk -v b="$4" 'BEGIN { print b * 8 / 1000 }')" --tick "$(awk -v b="$4" 'BEGIN { print b * 2 / 1000 }')" \
        --snap 1000 >/dev/null 2>&1 || { echo "dist scaling: $1 failed"; exit 1; }
    best "$tmp/$1"
}
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b == "" || a + 0 < b + 0) }'; }
for batch in 16 64; do
    s1=; sT=; sN=
    for rep in 1 2; do
        x=$(run one "" 1 "$batch"); lt "$x" "$s1" && s1=$x
        x=$(run threads "" "$N" "$batch"); lt "$x" "$sT" && sT=$x
        x=$(run ranks "mpirun -np $N --bind-to core" 1 "$batch"); lt "$x" "$sN" && sN=$x
    done
    awk -v b="$batch" -v n="$N" -v a="$s1" -v t="$sT" -v r="$sN" 'BEGIN {
        printf "dist scaling, batch %d: 1 process x 1 thread %.3f s/iter; 1 process x %d threads %.3f s/iter (%.2fx); %d ranks x 1 thread %.3f s/iter (%.2fx)\n",
               b, a, n, t, a / t, n, r, a / r }'
done
