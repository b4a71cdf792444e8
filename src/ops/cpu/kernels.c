// This variant's table of kernels: sid_cpu_kernels_<isa>, its ops named sid_<op>_<isa>
// (isa_names.h renames both the definitions and these references).
#include "ops/cpu_isa.h"

const sid_cpu_kernels SID_ISA_NAME(sid_cpu_kernels) = {
    .isa = SID_ISA_STR(SID_CPU_ISA),
#define X(name) .name = sid_##name,
    SID_OPS(X)
#undef X
};
