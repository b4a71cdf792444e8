// The CPU backend's kernels exist once per instruction set: src/ops/cpu/ is compiled for each ISA
// the build targets (on x86-64: sse2, the baseline every x86-64 CPU runs; avx2, AVX2 + FMA as in
// x86-64-v3; avx512, AVX-512 F/BW/CD/DQ/VL as in x86-64-v4; elsewhere one "generic" build), and
// every sid_<op> of ops.h forwards to the variant chosen when the program starts: the widest the
// CPU and the OS support, or $SID_ISA. The rest of the program is built for the baseline, so one
// binary runs on any CPU of its architecture (docs/engine.md, "CPU kernels per instruction set").
#ifndef SID_CPU_ISA_H
#define SID_CPU_ISA_H

#include "ops/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// One variant's kernels: what src/ops/cpu/kernels.c compiles into sid_cpu_kernels_<isa>.
typedef struct sid_cpu_kernels {
    const char *isa;
#define X(name) __typeof__(sid_##name) *name;
    SID_OPS(X)
#undef X
} sid_cpu_kernels;

// The variant the ops run now ("avx2", ...).
const char *sid_cpu_isa(void);
// The variants compiled in, narrowest first; NULL past the end.
const char *sid_cpu_isa_at(int i);
// Whether this CPU (and the OS, which must save the wider registers) can run a compiled-in variant.
int sid_cpu_isa_usable(const char *isa);
// Switches every op to that variant; "auto" picks the widest usable one. -1 with a one-line
// sid_error() when the name is unknown or the CPU lacks it. Call it between ops (tests, startup).
int sid_cpu_isa_set(const char *isa);
// The CPU features the choice looks at, as "avx2 fma avx512f ..." (those present).
const char *sid_cpu_features(void);

#ifdef __cplusplus
}
#endif

#endif
