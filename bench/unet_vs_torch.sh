#!/usr/bin/env bash
# UNet forward and forward+backward per sample, sid next to diffusers/PyTorch on this machine in
# this run (tiny built-in-teacher-sized config at 32x32 batch 16; SD1.5 at 32x32 latents batch 1).
# PyTorch comes from the dev-time reference environment (tools/reference/README.md); without it
# only sid's rows are printed.
set -u
B=${BUILD:-build}
. bench/isa_env.sh
PY=${SID_REF_PYTHON:-}
[ -z "$PY" ] && [ -x /root/sid-ref-venv/bin/python ] && PY=/root/sid-ref-venv/bin/python
run() {  # config batch size ctx
    local a b
    a=$("$B/bench/bench_unet" "$@") || exit 1
    echo "$a"
    if [ -n "$PY" ] && "$PY" -c 'import diffusers' 2>/dev/null; then
        b=$(SID_THREADS=$(nproc) "$PY" tools/reference/bench_unet.py "$@" 2>/dev/null) && echo "$b" || echo "pytorch failed"
        python3 - "$a" "$b" <<'PYEOF'
import re, sys
f = lambda s, k: float(re.search(k + r"\s+([\d.]+) ms", s).group(1))
a, b = sys.argv[1], sys.argv[2]
FB = r"fwd\+bwd"
try:
    print("ratio sid/pytorch: fwd %.2f  fwd+bwd %.2f" % (f(a, "fwd") / f(b, "fwd"), f(a, FB) / f(b, FB)))
except Exception:
    pass
PYEOF
    else
        echo "(PyTorch reference environment not found: set SID_REF_PYTHON to compare)"
    fi
}
echo "UNet per-sample time, sid vs PyTorch ($(nproc) threads each)"
run bench/configs/tiny_unet.json 16 32 8
run bench/configs/sd15_unet.json 1 32 77
