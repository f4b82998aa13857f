#!/usr/bin/env bash
# Installs modelslot into a tree: what `make install` does, and how `make dist`
# stages each .deb. Paths follow the FHS and systemd's unit search paths.
#
#   packaging/install.sh BINARY DOCGEN
#
# BINARY is the modelslot to install (any architecture); DOCGEN is a modelslot
# that runs here, which writes the man page and the completions from its
# command table. The environment says where:
#   DESTDIR     staging root (default: none, i.e. /)
#   PREFIX      /usr/local by default; /usr for a distribution package
#   SYSCONFDIR  /etc by default
#   ZSHDIR      zsh completions (default $PREFIX/share/zsh/site-functions;
#               Debian's zsh reads /usr/share/zsh/vendor-completions)
#   CONFIG_REPLACE=1  overwrite an existing modelslot.toml (a package does; a
#               make install onto a live system keeps the one it finds)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: packaging/install.sh BINARY DOCGEN}
gen=${2:?usage: packaging/install.sh BINARY DOCGEN}
dest=${DESTDIR:-}
prefix=${PREFIX:-/usr/local}
etc=${SYSCONFDIR:-/etc}
zshdir=${ZSHDIR:-$prefix/share/zsh/site-functions}
doc=$prefix/share/doc/modelslot

d() { install -d -m 0755 "$dest$1"; }
f() { install -m "$1" "$2" "$dest$3"; }

d "$prefix/bin"
f 0755 "$bin" "$prefix/bin/modelslot"

# Units and the preset, naming the binary where it was installed.
d "$prefix/lib/systemd/system"
d "$prefix/lib/systemd/system-preset"
for u in modelslot-agent.service modelslot-rollback@.service modelslot-recover.service; do
	sed -e "s#/usr/bin/modelslot #$prefix/bin/modelslot #" \
		-e "s#/etc/modelslot/#$etc/modelslot/#g" \
		-e "s#file:///usr/share/doc/modelslot/#file://$doc/#" \
		"packaging/systemd/$u" >"$dest$prefix/lib/systemd/system/$u"
	chmod 0644 "$dest$prefix/lib/systemd/system/$u"
done
f 0644 packaging/systemd/90-modelslot.preset "$prefix/lib/systemd/system-preset/90-modelslot.preset"

# The example config: a conffile in the package; kept if present otherwise.
d "$etc/modelslot"
if [ "${CONFIG_REPLACE:-}" = 1 ] || [ ! -e "$dest$etc/modelslot/modelslot.toml" ]; then
	f 0644 packaging/modelslot.toml "$etc/modelslot/modelslot.toml"
fi

# Man pages (gzip -n: no timestamp, so the package is reproducible).
d "$prefix/share/man/man1"
d "$prefix/share/man/man5"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$gen" gen-man "$tmp"
cp packaging/man/modelslot.toml.5 "$tmp/"
gzip -9n "$tmp/modelslot.1" "$tmp/modelslot.toml.5"
f 0644 "$tmp/modelslot.1.gz" "$prefix/share/man/man1/modelslot.1.gz"
f 0644 "$tmp/modelslot.toml.5.gz" "$prefix/share/man/man5/modelslot.toml.5.gz"

# Completions, in each shell's directory for packaged completions.
d "$prefix/share/bash-completion/completions"
d "$zshdir"
d "$prefix/share/fish/vendor_completions.d"
"$gen" gen-completion bash >"$tmp/bash"
"$gen" gen-completion zsh >"$tmp/zsh"
"$gen" gen-completion fish >"$tmp/fish"
f 0644 "$tmp/bash" "$prefix/share/bash-completion/completions/modelslot"
f 0644 "$tmp/zsh" "$zshdir/_modelslot"
f 0644 "$tmp/fish" "$prefix/share/fish/vendor_completions.d/modelslot.fish"

# Documentation: the units and error hints point here. The demo's units and
# the alert rules are examples to copy, not installed services.
d "$doc/examples"
for m in README.md CHANGELOG.md LICENSE docs/*.md; do
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
