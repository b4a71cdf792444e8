#!/usr/bin/env bash
# The sid command as a user meets it: exit codes and one-line errors.
set -u
SID=${SID_BIN:-build/sid}
pass=0; fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

check() {  # name, expected exit (0 or "nonzero"), expected stderr/stdout pattern, command...
    local name=$1 want=$2 pattern=$3; shift 3
    local out rc
    out=$("$@" 2>&1); rc=$?
    local ok=1
    if [ "$want" = 0 ]; then [ $rc -eq 0 ] || ok=0; else [ $rc -ne 0 ] || ok=0; fi
    grep -qE -- "$pattern" <<<"$out" || ok=0
    if [ "$want" != 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ]; then ok=0; fi  # errors are one line
    if [ $ok = 1 ]; then echo "cli/$name ... ok"; pass=$((pass + 1))
    else echo "cli/$name FAILED (exit $rc): $out"; fail=$((fail + 1)); fi
}

check info 0 'backends: cpu' "$SID" info
# the data-parallel build: MPI compiled in when mpicc exists, NCCL linked (and loadable) with CUDA
check info-dist 0 'mpi: (built|off); nccl: ([0-9]+\.[0-9]+\.[0-9]+|off)' "$SID" info
# the CPU kernels: one variant per instruction set, chosen at run time (ops/cpu_isa.h)
check isa-info 0 'cpu kernels: (sse2|avx2|avx512|generic) \(compiled: ' "$SID" info
check isa-unknown nonzero '^sid: SID_ISA=avx9: unknown instruction set' env SID_ISA=avx9 "$SID" info
if [ "$(uname -m)" = x86_64 ]; then
    check isa-forced 0 'cpu kernels: sse2 ' env SID_ISA=sse2 "$SID" info
    # One binary for every x86-64 CPU: under QEMU's emulation of an AVX2 CPU without AVX-512 (Haswell)
    # and of the x86-64 baseline (SSE2 only; an Intel vendor string, else OpenBLAS picks its Opteron
    # kernels, whose 3DNow! instructions QEMU does not emulate), it picks the widest variant the CPU has and runs there; an
    # instruction the emulated CPU lacks outside the dispatched kernels would kill it (SIGILL).
    # OMP_WAIT_POLICY is set so that sid does not re-execute itself (natively) at start.
    qemu() { local o rc; o=$(OMP_WAIT_POLICY=PASSIVE qemu-x86_64 "$@" 2>&1); rc=$?; grep -v '^qemu-x86_64: warning' <<<"$o"; return $rc; }
    if ! command -v qemu-x86_64 >/dev/null; then
        echo "cli/isa-emulated ... SKIP (no qemu-x86_64: apt-get install qemu-user)"
    elif [ -n "${SID_ASAN:-}" ]; then
        echo "cli/isa-emulated ... SKIP (the sanitizers' shadow memory does not run under QEMU)"
    else
        check isa-haswell 0 'cpu kernels: avx2 .*usable here: sse2 avx2;' qemu -cpu Haswell "$SID" info
        check isa-baseline 0 'cpu kernels: sse2 .*usable here: sse2;' qemu -cpu qemu64,vendor=GenuineIntel "$SID" info
        check isa-haswell-no-avx512 nonzero '^sid: SID_ISA=avx512: this CPU cannot run it' qemu -E SID_ISA=avx512 -cpu Haswell "$SID" info
        check isa-haswell-selftest 0 'selftest: ok' qemu -cpu Haswell "$SID" selftest "$tmp/st-haswell"
        check isa-baseline-selftest 0 'selftest: ok' qemu -cpu qemu64,vendor=GenuineIntel "$SID" selftest "$tmp/st-sse2"
    fi
fi
check unknown-command nonzero '^sid: unknown command .frobnicate.' "$SID" frobnicate
check unknown-option nonzero '^sid: unknown option .--bogus.' "$SID" --bogus info
check bad-threads nonzero '^sid: --threads: expected a count' "$SID" --threads zero info
check threads-flag 0 'threads: 1' "$SID" --threads 1 info
check selftest 0 'selftest: ok' "$SID" selftest "$tmp/st"
[ -s "$tmp/st/weights.safetensors" ] && [ -s "$tmp/st/blur.png" ] && { echo "cli/selftest-files ... ok"; pass=$((pass + 1)); } \
    || { echo "cli/selftest-files FAILED: outputs missing"; fail=$((fail + 1)); }
touch "$tmp/file"
check selftest-bad-dir nonzero '^sid: .*file' "$SID" selftest "$tmp/file/sub"
# sid inspect: counts from configs alone (docs/models.md)
check inspect-sd15-unet 0 'parameters: 859,520,964' "$SID" inspect bench/configs/sd15_unet.json
check inspect-sd-vae 0 'parameters: 83,653,863' "$SID" inspect tests/data/vae/sd15-vae-config.json
check inspect-clip-l 0 'parameters: 123,060,480' "$SID" inspect tests/data/clip/sd15-text_encoder-config.json
mkdir -p "$tmp/pipe/unet" "$tmp/pipe/vae" "$tmp/pipe/text_encoder"
echo '{"_class_name": "StableDiffusionPipeline"}' > "$tmp/pipe/model_index.json"
cp bench/configs/sd15_unet.json "$tmp/pipe/unet/config.json"
cp tests/data/vae/sd15-vae-config.json "$tmp/pipe/vae/config.json"
cp tests/data/clip/sd15-text_encoder-config.json "$tmp/pipe/text_encoder/config.json"
check inspect-pipeline 0 'AutoencoderKL' "$SID" inspect "$tmp/pipe"
check inspect-missing nonzero '^sid: .*/nope: no such file' "$SID" inspect "$tmp/nope"
echo '{"_class_name": "UNet2DConditionModel", "block_out_channels": [' > "$tmp/bad.json"
check inspect-bad-json nonzero '^sid: .*bad.json: invalid JSON' "$SID" inspect "$tmp/bad.json"
echo '{"_class_name": "Flux2Transformer"}' > "$tmp/odd.json"
check inspect-unknown-kind nonzero 'unknown model kind' "$SID" inspect "$tmp/odd.json"
# convert-unet: diffusers folder in, diffusers folder out (diffusers' side: tools/reference/check_written_unet.py)
check convert-unet 0 '209132 parameters' "$SID" convert-unet tests/data/unet/sd15_tiny "$tmp/conv" --dtype f16
check convert-unet-inspect 0 'parameters: 209,132' "$SID" inspect "$tmp/conv"
check convert-unet-needs-config nonzero 'needs --config' "$SID" convert-unet tests/data/unet/sd15_tiny/diffusion_pytorch_model.safetensors "$tmp/x"
check convert-unet-bad-dtype nonzero "^sid: --dtype: 'f8'" "$SID" convert-unet tests/data/unet/sd15_tiny "$tmp/y" --dtype f8
# teacher training, sampling and evaluation: flags are checked before any work
check teacher-bad-batch nonzero '^sid: train-teacher: --batch = 0 is outside' "$SID" train-teacher --batch 0
check teacher-unknown-flag nonzero "^sid: train-teacher: unknown flag '--bogus'" "$SID" train-teacher --bogus 1
check teacher-bad-number nonzero 'expects a number' "$SID" train-teacher --lr fast
check sample-needs-prompt nonzero 'give --prompt' "$SID" sample --model "$tmp/none"
check sample-missing-model nonzero "^sid: .*$tmp/none" "$SID" sample --model "$tmp/none" --prompt "a bag"
check eval-missing-model nonzero "^sid: .*$tmp/none" "$SID" eval --real --model "$tmp/none"
check eval-unknown-option nonzero '^sid: eval' "$SID" eval --bogus
if [ -n "${SID_ASAN:-}" ]; then  # the panel's 10,000-image reference takes minutes under ASan
    echo "cli/eval-panel SKIPPED under ASan (the plain run checks it)"
else
    check eval-panel 0 'panel=\{"n":20,.*"cnn":\{"fid".*"mlp":\{"fid".*"pixels":\{"mean"' "$SID" eval --images tests/data/eval/noise20.safetensors
fi
check eval-panel-no-mlp nonzero "^sid: the evaluation panel's second feature network: .*$tmp/none.*--arch mlp" \
    "$SID" eval --images tests/data/eval/noise20.safetensors --features-mlp "$tmp/none"
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    check teacher-few-steps 0 'wrote' "$SID" train-teacher --out "$tmp/teacher" --steps 4 --batch 4 --snapshot-every 2
    # the teacher's training on the guard device: the CPU's state bit for bit (one thread each)
    for dev in cpu guard; do
        check "teacher-on-$dev" 0 'wrote' "$SID" --threads 1 train-teacher --out "$tmp/teacher-$dev" --steps 4 --batch 4 \
            --snapshot-every 2 --device "$dev"
    done
    cmp -s "$tmp/teacher-cpu/train_state.safetensors" "$tmp/teacher-guard/train_state.safetensors" \
        && { echo "cli/teacher-guard-same-as-cpu ... ok"; pass=$((pass + 1)); } \
        || { echo "cli/teacher-guard-same-as-cpu FAILED"; fail=$((fail + 1)); }
    check sample-teacher 0 'sample: 3 images' "$SID" sample --model "$tmp/teacher" --prompt 'a photo of a bag' --n 3 --steps 3 --out "$tmp/s.png" --cfg 2
else
    echo "cli/teacher-few-steps SKIPPED: Fashion-MNIST not installed"
fi
# distillation: bad settings are one-line errors before any work
check distill-kappa nonzero '^sid: distill: --kappa = -1 is outside' "$SID" distill --kappa -1
check distill-tmin nonzero 'tmin < tmax' "$SID" distill --tmin 900 --tmax 100
check distill-batch nonzero 'multiple of --micro' "$SID" distill --batch 10 --micro 4
check distill-kappa23 nonzero 'kappa2 and kappa3' "$SID" distill --kappa2 2 --kappa3 3
check distill-no-teacher nonzero "^sid: .*$tmp/none" "$SID" distill --teacher "$tmp/none" --out "$tmp/d"
check distill-empty-prompts nonzero 'no usable|no prompt|empty' "$SID" distill --teacher tests/data/sid/teacher --prompts /dev/null --out "$tmp/d"
check distill-resume-nothing nonzero 'nothing to resume' "$SID" distill --teacher tests/data/sid/teacher --resume "$tmp/nothing"
check distill-tiny-run 0 'generator in' "$SID" distill --teacher tests/data/sid/teacher --out "$tmp/dr" --kimg 0.004 --batch 2 --tick 0.002 --snap 1
# --checkpointing: the same losses, less activation memory
check distill-checkpointing 0 'generator in' "$SID" distill --teacher tests/data/sid/teacher --out "$tmp/dck" --kimg 0.016 \
    --batch 8 --tick 0.008 --snap 1 --checkpointing
"$SID" distill --teacher tests/data/sid/teacher --out "$tmp/dnk" --kimg 0.016 --batch 8 --tick 0.008 --snap 1 >/dev/null 2>&1
losses() { sed -E 's/.*("loss_fake": [^,]*, "loss_gen": [^,]*).*/\1/' "$1/stats.jsonl"; }
peak() { tail -n 1 "$1/stats.jsonl" | sed -E 's/.*"peak_activation_mb": ([0-9.]+).*/\1/'; }
if [ -n "$(losses "$tmp/dck")" ] && [ "$(losses "$tmp/dck")" = "$(losses "$tmp/dnk")" ] \
    && awk -v a="$(peak "$tmp/dck")" -v b="$(peak "$tmp/dnk")" 'BEGIN { exit !(a + 0 < 0.8 * b) }'; then
    echo "cli/distill-checkpointing-same-losses ... ok"; pass=$((pass + 1))
else
    echo "cli/distill-checkpointing-same-losses FAILED: $(losses "$tmp/dck" | tr '\n' ' ') vs $(losses "$tmp/dnk" | tr '\n' ' '); peak $(peak "$tmp/dck") vs $(peak "$tmp/dnk") MB"
    fail=$((fail + 1))
fi
# --device guard-bf16 (activations rounded to bf16 after every op): the losses of a short run stay
# within 2 % of the fp32 run's (measured 2026-12-04: 3e-4 to 7e-3), and are not the same numbers
check distill-guard-bf16 0 'generator in' "$SID" distill --teacher tests/data/sid/teacher --out "$tmp/dbf" --kimg 0.008 \
    --batch 4 --tick 0.004 --snap 1000 --device guard-bf16
"$SID" distill --teacher tests/data/sid/teacher --out "$tmp/dfp" --kimg 0.008 --batch 4 --tick 0.004 --snap 1000 >/dev/null 2>&1
if paste <(losses "$tmp/dbf" | grep -oE '[-0-9.e]+$|: [-0-9.e]+,' | tr -d ':, ') \
         <(losses "$tmp/dfp" | grep -oE '[-0-9.e]+$|: [-0-9.e]+,' | tr -d ':, ') |
    awk 'NF == 2 { n++; d = $1 - $2; if (d < 0) d = -d; s = $2 < 0 ? -$2 : $2; if (d > 0.02 * s) bad++; if (d > 0) moved++ }
         END { exit !(n == 4 && !bad && moved) }'; then
    echo "cli/distill-guard-bf16-losses ... ok"; pass=$((pass + 1))
else
    echo "cli/distill-guard-bf16-losses FAILED: $(losses "$tmp/dbf" | tr '\n' ' ') vs $(losses "$tmp/dfp" | tr '\n' ' ')"
    fail=$((fail + 1))
fi
check generate-one-step 0 'generate: 6 images' "$SID" generate --model "$tmp/dr/generator" --prompt 'an ankle boot' --n 6 --out "$tmp/g.png"
check generate-not-generator nonzero 'sid_generator.json' "$SID" generate --model tests/data/sid/teacher --prompt x --out "$tmp/g2.png"
check distill-fractional nonzero "^sid: distill: --batch expects a whole number, got '16.9'" "$SID" distill --batch 16.9
check distill-batch-cap nonzero 'is outside' "$SID" distill --batch 70000
check distill-micro-memory nonzero '^sid: distill: --micro 8192 needs about .* use --micro' \
    "$SID" distill --teacher tests/data/sid/teacher --out "$tmp/mem" --batch 8192 --micro 8192
long=$(printf 'a photo of a sneaker %.0s' $(seq 30))
check sample-long-prompt 0 'warning: the prompts of 2 images were longer than 16 tokens' "$SID" sample \
    --model tests/data/sid/teacher --prompt "$long" --n 2 --steps 2 --out "$tmp/long.png"
# resume: the run's own settings; flags that change the maths are refused, partial files are cleared
check distill-resume-conflict nonzero '^sid: distill: --seed differs from the resumed run' "$SID" distill --resume "$tmp/dr" --seed 9
check distill-resume-conflict-batch nonzero '^sid: distill: --batch differs' "$SID" distill --resume "$tmp/dr" --batch 16
touch "$tmp/dr/stats.jsonl.tmp.12345" "$tmp/dr/generator/unet/config.json.tmp.777"
check distill-resume-longer 0 'removed 2 partial files' "$SID" distill --resume "$tmp/dr" --kimg 0.006 --seed 1
[ ! -e "$tmp/dr/stats.jsonl.tmp.12345" ] && [ ! -e "$tmp/dr/generator/unet/config.json.tmp.777" ] \
    && grep -q '"seed":.*"1"' "$tmp/dr/config.json" && grep -q '"batch":.*2,' "$tmp/dr/config.json" \
    && grep -q '"duration_img":.*6,' "$tmp/dr/config.json" && grep -q '"lr":.*0.0002,' "$tmp/dr/config.json" \
    && [ "$(wc -l < "$tmp/dr/stats.jsonl")" -eq 3 ] \
    && { echo "cli/distill-resume-config ... ok"; pass=$((pass + 1)); } \
    || { echo "cli/distill-resume-config FAILED: $(cat "$tmp/dr/config.json" | tr -d '\n\t')"; fail=$((fail + 1)); }
# the two tiny latent pipelines written by diffusers: distil, resume, generate, sample, evaluate
for p in sd15_tiny sd2_tiny; do
    d="$tmp/$p"
    check "$p-distill" 0 'generator in' "$SID" distill --teacher "tests/data/pipelines/$p" --out "$d" --kimg 0.008 --batch 2 \
        --tick 0.002 --snap 1 --stop-after 0.004
    check "$p-resume" 0 'generator in' "$SID" distill --resume "$d"
    [ -s "$d/fakes_init.png" ] && [ -s "$d/fakes_000008.png" ] && [ -s "$d/generator/vae/config.json" ] \
        && [ -s "$d/generator/tokenizer/tokenizer_config.json" ] && [ "$(wc -l < "$d/stats.jsonl")" -eq 4 ] \
        && { echo "cli/$p-run-files ... ok"; pass=$((pass + 1)); } \
        || { echo "cli/$p-run-files FAILED: $(ls -R "$d" | tr '\n' ' ')"; fail=$((fail + 1)); }
    check "$p-generate" 0 'generate: 4 images' "$SID" generate --model "$d/generator" --prompt 'a photo of a sneaker' --n 4 \
        --out "$d/g.png"
    check "$p-sample" 0 'sample: 2 images' "$SID" sample --model "tests/data/pipelines/$p" --prompt 'a bag' --n 2 --steps 2 \
        --out "$d/s.png"
    if [ -n "${SID_ASAN:-}" ]; then  # its 10,000-image reference features take 2 minutes under ASan
        echo "cli/$p-eval-model SKIPPED under ASan (the plain run checks it)"
    else
        check "$p-eval-model" 0 '"converted": true, "panel": \{"n":20,.*"mlp":\{"fid"' "$SID" eval-model --model "$d/generator" --n 20
    fi
    # the generator, text encoder and VAE with every buffer on the guard device: the same pixels (one
    # thread each: the CPU splits a batch over its threads, and OpenBLAS's bits for a row depend on
    # the rows around it on some CPUs)
    check "$p-generate-guard" 0 'generate: 4 images .*guard' "$SID" --threads 1 generate --model "$d/generator" \
        --prompt 'a photo of a sneaker' --n 4 --out "$d/g-guard.png" --device guard
    "$SID" --threads 1 generate --model "$d/generator" --prompt 'a photo of a sneaker' --n 4 --out "$d/g1.png" >/dev/null 2>&1
    cmp -s "$d/g1.png" "$d/g-guard.png" && { echo "cli/$p-guard-same-pixels ... ok"; pass=$((pass + 1)); } \
        || { echo "cli/$p-guard-same-pixels FAILED: the guard device's images differ from the CPU's"; fail=$((fail + 1)); }
done
# The zero-shot COCO protocol end to end (docs/coco.md) on the tiny SD1.5-structured generator, with
# a random-weight FID Inception and the tiny CLIP of the parity tests: JSON line, resume, refusals.
g="$tmp/sd15_tiny/generator" cw="$tmp/coco" refimg="$tmp/coco-ref" clip="$tmp/clipfx/tokens"
# the tiny exact-gelu CLIP of tests/test_clip_score.c (hashed weights), written by its tokens case
SID_CLIP_FIXTURE_DIR="$tmp/clipfx" "$(dirname "$SID")/tests/test_clip_score" test_tokens_are_gigagans >/dev/null 2>&1
mkdir -p "$refimg" && cp tests/data/jpeg/c420.jpg tests/data/jpeg/c444.jpg tests/data/jpeg/gray.jpg tests/data/jpeg/prog.jpg "$refimg/"
printf 'a photo of a sneaker\n\n  a red bag  \nan ankle boot\na shirt\na dress\na coat\na sandal\na pullover\n' >"$tmp/captions.txt"
coco() { "$SID" eval-coco --model "$g" --captions "$tmp/captions.txt" --inception random:3 --batch 4 "$@"; }
fid_of() { grep -oE '"fid": [0-9.e+-]+, "kid": [0-9.e+-]+' <<<"$1"; }
clip_of() { grep -oE '"clip_score": [0-9.e+-]+' <<<"$1"; }
check coco-eval 0 '"ref_n": 4, "fid": [0-9.]+, "kid": -?[0-9.]+.*"clip_score": -?0\.[0-9]+, "generated": 6, "reused": 0' \
    coco --coco-val "$refimg" --clip "$clip" --n 6 --work "$cw"
check coco-resume-more 0 '"n": 8, .*"generated": 2, "reused": 0' \
    coco --coco-val "$refimg" --clip "$clip" --n 8 --work "$cw"
# the features again from the images on disk (the reuse path), then the same numbers as from the shards
[ -z "${SID_ASAN:-}" ] && eight=$(coco --coco-val "$refimg" --clip "$clip" --n 8 --work "$cw" 2>/dev/null)
rm -r "$cw/shards"
check coco-from-images 0 '"generated": 0, "reused": 8' coco --coco-val "$refimg" --clip "$clip" --n 8 --work "$cw"
if [ -z "${SID_ASAN:-}" ]; then  # reruns of code the checks above ran: 30 s more under ASan
    again=$(coco --coco-val "$refimg" --clip "$clip" --n 8 --work "$cw" 2>/dev/null)
    [ -n "$(fid_of "$eight")" ] && [ "$(fid_of "$eight")" = "$(fid_of "$again")" ] && [ "$(clip_of "$eight")" = "$(clip_of "$again")" ] \
        && { echo "cli/coco-resume-same-numbers ... ok"; pass=$((pass + 1)); } \
        || { echo "cli/coco-resume-same-numbers FAILED: '$eight' vs '$again'"; fail=$((fail + 1)); }
fi
check coco-other-network nonzero 'manifest.json: this folder holds the work of another evaluation \(inception' \
    "$SID" eval-coco --model "$g" --captions "$tmp/captions.txt" --inception random:4 --coco-val "$refimg" --clip "$clip" \
    --n 6 --work "$cw"
check fid-ref-stats 0 '"n": 4, "features": 2048, "kid_features": 4' "$SID" fid-ref-stats --images "$refimg" \
    --inception random:3 --out "$tmp/ref.safetensors"
if [ -z "${SID_ASAN:-}" ]; then
    first=$(coco --coco-val "$refimg" --clip "$clip" --n 6 --work "$cw" 2>/dev/null)
    shipped=$(coco --ref-stats "$tmp/ref.safetensors" --clip "$clip" --n 6 --work "$tmp/coco2" 2>/dev/null)
    [ -n "$(fid_of "$first")" ] && [ "$(fid_of "$first")" = "$(fid_of "$shipped")" ] \
        && { echo "cli/coco-ref-stats-file ... ok"; pass=$((pass + 1)); } \
        || { echo "cli/coco-ref-stats-file FAILED: '$first' vs '$shipped'"; fail=$((fail + 1)); }
    coco1() { "$SID" --threads 1 eval-coco --model "$g" --captions "$tmp/captions.txt" --inception random:3 --batch 4 "$@"; }
    one=$(coco1 --ref-stats "$tmp/ref.safetensors" --clip "$clip" --n 6 --work "$tmp/coco3" 2>/dev/null)
    guard=$(coco1 --ref-stats "$tmp/ref.safetensors" --clip "$clip" --n 6 --work "$tmp/coco3g" --device guard 2>/dev/null)
    [ -n "$(fid_of "$guard")" ] && [ "$(fid_of "$guard")" = "$(fid_of "$one")" ] && [ "$(clip_of "$guard")" = "$(clip_of "$one")" ] \
        && { echo "cli/coco-guard-same-numbers ... ok"; pass=$((pass + 1)); } \
        || { echo "cli/coco-guard-same-numbers FAILED: '$guard' vs '$one'"; fail=$((fail + 1)); }
else
    echo "cli/coco-ref-stats-file, coco-guard-same-numbers ... SKIPPED under ASan (the plain run checks them)"
fi
check coco-no-inception nonzero '^sid: /nonexistent/inception.safetensors: no such file.*convert_fid_inception' \
    "$SID" eval-coco --model "$g" --captions "$tmp/captions.txt" --inception /nonexistent/inception.safetensors \
    --ref-stats "$tmp/ref.safetensors" --n 6 --work "$tmp/coco4"
check coco-no-clip nonzero "^sid: .*$tmp/noclip" coco --ref-stats "$tmp/ref.safetensors" --clip "$tmp/noclip" --n 6 --work "$tmp/coco5"
check coco-few-captions nonzero 'captions.txt: 8 captions, fewer than the 9 images' coco --ref-stats "$tmp/ref.safetensors" \
    --n 9 --work "$tmp/coco6"
check coco-no-reference nonzero '^sid: eval-coco: give one of --coco-val DIR and --ref-stats FILE' coco --n 6
check coco-bad-stats nonzero "not a reference statistics file" coco --ref-stats "$g/unet/diffusion_pytorch_model.safetensors" \
    --n 6 --work "$tmp/coco7"
# a run that fails on its inputs leaves the folder unclaimed: the corrected run is accepted
coco --ref-stats "$tmp/none.safetensors" --n 6 --work "$tmp/coco8" >/dev/null 2>&1
check coco-after-failed-run 0 '"generated": 6' coco --ref-stats "$tmp/ref.safetensors" --n 6 --work "$tmp/coco8"
check generate-guard-env 0 'guard' env SID_DEVICE=guard "$SID" generate --model "$tmp/dr/generator" --prompt 'a bag' --n 2 \
    --out "$tmp/genv.png"
check distill-device-cuda nonzero '^sid: distill: --device cuda: ' "$SID" distill --device cuda
# the whole run on the guard device (memory unreadable by the host between ops): the same state, grids
# and export as on the CPU, bit for bit (one thread each: the CPU splits batches over threads)
for dev in cpu guard; do
    check "distill-on-$dev" 0 'generator in' "$SID" --threads 1 distill --teacher tests/data/sid/teacher --out "$tmp/dev-$dev" \
        --batch 2 --kimg 0.004 --tick 0.002 --snap 1 --kappa 2 --device "$dev"
done
cmp -s "$tmp/dev-cpu/training-state.safetensors" "$tmp/dev-guard/training-state.safetensors" \
    && cmp -s "$tmp/dev-cpu/fakes_000004.png" "$tmp/dev-guard/fakes_000004.png" \
    && cmp -s "$tmp/dev-cpu/generator/unet/diffusion_pytorch_model.safetensors" \
              "$tmp/dev-guard/generator/unet/diffusion_pytorch_model.safetensors" \
    && { echo "cli/distill-guard-same-as-cpu ... ok"; pass=$((pass + 1)); } \
    || { echo "cli/distill-guard-same-as-cpu FAILED: the guard device's run differs from the CPU's"; fail=$((fail + 1)); }
check distill-guard-resume 0 'resuming' "$SID" --threads 1 distill --resume "$tmp/dev-guard" --kimg 0.006 --device guard
for dev in cpu guard; do  # DDIM with guidance on the guard device: the CPU's pixels
    check "sample-on-$dev" 0 'sample: 3 images' "$SID" --threads 1 sample --model tests/data/pipelines/sd2_tiny --prompt 'a bag' --n 3 \
        --steps 3 --cfg 2.5 --out "$tmp/sample-$dev.png" --device "$dev"
done
cmp -s "$tmp/sample-cpu.png" "$tmp/sample-guard.png" && { echo "cli/sample-guard-same-as-cpu ... ok"; pass=$((pass + 1)); } \
    || { echo "cli/sample-guard-same-as-cpu FAILED"; fail=$((fail + 1)); }
check sample-device-bad nonzero "^sid: sample: --device tpu: backend 'tpu': not compiled" "$SID" sample --prompt x --device tpu
echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
