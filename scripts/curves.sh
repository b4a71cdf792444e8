#!/usr/bin/env bash
# The evaluation panel along a long run: scores every generator scripts/long_run.sh kept
# (RUN/snaps/<kimg>) with `sid eval-model` and writes RUN/panel.jsonl, one line per kimg (the
# eval-model line with "kimg" added). Lines already there are kept, so it can be re-run as a run
# grows. Usage: scripts/curves.sh RUN [N_EVAL]
set -euo pipefail
cd "$(dirname "$0")/.."
SID=${SID_BIN:-build/sid}; RUN=$1; N=${2:-1000}
out="$RUN/panel.jsonl"; touch "$out"
for k in $(ls "$RUN/snaps" | grep -E '^[0-9.]+$' | sort -g); do
    jq -c --argjson k "$k" 'select(.kimg == $k)' "$out" | grep -q . && continue
    line=$("$SID" eval-model --model "$RUN/snaps/$k" --n "$N")
    jq -c --argjson k "$k" '{kimg: $k} + .' <<<"$line" >> "$out"
    echo "$RUN: $k kimg scored" >&2
done
