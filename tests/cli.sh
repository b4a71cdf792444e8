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
check unknown-command nonzero '^sid: unknown command .frobnicate.' "$SID" frobnicate
check unknown-option nonzero '^sid: unknown option .--bogus.' "$SID" --bogus info
check bad-threads nonzero '^sid: --threads: expected a count' "$SID" --threads zero info
check threads-flag 0 'threads: 1' "$SID" --threads 1 info
check selftest 0 'selftest: ok' "$SID" selftest "$tmp/st"
[ -s "$tmp/st/weights.safetensors" ] && [ -s "$tmp/st/blur.png" ] && { echo "cli/selftest-files ... ok"; pass=$((pass + 1)); } \
    || { echo "cli/selftest-files FAILED: outputs missing"; fail=$((fail + 1)); }
touch "$tmp/file"
check selftest-bad-dir nonzero '^sid: .*file' "$SID" selftest "$tmp/file/sub"
echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
