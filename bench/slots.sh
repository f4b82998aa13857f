#!/usr/bin/env bash
# Slot store benchmark (issue: foundation): the durable link swap, and
# `modelslot verify` on a 1 GiB slot beside `sha256sum` on the same files, run
# in interleaved rounds in one script so machine drift hits both alike. Prints
# medians and the ratio; asserts nothing about absolute time.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}   # slot size
FILES=${FILES:-8}            # files in the slot
ROUNDS=${ROUNDS:-5}

work=$(mktemp -d /var/tmp/modelslot-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
go build -o "$work/modelslot" ./cmd/modelslot

echo "== link swap (symlink to temp name, rename over the link, fsync the directory)"
go test ./internal/durable -run '^$' -bench LinkSwap -benchtime 2000x | grep -E '^BenchmarkLinkSwap'

echo "== verify a ${SIZE_MIB} MiB slot (${FILES} files) vs sha256sum, ${ROUNDS} interleaved rounds, warm page cache"
mkdir -p "$work/model"
per=$((SIZE_MIB / FILES))
for i in $(seq 1 "$FILES"); do
	head -c "$((per << 20))" /dev/urandom >"$work/model/w$i.bin"
done
cat >"$work/modelslot.toml" <<TOML
device_id = "bench"
state_root = "$work/state"
[[model]]
name = "bench"
TOML
export MODELSLOT_CONFIG="$work/modelslot.toml"
"$work/modelslot" install --insecure --label v1 "$work/model" >/dev/null
rm -rf "$work/model" # keep only the slot in the page cache
slot="$work/state/bench/current"
files=("$slot"/w*.bin)
"$work/modelslot" verify >/dev/null; sha256sum "${files[@]}" >/dev/null # warm up

now() { date +%s.%N; }
ms=(); ss=()
for r in $(seq 1 "$ROUNDS"); do
	t0=$(now); "$work/modelslot" verify >/dev/null; t1=$(now)
	sha256sum "${files[@]}" >/dev/null; t2=$(now)
	ms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
	ss+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN {print b - a}')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m=$(median "${ms[@]}"); s=$(median "${ss[@]}")
awk -v m="$m" -v s="$s" -v mib="$SIZE_MIB" -v cpus="$(nproc)" 'BEGIN {
	printf "modelslot verify  %6.3f s  %7.0f MiB/s\n", m, mib / m
	printf "sha256sum         %6.3f s  %7.0f MiB/s\n", s, mib / s
	printf "ratio (sha256sum time / modelslot time): %.2fx on %d CPUs  (goal >= 4x)\n", s / m, cpus
}'
