#!/usr/bin/env bash
# Runs every test program given, sums their closing lines, fails if any failed.
set -u
total_pass=0; total_fail=0; status=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z_]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$t: crashed or printed no summary (exit $rc)"; total_fail=$((total_fail + 1)); status=1; continue
    fi
    p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.*passed, ([0-9]+) failed.*/\1/' <<<"$line")
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    [ "$rc" -ne 0 ] && status=1
done
echo "all: $total_pass passed, $total_fail failed"
exit $status
