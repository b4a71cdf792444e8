# Sourced by the benchmark scripts. BENCH_ISA=avx2 (or sse2, avx512) runs both sides as on a CPU
# that has only that: sid's kernels of that instruction set, OpenBLAS's matching kernels, PyTorch's
# ATen and oneDNN capped at the same level. Without it each side picks what the CPU has.
case "${BENCH_ISA:-}" in
"") ;;
avx512) export SID_ISA=avx512 OPENBLAS_CORETYPE=SkylakeX ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=AVX512_CORE ;;
avx2) export SID_ISA=avx2 OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ;;
sse2) export SID_ISA=sse2 OPENBLAS_CORETYPE=Nehalem ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 ;;
*) echo "BENCH_ISA=$BENCH_ISA: expected avx512, avx2 or sse2" >&2; exit 1 ;;
esac
# "sid kernels avx2, OpenBLAS Haswell" for the header lines
bench_isa_line() { "$1" info | sed -n 's/^cpu kernels: \([a-z0-9]*\) .*openblas: \(.*\)$/sid kernels \1, OpenBLAS \2/p'; }
