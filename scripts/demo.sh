#!/usr/bin/env bash
# make demo: modelslot's main job, end to end, on a fresh machine.
#
# A private systemd user manager (scripts/user-manager.sh; no systemd as PID 1
# needed) runs the demo inference server as demo-inference.service with the
# unit files of packaging/systemd/. modelslot installs v1, updates to v2 (it
# proves itself and is committed), then updates to a version whose server
# hangs: systemd's watchdog kills it, modelslot reverts to v2 by itself. Then
# status, and the story in plain words.
#
# Needs root (a mount namespace and a cgroup for the manager) and Go. Everything
# it starts (manager, servers) and every file it writes live under one temp
# directory and are removed on exit, also on Ctrl-C. DEMO_DEBUG=1 shows
# modelslot's log (with MODELSLOT_LOG_LEVEL=info, every step).
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$PWD

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root for its private systemd manager (a mount namespace and a cgroup): run sudo make demo"
[ -x /lib/systemd/systemd ] || die "needs systemd installed (apt-get install systemd); it does not need to run as PID 1"
command -v go >/dev/null || die "needs Go to build modelslot"

work=$(mktemp -d /tmp/modelslot-demo.XXXXXX)
um=$work/um
repo_pid=
cleanup() {
	trap - EXIT INT TERM
	[ -n "$repo_pid" ] && kill "$repo_pid" 2>/dev/null
	scripts/user-manager.sh stop "$um" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted; cleaning up"; exit 130' INT TERM

t0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

bold "Building modelslot and the demo inference server"
CGO_ENABLED=0 go build -o "$work/bin/" ./cmd/modelslot ./cmd/modelslot-demo
ms_bin=$work/bin/modelslot

# A loopback port nobody listens on.
port=
for _ in $(seq 50); do
	p=$((20000 + RANDOM % 40000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || die "found no free loopback port"

bold "Starting a private systemd user manager"
eval "$(scripts/user-manager.sh start "$um")"
say "manager up; units go to $MODELSLOT_UNIT_DIR"

mkdir -p "$work/srv" "$work/state"
link=$work/srv/demo
cat >"$work/modelslot.toml" <<TOML
device_id  = "demo-device"
state_root = "$work/state"

[systemd]
scope = "user"
bus   = "$MODELSLOT_SYSTEMD_BUS"

[[model]]
name       = "demo"
link       = "$link"
unit       = "demo-inference.service"
activation = "restart"
  [model.health]
  start_timeout  = "20s"
  confirm_window = "3s"
  probe_url      = "http://127.0.0.1:$port/v1/infer"
  max_latency    = "500ms"
  max_memory     = "150MiB"
  max_attempts   = 3
TOML
export MODELSLOT_CONFIG=$work/modelslot.toml

# The shipped unit files, with this demo's paths. The drop-ins relax what a
# private manager in a container cannot set up (ProtectHome=,
# ProtectKernelTunables=, ProtectKernelLogs= fail with 226/NAMESPACE there) and
# let the units see the demo's directories under /tmp.
subst() {
	sed -e "s#/usr/local/bin/modelslot-demo#$work/bin/modelslot-demo#" \
		-e "s#/usr/bin/modelslot #$ms_bin #" \
		-e "s#/var/lib/modelslot/demo/current#$link#" \
		-e "s#/etc/modelslot/modelslot.toml#$MODELSLOT_CONFIG#" \
		-e "s#127.0.0.1:9000#127.0.0.1:$port#" "$1"
}
for u in demo-inference.service demo-inference.socket modelslot-rollback@.service; do
	subst "packaging/systemd/$u" >"$MODELSLOT_UNIT_DIR/$u"
done
mkdir -p "$MODELSLOT_UNIT_DIR/demo-inference.service.d"
cat >"$MODELSLOT_UNIT_DIR/demo-inference.service.d/demo.conf" <<EOF
[Service]
PrivateTmp=no
ProtectHome=no
ProtectKernelTunables=no
StandardOutput=append:$work/server.log
StandardError=append:$work/server.log
EOF
# The rollback unit writes the demo's state root instead of StateDirectory=
# (a user manager would put that under $HOME), with the same relaxations.
mkdir -p "$MODELSLOT_UNIT_DIR/modelslot-rollback@.service.d"
cat >"$MODELSLOT_UNIT_DIR/modelslot-rollback@.service.d/demo.conf" <<EOF
[Service]
StateDirectory=
ReadWritePaths=$work
PrivateTmp=no
ProtectHome=no
ProtectKernelTunables=no
ProtectKernelLogs=no
EOF
systemctl --user daemon-reload
systemctl --user start demo-inference.socket
say "demo-inference.socket listens on 127.0.0.1:$port (WatchdogSec=2, Restart=on-failure, OnFailure=modelslot-rollback@)"

# A local repository on loopback when this build can publish and install from
# one (and python3 serves it); otherwise, or with DEMO_DIRS=1, plain directory
# installs (install --insecure --label V DIR).
source_of() { echo "--insecure --label $1 testdata/models/$2"; }
help=$("$ms_bin" --help 2>&1)
if [ -z "${DEMO_DIRS:-}" ] && grep -q '^  publish' <<<"$help" && grep -q '^  install.*SOURCE' <<<"$help" && command -v python3 >/dev/null; then
	mkdir -p "$work/keys"
	"$ms_bin" keygen --out "$work/keys/publisher" >/dev/null
	rport=$((port + 1))
	(cd "$work" && mkdir -p repo && exec python3 -m http.server -b 127.0.0.1 -d repo "$rport" >/dev/null 2>&1) &
	repo_pid=$!
	for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break; sleep 0.1; done
	sed -i "s#^unit #trusted_keys = [\"$work/keys/publisher.pub\"]\nunit #" "$MODELSLOT_CONFIG"
	source_of() {
		"$ms_bin" publish --key "$work/keys/publisher.key" --repo "$work/repo" --model demo \
			--version "$1" --channel stable "testdata/models/$2" >/dev/null
		echo "http://127.0.0.1:$rport/demo/channels/stable.json"
	}
	say "repository: signed, chunked, served on http://127.0.0.1:$rport"
fi

# ms runs modelslot, shows the command, and keeps its exit code in $rc.
ms() {
	echo "   \$ modelslot $*"
	set +e
	"$ms_bin" "$@" 2>"$work/last.err" | sed 's/^/     /'
	rc=${PIPESTATUS[0]}
	set -e
	sed -n 's/^modelslot: /     modelslot: /p' "$work/last.err"
	[ -z "${DEMO_DEBUG:-}" ] || cat "$work/last.err"
}
# served asks the running server which version answers.
served() {
	local body
	body=$(exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n' >&3 && timeout 3 cat <&3) || true
	sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$body"
}
update() { # label dir
	local t src
	t=$(date +%s.%N)
	# shellcheck disable=SC2046
	src=$(source_of "$1" "$2")
	ms install $src
	took=$(since "$t")
}

bold "1. Install v1 on a fresh device"
update v1 v1
[ "$rc" = 0 ] || die "installing v1 failed (exit $rc); server log: $(tail -5 "$work/server.log")"
v1_took=$took
say "v1 answers: $(served)   ($v1_took: copied, verified, link swapped, unit started, probe passed, 3 s window held)"

bold "2. Update to v2"
update v2 v2
[ "$rc" = 0 ] || die "updating to v2 failed (exit $rc)"
v2_took=$took
say "v2 answers: $(served)   ($v2_took)"

bold "3. Update to v3-hang: its server stops answering 0.5 s after it starts"
update v3-hang hang
[ "$rc" = 4 ] || die "the hanging version was not rolled back (exit $rc, want 4)"
hang_took=$took
now=$(served)
say "exit 4 (rolled back) after $hang_took; now answering: $now"

bold "4. Status"
ms status

reason=$(sed -n 's/.*"reason": "\([a-z_]*\):.*/\1/p' < <("$ms_bin" status --json) | head -1)
bold "What happened"
cat <<STORY
   v1 went into slot a and v2 into slot b. Each time, modelslot swapped one
   link, restarted demo-inference.service through systemd, sent the model's
   own probe and watched the unit for 3 seconds before keeping it
   (v1 in $v1_took, v2 in $v2_took).

   v3-hang was written over v1 in slot a (the slot not serving) and
   started; half a second later it hung. It stopped feeding systemd's
   watchdog, systemd killed it, and modelslot recorded
   "${reason:-watchdog_timeout}", put the link back to v2, restarted the unit
   and checked that v2 answers its probe again: $hang_took from the update
   command to v2 serving, with no one touching anything.

   The server answers now with version ${now:-?}. Slot a is marked bad with
   that reason, so v3-hang is not tried again by accident; v2 is the good
   version, and the next update goes into slot a.
STORY
bold "Done in $(since "$t0"); cleaning up the manager, the server and $work"
