#!/usr/bin/env bash
# make deb-check (part of make test): the packages make dist built, checked as
# a user gets them. The amd64 .debs (modelslot, and modelslot-fleet, which
# depends on it) are installed by dpkg into a fresh root (an empty dpkg
# database, no chroot needed: the packages have no maintainer scripts), then
# their files, the conffile, the binaries (modelslot links no SQL engine, and
# runs modelslot-fleet for the fleet commands), the man pages, the units
# (systemd-analyze verify and security against that root), the preset and the
# completion are checked, and they are removed and purged. modelslot-fleet
# alone is refused for its dependency. The arm64 and armhf packages' binaries
# run --version under qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(make -s print-version | cut -d' ' -f1)
debversion=$(printf '%s' "$version" | tr -- - +)
dist=$PWD/dist
fail() { echo "deb-check: $*" >&2; exit 1; }
step() { echo "deb-check: $*"; }
start=$(date +%s%N)

root=$(mktemp -d /tmp/modelslot-deb-check.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg=(dpkg --root="$root" --force-not-root --force-script-chrootless)

step "install modelslot_${debversion}_amd64.deb into $root"
"${dpkg[@]}" -i "$dist/modelslot_${debversion}_amd64.deb" >/dev/null
status=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${db:Status-Abbrev} ${Version} ${Architecture}' modelslot)
[ "$status" = "ii  $debversion amd64" ] || fail "dpkg says '$status', want 'ii  $debversion amd64'"

step "files"
for f in /usr/bin/modelslot \
	/usr/lib/systemd/system/modelslot-agent.service /usr/lib/systemd/system/modelslot-rollback@.service \
	/usr/lib/systemd/system/modelslot-recover.service \
	/usr/lib/systemd/system-preset/90-modelslot.preset /etc/modelslot/modelslot.toml \
	/usr/share/man/man1/modelslot.1.gz /usr/share/man/man5/modelslot.toml.5.gz \
	/usr/share/doc/modelslot/copyright /usr/share/doc/modelslot/README.md /usr/share/doc/modelslot/config.md \
	/usr/share/doc/modelslot/health.md /usr/share/doc/modelslot/architecture.md \
	/usr/share/doc/modelslot/examples/python/modelslot_serve.py /usr/share/doc/modelslot/examples/python/torch_server.py \
	/usr/share/doc/modelslot/integrations.md \
	/usr/share/bash-completion/completions/modelslot /usr/share/zsh/vendor-completions/_modelslot \
	/usr/share/fish/vendor_completions.d/modelslot.fish; do
	[ -f "$root$f" ] || fail "$f is not installed"
	"${dpkg[@]}" -S "$f" >/dev/null || fail "dpkg does not list $f as the package's"
done
[ "$(stat -c '%a %U:%G' "$root/usr/bin/modelslot")" = "755 root:root" ] || fail "/usr/bin/modelslot: $(stat -c '%a %U:%G' "$root/usr/bin/modelslot")"
grep -q '^License: github.com/godbus/dbus/v5$' "$root/usr/share/doc/modelslot/copyright" || fail "copyright lacks the linked modules"
[ ! -e "$root/usr/bin/modelslot-demo" ] || fail "modelslot-demo is not part of this package"

step "install modelslot-fleet_${debversion}_amd64.deb"
fleetdeb=$dist/modelslot-fleet_${debversion}_amd64.deb
[ "$(dpkg-deb -f "$fleetdeb" Depends)" = "modelslot (= $debversion)" ] || fail "modelslot-fleet Depends: $(dpkg-deb -f "$fleetdeb" Depends)"
alone=$(mktemp -d /tmp/modelslot-deb-check-alone.XXXXXX)
mkdir -p "$alone/var/lib/dpkg/info" "$alone/var/lib/dpkg/updates" "$alone/var/lib/dpkg/triggers"
touch "$alone/var/lib/dpkg/status" "$alone/var/lib/dpkg/available"
if dpkg --root="$alone" --force-not-root --force-script-chrootless -i "$fleetdeb" >/dev/null 2>&1; then
	rm -rf "$alone"
	fail "modelslot-fleet installed without modelslot"
fi
rm -rf "$alone"
"${dpkg[@]}" -i "$fleetdeb" >/dev/null
status=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${db:Status-Abbrev} ${Version} ${Architecture}' modelslot-fleet)
[ "$status" = "ii  $debversion amd64" ] || fail "dpkg says '$status' of modelslot-fleet, want 'ii  $debversion amd64'"
for f in /usr/bin/modelslot-fleet /usr/lib/systemd/system/modelslot-fleet.service /usr/share/man/man1/modelslot-fleet.1.gz \
	/usr/share/doc/modelslot-fleet/copyright /usr/share/doc/modelslot-fleet/fleet.md /usr/share/doc/modelslot-fleet/scale.md \
	/usr/share/doc/modelslot-fleet/examples/modelslot-fleet-alerts.yml \
	/usr/share/bash-completion/completions/modelslot-fleet /usr/share/zsh/vendor-completions/_modelslot-fleet \
	/usr/share/fish/vendor_completions.d/modelslot-fleet.fish; do
	[ -f "$root$f" ] || fail "$f is not installed"
	[ "$("${dpkg[@]}" -S "$f" 2>/dev/null | cut -d: -f1)" = modelslot-fleet ] || fail "dpkg does not list $f as modelslot-fleet's"
done
[ ! -e "$root/usr/share/doc/modelslot/fleet.md" ] || fail "fleet.md is modelslot-fleet's, not modelslot's"
# The device's binary links neither the SQL engine nor the PostgreSQL driver; the controller's does.
linked=$(go version -m "$root/usr/bin/modelslot") || fail "go version -m /usr/bin/modelslot"
! grep -qE 'modernc.org/sqlite|github.com/jackc/pgx|github.com/chromedp' <<<"$linked" || fail "/usr/bin/modelslot links the controller's dependencies"
linked=$(go version -m "$root/usr/bin/modelslot-fleet") || fail "go version -m /usr/bin/modelslot-fleet"
grep -q 'modernc.org/sqlite' <<<"$linked" || fail "/usr/bin/modelslot-fleet does not link modernc.org/sqlite"
grep -q '^License: modernc.org/sqlite$' "$root/usr/share/doc/modelslot-fleet/copyright" || fail "modelslot-fleet's copyright lacks the SQL engine"
! grep -q '^License: modernc.org/sqlite$' "$root/usr/share/doc/modelslot/copyright" || fail "modelslot's copyright names a module it does not link"
out=$("$root/usr/bin/modelslot-fleet" --version)
[[ $out == "modelslot-fleet $version (commit "*", go"*" linux/amd64)" ]] || fail "modelslot-fleet --version: $out"
# modelslot runs the modelslot-fleet installed next to it, with the same arguments.
out=$(PATH=/nonexistent "$root/usr/bin/modelslot" fleet serve --help) || fail "modelslot fleet serve --help: exit $?"
[[ $out == "usage: modelslot-fleet fleet serve"* ]] || fail "modelslot fleet serve --help: $out"

step "conffile"
conffiles=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Conffiles}' modelslot)
want="/etc/modelslot/modelslot.toml $(md5sum <"$root/etc/modelslot/modelslot.toml" | cut -d' ' -f1)"
[ "$(echo $conffiles)" = "$want" ] || fail "conffiles: '$conffiles', want '$want'"

step "modelslot --version, and the installed config"
out=$("$root/usr/bin/modelslot" --version)
[[ $out == "modelslot $version (commit "*", go"*" linux/amd64)" ]] || fail "--version: $out"
{ echo "state_root = \"$root/var/lib/modelslot\""; cat "$root/etc/modelslot/modelslot.toml"; } >"$root/check.toml"
# Output captured first: grep -q ends the pipe at the first match, and a
# writer that is not done then dies of SIGPIPE (pipefail).
out=$("$root/usr/bin/modelslot" --config "$root/check.toml" status) || fail "status with the shipped config: exit $?"
grep -q '^model example ' <<<"$out" || fail "status with the shipped config: $out"

step "man pages render without warnings"
for page in man1/modelslot.1.gz man1/modelslot-fleet.1.gz man5/modelslot.toml.5.gz; do
	warn=$(MANWIDTH=80 man --warnings -l "$root/usr/share/man/$page" 2>&1 >/dev/null) || fail "man $page failed"
	[ -z "$warn" ] || fail "man $page: $warn"
done
page=$(MANWIDTH=80 man -l "$root/usr/share/man/man1/modelslot.1.gz" 2>/dev/null)
grep -q 'modelslot install \[--allow-downgrade\] SOURCE' <<<"$page" ||
	fail "the man page lacks the install synopsis"
page=$(MANWIDTH=80 man -l "$root/usr/share/man/man1/modelslot-fleet.1.gz" 2>/dev/null)
grep -q 'modelslot-fleet fleet serve' <<<"$page" || fail "modelslot-fleet(1) lacks fleet serve"

step "units: systemd-analyze verify and security against the root"
# The root gets the target units a system with systemd has (sysinit.target,
# network-online.target…), so verify resolves the dependencies as it would there.
cp -n /usr/lib/systemd/system/*.target "$root/usr/lib/systemd/system/"
units=(/usr/lib/systemd/system/modelslot-agent.service /usr/lib/systemd/system/modelslot-rollback@demo-inference.service.service
	/usr/lib/systemd/system/modelslot-recover.service /usr/lib/systemd/system/modelslot-fleet.service)
out=$(systemd-analyze verify --root="$root" --man=no "${units[@]}" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
out=$(systemd-analyze security --offline=true --root="$root" --threshold=45 --no-pager \
	modelslot-agent.service modelslot-rollback@demo-inference.service.service modelslot-recover.service modelslot-fleet.service 2>&1) || fail "security above 4.5: $(echo "$out" | grep Overall)"
echo "$out" | grep 'Overall' | sed 's/^/  /'

step "preset enables the agent"
systemctl --root="$root" preset modelslot-agent.service >/dev/null 2>&1
[ "$(systemctl --root="$root" is-enabled modelslot-agent.service)" = enabled ] || fail "the preset did not enable the agent"
systemctl --root="$root" preset modelslot-recover.service >/dev/null 2>&1
[ "$(systemctl --root="$root" is-enabled modelslot-recover.service)" = enabled ] || fail "the preset did not enable the recover unit"

step "bash completion"
got=$(bash -c 'source "$1"; COMP_WORDS=(modelslot ins); COMP_CWORD=1; _modelslot; echo "${COMPREPLY[*]}"' _ \
	"$root/usr/share/bash-completion/completions/modelslot")
[ "$got" = install ] || fail "bash completion of 'modelslot ins': '$got'"
got=$(bash -c 'source "$1"; COMP_WORDS=(modelslot-fleet ro); COMP_CWORD=1; _modelslot_fleet; echo "${COMPREPLY[*]}"' _ \
	"$root/usr/share/bash-completion/completions/modelslot-fleet")
[ "$got" = rollout ] || fail "bash completion of 'modelslot-fleet ro': '$got'"

step "remove keeps the changed conffile, purge deletes it"
"${dpkg[@]}" -r modelslot-fleet >/dev/null 2>&1 || fail "remove modelslot-fleet"
[ ! -e "$root/usr/bin/modelslot-fleet" ] || fail "remove left /usr/bin/modelslot-fleet"
status=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${db:Status-Abbrev}' modelslot-fleet 2>/dev/null || true)
[ -z "${status// /}" ] || [ "${status:1:1}" = n ] || fail "after remove, dpkg says '$status' of modelslot-fleet (it has no conffiles)"
echo '# changed here' >>"$root/etc/modelslot/modelslot.toml"
# (dpkg warns that the directories holding the copied targets stay.)
"${dpkg[@]}" -r modelslot 2>&1 | grep -v 'not empty so not removed' >/dev/null || true
[ -f "$root/etc/modelslot/modelslot.toml" ] && [ ! -e "$root/usr/bin/modelslot" ] || fail "remove"
"${dpkg[@]}" --purge modelslot >/dev/null
[ ! -e "$root/etc/modelslot/modelslot.toml" ] || fail "purge left the conffile"

step "arm64 and armhf packages run under qemu-user"
for a in arm64:aarch64:arm64 armhf:arm:arm; do
	debarch=${a%%:*} rest=${a#*:} qemu=qemu-${rest%%:*} goarch=${a##*:}
	deb=$dist/modelslot_${debversion}_$debarch.deb
	[ "$(dpkg-deb -f "$deb" Architecture)" = "$debarch" ] || fail "$deb: Architecture $(dpkg-deb -f "$deb" Architecture)"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/modelslot >"$root/modelslot.$debarch"
	fdeb=$dist/modelslot-fleet_${debversion}_$debarch.deb
	[ "$(dpkg-deb -f "$fdeb" Architecture)" = "$debarch" ] || fail "$fdeb: Architecture $(dpkg-deb -f "$fdeb" Architecture)"
	dpkg-deb --fsys-tarfile "$fdeb" | tar -xO ./usr/bin/modelslot-fleet >"$root/modelslot-fleet.$debarch"
	chmod +x "$root/modelslot.$debarch" "$root/modelslot-fleet.$debarch"
	for b in modelslot modelslot-fleet; do
		out=$("$qemu" "$root/$b.$debarch" --version) || fail "$qemu: $out"
		[[ $out == "$b $version (commit "*" linux/$goarch)" ]] || fail "$debarch $b --version: $out"
		echo "  $debarch: $out"
	done
done
echo "deb-check: all checks passed in $((($(date +%s%N) - start) / 1000000)) ms (after make dist)"
