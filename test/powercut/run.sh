#!/usr/bin/env bash
# Power-cut harness (docs/powercut.md): boots a small guest that loops real
# modelslot updates on a virtio ext4 disk, kills QEMU at a random moment (the
# guest's page cache dies with it), and checks the image on the host. Then the
# same with the canary build (fsyncs off), which must be caught.
#
# Environment (defaults are `make powercut`'s):
#   POWERCUT_CUTS=150          cuts of the real build
#   POWERCUT_CANARY_CUTS=16    cuts of the canary build (0: skip the canary)
#   POWERCUT_CANARY_MIN=50     percent of canary cuts that must be caught
#   POWERCUT_LANES=2           QEMU guests at once
#   POWERCUT_MAX_DELAY_MS=7000 cut delay after the start of step 1-4: 0..this
#   POWERCUT_CACHE             kernel cache (default $XDG_CACHE_HOME/modelslot-powercut)
#   POWERCUT_RESULTS           where failed cuts are kept (default test/powercut/results)
# Run as root (loop mounts). Exit 0 only with zero failures and the canary caught.
set -euo pipefail

PC_HERE=$(cd "$(dirname "$0")" && pwd)
PC_ROOT=$(cd "$PC_HERE/../.." && pwd)
PC_CACHE=${POWERCUT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelslot-powercut}
PC_RESULTS=${POWERCUT_RESULTS:-$PC_HERE/results}
CUTS=${POWERCUT_CUTS:-150}
CANARY_CUTS=${POWERCUT_CANARY_CUTS:-16}
CANARY_MIN=${POWERCUT_CANARY_MIN:-50}
LANES=${POWERCUT_LANES:-2}
MAX_DELAY=${POWERCUT_MAX_DELAY_MS:-7000}
BOOT_TIMEOUT=180 # seconds until the cut's anchor line (generous: the machine may be shared)

# shellcheck source=setup.sh
. "$PC_HERE/setup.sh"

[ "$(id -u)" = 0 ] || { pc_log "run as root: the images are loop-mounted"; exit 2; }
command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin

PC_WORK=$(mktemp -d /tmp/modelslot-powercut.XXXXXX)
PC_BIN=$PC_WORK/bin
lane_pids=()

# cleanup ends what this script started (lanes, their QEMU) by pid and
# unmounts every mount under the work dir, so nothing is left behind.
cleanup() {
	local p m
	for p in "${lane_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "$PC_WORK"/lane*/qemu.pid; do
		[ -f "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	for m in "$PC_WORK"/lane*/mnt "$PC_WORK"/base-mnt; do
		mountpoint -q "$m" 2>/dev/null && umount "$m"
	done
	rm -rf "$PC_WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# cut_once boots one guest on a fresh copy of the base image, cuts its power
# at a random moment after the start of a random early step (the canary: after
# its first acknowledged step, since only an acknowledged step can be lost),
# and judges the image. It prints one line: KIND LANE N VERDICT DELAY_MS
# WAIT_MS DETAIL, where WAIT_MS is the time from launch to that anchor and
# VERDICT is PASS, FAIL (an invariant broke) or NOSTART (the guest never
# reached the driver).
cut_once() {
	local kind=$1 lane=$2 n=$3 initrd=$4
	local d=$PC_WORK/lane$lane seed delay start boot verdict early= anchor
	# The delay counts from the start of step 1-4, chosen at random, so cuts
	# spread over several steps even when a loaded host slows the guest down.
	anchor="^BEGIN $((RANDOM % 4 + 1)) "
	[ "$kind" = canary ] && anchor='^ACK'
	rm -rf "$d"; mkdir -p "$d/mnt"
	cp --sparse=always "$PC_WORK/base.img" "$d/disk.img"
	: > "$d/serial.log" # truncated before launch: no stale START can match
	seed=$(( (RANDOM << 15) | RANDOM ))
	delay=$(( (RANDOM * 32768 + RANDOM) % (MAX_DELAY + 1) ))
	start=$(date +%s%N)
	qemu-system-x86_64 -accel tcg -M pc -m 256 -smp 1 -nodefaults -display none -no-reboot \
		-kernel "$PC_CACHE/vmlinux" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=-1 no_timer_check pcdirty=1 pcseed=$seed" \
		-serial "file:$d/serial.log" \
		-drive "file=$d/disk.img,format=raw,if=virtio,cache=none" &
	echo $! > "$d/qemu.pid"
	until grep -q "$anchor" "$d/serial.log"; do
		if ! kill -0 "$(cat "$d/qemu.pid")" 2>/dev/null || grep -q '^ERROR' "$d/serial.log" ||
			(( $(date +%s%N) - start > BOOT_TIMEOUT * 10**9 )); then
			break
		fi
		sleep 0.05
	done
	boot=$(( ($(date +%s%N) - start) / 10**6 ))
	if grep -q "$anchor" "$d/serial.log"; then
		sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	fi
	kill -KILL "$(cat "$d/qemu.pid")" 2>/dev/null || early="qemu exited before the cut; "
	wait "$(cat "$d/qemu.pid")" 2>/dev/null || true
	rm -f "$d/qemu.pid"
	verdict=$(judge_image "$d")
	if [ -n "$early" ] && [ "${verdict%% *}" = PASS ]; then
		verdict="FAIL $early${verdict#* }" # a guest that died by itself is a failure
	fi
	if [ "${verdict%% *}" != PASS ] && [ "$kind" = real ]; then
		keep_failed "$d" "$kind-lane$lane-cut$n" "seed=$seed anchor=$anchor delay=${delay}ms wait=${boot}ms $verdict"
	fi
	echo "$kind $lane $n ${verdict%% *} $delay $boot ${verdict#* }"
}

# judge_image replays the journal (e2fsck stands in for the next boot's
# mount), mounts the image and runs the checker. It prints "VERDICT detail".
judge_image() {
	local d=$1 rc=0 out
	cp --sparse=always "$d/disk.img" "$d/cut.img" # as the cut left it, kept if it fails
	e2fsck -fy "$d/disk.img" > "$d/fsck.log" 2>&1 || rc=$?
	if (( rc >= 4 )); then echo "FAIL e2fsck exit $rc (filesystem damaged)"; return; fi
	if ! grep -q '^START' "$d/serial.log"; then echo "NOSTART the guest never reached the driver"; return; fi
	mount -o loop "$d/disk.img" "$d/mnt" || { echo "FAIL mount after e2fsck"; return; }
	out=$("$PC_BIN/check" -mnt "$d/mnt" -log "$d/serial.log" -modelslot "$PC_BIN/modelslot" 2>&1) || true
	umount "$d/mnt"
	echo "${out:-FAIL check printed nothing}" | tail -1
}

keep_failed() {
	local d=$1 name=$2 note=$3 dst=$PC_RESULTS/$2
	mkdir -p "$dst"
	cp --sparse=always "$d/cut.img" "$dst/" 2>/dev/null || true
	cp "$d/serial.log" "$d/fsck.log" "$dst/" 2>/dev/null || true
	echo "$note" > "$dst/verdict.txt"
	pc_log "kept $dst"
}

# run_lanes runs COUNT cuts of KIND over $LANES lanes and appends their lines
# to OUT.
run_lanes() {
	local kind=$1 count=$2 initrd=$3 out=$4 lane
	lane_pids=()
	for ((lane = 0; lane < LANES; lane++)); do
		(
			trap 'exit 130' TERM
			for ((n = lane; n < count; n += LANES)); do
				line=$(cut_once "$kind" "$lane" "$n" "$initrd")
				echo "$line" >> "$out"
				pc_log "$line"
			done
		) &
		lane_pids+=($!)
	done
	wait "${lane_pids[@]}"
	lane_pids=()
}

count() { grep -c " $2 " "$1" 2>/dev/null || true; }

# steps says how far the guests got before their cuts: under a loaded machine
# the same delays cover fewer steps, which a reader of the counts should know.
steps() {
	local boot
	boot=$(awk '$6 ~ /^[0-9]+$/ { t += $6; n++ } END { if (n) printf "%.1f", t / n / 1000 }' "$1")
	grep -o 'acked step [0-9]*' "$1" | awk '{ print $3 }' | sort -n |
		awk -v boot="$boot" '{ s[NR] = $1; if ($1 == 0) z++ }
			END { if (NR) printf "  acknowledged steps before the cut: median %d, max %d; %d cuts before the first; %s s on average from launch to the anchor\n", s[int((NR + 1) / 2)], s[NR], z, boot }'
}

main() {
	local t0 real=$PC_WORK/real.txt canary=$PC_WORK/canary.txt
	t0=$(date +%s)
	pc_packages
	pc_kernel
	pc_log "building binaries"
	pc_build "$PC_BIN"
	pc_initrd "$PC_BIN" "$PC_BIN/modelslot" "$PC_WORK/initrd-real.cpio"
	pc_initrd "$PC_BIN" "$PC_BIN/modelslot-nofsync" "$PC_WORK/initrd-canary.cpio"
	pc_base_image "$PC_WORK/base.img"
	: > "$real"; : > "$canary"
	pc_log "$CUTS cuts of the real build, $LANES lanes, delays 0-${MAX_DELAY} ms"
	run_lanes real "$CUTS" "$PC_WORK/initrd-real.cpio" "$real"
	if (( CANARY_CUTS > 0 )); then
		pc_log "$CANARY_CUTS cuts of the canary build (modelslot_nofsync: must be caught)"
		run_lanes canary "$CANARY_CUTS" "$PC_WORK/initrd-canary.cpio" "$canary"
	fi
	report "$real" "$canary" $(( $(date +%s) - t0 ))
}

# report prints the counts and decides the exit status: every real cut must
# pass, every guest must boot, and the canary must be caught often enough.
report() {
	local real=$1 canary=$2 secs=$3 pass fail nostart cpass cfail cnostart ok=0
	pass=$(count "$real" PASS); fail=$(count "$real" FAIL); nostart=$(count "$real" NOSTART)
	cpass=$(count "$canary" PASS); cfail=$(count "$canary" FAIL); cnostart=$(count "$canary" NOSTART)
	echo
	echo "real build:   $CUTS cuts: $pass passed, $fail failed, $nostart boots failed"
	steps "$real"
	awk '$4 != "PASS"' "$real" | sed 's/^/  /'
	if (( CANARY_CUTS > 0 )); then
		echo "canary build: caught $cfail/$CANARY_CUTS cuts (must be >= $CANARY_MIN%), missed $cpass, $cnostart boots failed"
		awk '$4 == "FAIL" { n[$7]++ } END { for (k in n) printf "  caught as %s %d\n", k, n[k] }' "$canary" | sort
		if (( cfail * 100 < CANARY_MIN * CANARY_CUTS || cnostart > 0 )); then
			echo "the canary was not caught often enough: the harness may not be cutting power"; ok=1
		fi
	fi
	(( fail == 0 && nostart == 0 )) || ok=1
	printf 'took %dm%02ds; failed cuts kept under %s\n' $((secs / 60)) $((secs % 60)) "$PC_RESULTS"
	echo "powercut: $pass passed, $((fail + nostart)) failed"
	return $ok
}

main "$@"
