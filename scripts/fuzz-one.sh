#!/usr/bin/env bash
# fuzz-one.sh PKG NAME FUZZTIME MINIMIZE: fuzz one target (make fuzz).
#
# Go 1.26's fuzz coordinator can end a clean run with a bare "context deadline
# exceeded" at the -fuzztime boundary when its workers are starved of CPU
# (go.dev/issue/75804, fixed in Go 1.27): no input is written and nothing
# failed. That one outcome is run again, once; anything else — an input
# written, a panic, any other error, or the race twice — fails.
set -u
pkg=$1 name=$2 fuzztime=$3 minimize=$4
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for attempt in 1 2; do
	"${GO:-go}" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$pkg" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	[ "$rc" -eq 0 ] && exit 0
	if grep -q "Failing input written" "$out" || ! grep -q "^    context deadline exceeded$" "$out" ||
		[ "$(grep -c -- '^--- FAIL' "$out")" -ne 1 ] || [ "$attempt" -eq 2 ]; then
		exit "$rc"
	fi
	echo "fuzz: $name ended with Go's -fuzztime shutdown race (go.dev/issue/75804: no input written); running it again"
done
