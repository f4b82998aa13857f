#!/usr/bin/env bash
# Installs modelslot and modelslot-fleet into a tree: what `make install` does,
# and how `make dist` stages each .deb (one package each: a device installs
# only modelslot). Paths follow the FHS and systemd's unit search paths.
#
#   packaging/install.sh BINDIR DOCGENDIR [PACKAGE...]
#
# BINDIR holds the modelslot and modelslot-fleet to install (any
# architecture); DOCGENDIR holds the same two built to run here, which write
# the man pages and the completions from their command tables. PACKAGE is
# modelslot or modelslot-fleet (default: both). The environment says where:
#   DESTDIR     staging root (default: none, i.e. /)
#   PREFIX      /usr/local by default; /usr for a distribution package
#   SYSCONFDIR  /etc by default
#   ZSHDIR      zsh completions (default $PREFIX/share/zsh/site-functions;
#               Debian's zsh reads /usr/share/zsh/vendor-completions)
#   CONFIG_REPLACE=1  overwrite an existing modelslot.toml (a package does; a
#               make install onto a live system keeps the one it finds)
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:?usage: packaging/install.sh BINDIR DOCGENDIR [PACKAGE...]}
gendir=${2:?usage: packaging/install.sh BINDIR DOCGENDIR [PACKAGE...]}
shift 2
packages=("$@")
[ $# -gt 0 ] || packages=(modelslot modelslot-fleet)
dest=${DESTDIR:-}
prefix=${PREFIX:-/usr/local}
etc=${SYSCONFDIR:-/etc}
zshdir=${ZSHDIR:-$prefix/share/zsh/site-functions}

d() { install -d -m 0755 "$dest$1"; }
f() { install -m "$1" "$2" "$dest$3"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# unit NAME: the unit, naming the binary and the documentation where they
# were installed.
unit() {
	d "$prefix/lib/systemd/system"
	sed -e "s#/usr/bin/modelslot\([ -]\)#$prefix/bin/modelslot\1#" \
		-e "s#/etc/modelslot/#$etc/modelslot/#g" \
		-e "s#file:///usr/share/doc/#file://$prefix/share/doc/#" \
		"packaging/systemd/$1" >"$dest$prefix/lib/systemd/system/$1"
	chmod 0644 "$dest$prefix/lib/systemd/system/$1"
}

# manpage_and_completions NAME: NAME(1) and the bash, zsh and fish
# completions of the binary NAME, from its command table (gzip -n: no
# timestamp, so the package is reproducible).
manpage_and_completions() {
	local gen=$gendir/$1
	d "$prefix/share/man/man1"
	"$gen" gen-man "$tmp"
	gzip -9n "$tmp/$1.1"
	f 0644 "$tmp/$1.1.gz" "$prefix/share/man/man1/$1.1.gz"
	d "$prefix/share/bash-completion/completions"
	d "$zshdir"
	d "$prefix/share/fish/vendor_completions.d"
	"$gen" gen-completion bash >"$tmp/bash"
	"$gen" gen-completion zsh >"$tmp/zsh"
	"$gen" gen-completion fish >"$tmp/fish"
	f 0644 "$tmp/bash" "$prefix/share/bash-completion/completions/$1"
	f 0644 "$tmp/zsh" "$zshdir/_$1"
	f 0644 "$tmp/fish" "$prefix/share/fish/vendor_completions.d/$1.fish"
}

# The fleet controller's documentation, in modelslot-fleet's directory.
fleet_docs=(docs/fleet.md docs/scale.md)

install_modelslot() {
	local doc=$prefix/share/doc/modelslot
	d "$prefix/bin"
	f 0755 "$bindir/modelslot" "$prefix/bin/modelslot"

	# Units and the preset.
	for u in modelslot-agent.service modelslot-rollback@.service modelslot-recover.service; do
		unit "$u"
	done
	d "$prefix/lib/systemd/system-preset"
	f 0644 packaging/systemd/90-modelslot.preset "$prefix/lib/systemd/system-preset/90-modelslot.preset"

	# The example config: a conffile in the package; kept if present otherwise.
	d "$etc/modelslot"
	if [ "${CONFIG_REPLACE:-}" = 1 ] || [ ! -e "$dest$etc/modelslot/modelslot.toml" ]; then
		f 0644 packaging/modelslot.toml "$etc/modelslot/modelslot.toml"
	fi

	# Man pages and completions.
	manpage_and_completions modelslot
	d "$prefix/share/man/man5"
	cp packaging/man/modelslot.toml.5 "$tmp/"
	gzip -9n "$tmp/modelslot.toml.5"
	f 0644 "$tmp/modelslot.toml.5.gz" "$prefix/share/man/man5/modelslot.toml.5.gz"

	# Documentation: the units and error hints point here. The demo's units and
	# the alert rules are examples to copy, not installed services.
	d "$doc/examples"
	for m in README.md CHANGELOG.md LICENSE docs/*.md; do
		case " ${fleet_docs[*]} " in *" $m "*) continue ;; esac
		f 0644 "$m" "$doc/$(basename "$m")"
	done
	f 0644 packaging/systemd/README.md "$doc/examples/systemd-units.md"
	for e in packaging/systemd/demo-inference.service packaging/systemd/demo-inference.socket packaging/prometheus/modelslot-alerts.yml; do
		f 0644 "$e" "$doc/examples/$(basename "$e")"
	done
	# A Python inference server: the stdlib module, an example server and its units.
	d "$doc/examples/python"
	for e in integrations/python/modelslot_serve.py integrations/python/example_server.py integrations/python/torch_server.py integrations/python/README.md \
		integrations/python/example-inference.service integrations/python/example-inference.socket; do
		f 0644 "$e" "$doc/examples/python/$(basename "$e")"
	done
}

# modelslot-fleet: the controller, its clients and the simulator, its unit
# (not enabled by a preset: a controller host enables it on purpose), its
# documentation and the fleet's alert rules.
install_fleet() {
	local doc=$prefix/share/doc/modelslot-fleet
	d "$prefix/bin"
	f 0755 "$bindir/modelslot-fleet" "$prefix/bin/modelslot-fleet"
	unit modelslot-fleet.service
	manpage_and_completions modelslot-fleet
	d "$doc/examples"
	for m in LICENSE "${fleet_docs[@]}"; do
		f 0644 "$m" "$doc/$(basename "$m")"
	done
	f 0644 packaging/prometheus/modelslot-fleet-alerts.yml "$doc/examples/modelslot-fleet-alerts.yml"
}

for p in "${packages[@]}"; do
	case $p in
	modelslot) install_modelslot ;;
	modelslot-fleet) install_fleet ;;
	*) echo "install.sh: unknown package $p (modelslot, modelslot-fleet)" >&2; exit 2 ;;
	esac
done
