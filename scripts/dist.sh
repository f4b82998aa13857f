#!/usr/bin/env bash
# make dist: static modelslot binaries for the device architectures, a .deb
# for each, and SHA256SUMS, in dist/. The .deb is built with dpkg-deb from a
# tree staged by packaging/install.sh (no tool beyond dpkg).
#
# Environment (the Makefile sets them): VERSION, COMMIT, LDFLAGS; ARCHES
# (default "amd64 arm64 armv7"); DEB_MAINTAINER.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?}" "${LDFLAGS:?}"
arches=${ARCHES:-amd64 arm64 armv7}
maintainer=${DEB_MAINTAINER:-modelslot maintainers <maintainers@modelslot.invalid>}
# A package's file times are the commit's, so the same commit builds the same .deb.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
# A Debian version may not hold the '-' of a git describe (0.1.0-3-gabc):
# 0.1.0+3+gabc sorts after 0.1.0, as the build does.
debversion=$(printf '%s' "$VERSION" | tr -- - +)
out=dist

build() { # GOARCH GOARM OUTDIR
	CGO_ENABLED=0 GOOS=linux GOARCH=$1 GOARM=$2 go build -trimpath -ldflags "$LDFLAGS" -o "$3/modelslot" ./cmd/modelslot
}

mkdir -p "$out"
# The man page and completions come from a binary that runs here.
build "$(go env GOARCH)" "" "$out/host"

debs=()
for arch in $arches; do
	case $arch in
	amd64) goarch=amd64 goarm= debarch=amd64 ;;
	arm64) goarch=arm64 goarm= debarch=arm64 ;;
	armv7) goarch=arm goarm=7 debarch=armhf ;;
	*) echo "dist: unknown architecture $arch (amd64, arm64, armv7)" >&2; exit 2 ;;
	esac
	echo "dist: linux/$arch"
	build "$goarch" "$goarm" "$out/linux-$arch"

	root=$out/deb/$debarch
	rm -rf "$root"
	mkdir -p "$root/DEBIAN"
	DESTDIR=$root PREFIX=/usr SYSCONFDIR=/etc ZSHDIR=/usr/share/zsh/vendor-completions CONFIG_REPLACE=1 \
		packaging/install.sh "$out/linux-$arch/modelslot" "$out/host/modelslot"
	packaging/copyright.sh "$out/linux-$arch/modelslot" >"$root/usr/share/doc/modelslot/copyright"
	echo /etc/modelslot/modelslot.toml >"$root/DEBIAN/conffiles"
	(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
	size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
	sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$debarch/" -e "s/@SIZE@/$size/" \
		-e "s/@MAINTAINER@/$maintainer/" packaging/deb/control >"$root/DEBIAN/control"
	find "$root" -type d -exec chmod 0755 {} +
	deb=$out/modelslot_${debversion}_$debarch.deb
	dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
	debs+=("$deb")
done

(cd "$out" && sha256sum $(for a in $arches; do echo "linux-$a/modelslot"; done) "${debs[@]#"$out/"}") >"$out/SHA256SUMS"
echo "dist: $out/SHA256SUMS"
cat "$out/SHA256SUMS"
