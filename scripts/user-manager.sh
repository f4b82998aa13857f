#!/usr/bin/env bash
# A private `systemd --user` manager for the demo and for manual testing on a
# machine where systemd is not PID 1 (docs/systemd.md; the Go tests use
# internal/systemdtest, which does the same). Needs root.
#
#   scripts/user-manager.sh start [DIR]   start one (idempotent), print its env
#   scripts/user-manager.sh env   [DIR]   print `export` lines: eval "$(... env)"
#   scripts/user-manager.sh stop  [DIR]   stop it, its services, its cgroup
#   scripts/user-manager.sh status [DIR]  exit 0 if it runs
#
# DIR defaults to $MODELSLOT_USER_MANAGER_DIR or /tmp/modelslot-user-manager.
# Units go in DIR/config/systemd/user (printed as MODELSLOT_UNIT_DIR); run
# `systemctl --user daemon-reload` after writing them.
#
# How: a private mount namespace with a tmpfs over /run/systemd (so the host's
# /run is untouched) and /run/systemd/system (without it `systemd --user`
# refuses to start), a fresh 0700 XDG_RUNTIME_DIR, and a cgroup of its own under
# ours (a user manager in the root cgroup moves every process of the machine
# into its init.scope).
set -euo pipefail

SYSTEMD=/lib/systemd/systemd
CG=/sys/fs/cgroup
cmd=${1:-}
dir=${2:-${MODELSLOT_USER_MANAGER_DIR:-/tmp/modelslot-user-manager}}
run=$dir/run

die() { echo "user-manager: $*" >&2; exit 1; }

# Our path in a cgroup hierarchy ("" for cgroup2, "name=systemd" for v1).
self_cgroup() { awk -F: -v h="$1" '$2 == h { print $3 }' /proc/self/cgroup; }

# The directories the manager joins before it starts, one per line.
cgroup_dirs() {
	local name=$1
	if [ -e $CG/cgroup.controllers ]; then
		echo "$CG$(self_cgroup '')/$name" | sed 's#//*#/#g'
		return
	fi
	echo "$CG/systemd$(self_cgroup name=systemd)/$name" | sed 's#//*#/#g'
	[ -e $CG/unified/cgroup.procs ] && echo "$CG/unified$(self_cgroup '')/$name" | sed 's#//*#/#g'
	return 0
}

manager_pid() {
	local pid
	pid=$(cat "$dir/pid" 2>/dev/null) || return 1
	# Only a systemd whose runtime dir is ours: never signal anybody else's process.
	[ "$(cat /proc/"$pid"/comm 2>/dev/null)" = systemd ] || return 1
	tr '\0' '\n' </proc/"$pid"/environ 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=$run" || return 1
	echo "$pid"
}

print_env() {
	cat <<EOT
export XDG_RUNTIME_DIR=$run
export DBUS_SESSION_BUS_ADDRESS=unix:path=$run/bus
export MODELSLOT_SYSTEMD_BUS=unix:path=$run/systemd/private
export MODELSLOT_UNIT_DIR=$dir/config/systemd/user
EOT
}

sctl() { XDG_RUNTIME_DIR=$run DBUS_SESSION_BUS_ADDRESS= systemctl --user "$@"; }

start() {
	[ "$(id -u)" = 0 ] || die "needs root (a mount namespace and a cgroup for the manager)"
	[ -x $SYSTEMD ] || die "$SYSTEMD is missing: apt-get install systemd"
	if manager_pid >/dev/null; then print_env; return; fi
	mkdir -p "$dir/config/systemd/user" "$dir/home"
	rm -rf "$run" && mkdir -m 0700 "$run"
	local name dirs
	name="modelslot-user-manager-$(basename "$dir")"
	mapfile -t dirs < <(cgroup_dirs "$name")
	for d in "${dirs[@]}"; do mkdir -p "$d"; done
	printf '%s\n' "${dirs[@]}" >"$dir/cgroups"
	# setsid does not fork here (a background job is no group leader), unshare
	# and sh exec, so $! ends up being the manager's PID.
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME="$dir/home" LANG=C.UTF-8 XDG_RUNTIME_DIR="$run" \
		XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/home/data" \
		XDG_STATE_HOME="$dir/home/state" XDG_CACHE_HOME="$dir/home/cache" \
		SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=info \
		setsid unshare -m --propagation private /bin/sh -c '
			set -e
			for d in "$@"; do echo $$ > "$d/cgroup.procs"; done
			mkdir -p /run/systemd
			mount -t tmpfs -o mode=0755 modelslot-user-manager /run/systemd
			mkdir /run/systemd/system
			exec '"$SYSTEMD"' --user' sh "${dirs[@]}" \
		</dev/null >"$dir/manager.log" 2>&1 &
	echo $! >"$dir/pid"
	wait_ready || { cat "$dir/manager.log" >&2; stop; die "manager did not start (log above)"; }
	print_env
}

wait_ready() {
	local i
	for i in $(seq 150); do
		sctl show -p Version --value >/dev/null 2>&1 && return 0
		kill -0 "$(cat "$dir/pid")" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Every PID left in the manager's cgroup subtree.
cgroup_pids() {
	local top
	top=$(head -n1 "$dir/cgroups" 2>/dev/null) || return 0
	[ -d "$top" ] && find "$top" -name cgroup.procs -exec cat {} + 2>/dev/null
	return 0
}

stop() {
	local pid i rel
	if pid=$(manager_pid); then
		sctl exit >/dev/null 2>&1 || true
		for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -TERM "$pid" 2>/dev/null && sleep 1 || true
		kill -KILL "$pid" 2>/dev/null || true
	fi
	for i in $(seq 50); do
		[ -z "$(cgroup_pids)" ] && break
		# shellcheck disable=SC2046
		kill -KILL $(cgroup_pids) 2>/dev/null || true
		sleep 0.1
	done
	if [ -f "$dir/cgroups" ]; then
		# systemd mirrors its tree into the v1 controllers it uses: remove it everywhere.
		rel=$(head -n1 "$dir/cgroups" | sed "s#^$CG/systemd##; s#^$CG##")
		for top in $(cat "$dir/cgroups") $CG/*"$rel"; do
			[ -d "$top" ] && find "$top" -depth -type d -exec rmdir {} + 2>/dev/null || true
		done
	fi
	rm -rf "$run" "$dir/pid" "$dir/cgroups"
}

case $cmd in
start) start ;;
env) print_env ;;
stop) stop ;;
status) manager_pid >/dev/null ;;
*) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
