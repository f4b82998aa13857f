#!/usr/bin/env bash
# make dist: static modelslot and modelslot-fleet binaries for the device
# architectures, two .debs for each (modelslot, and modelslot-fleet, which
# depends on it), and SHA256SUMS, in dist/. Each .deb is built with dpkg-deb
# from a tree staged by packaging/install.sh (no tool beyond dpkg).
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
	CGO_ENABLED=0 GOOS=linux GOARCH=$1 GOARM=$2 go build -trimpath -ldflags "$LDFLAGS" -o "$3/" ./cmd/modelslot ./cmd/modelslot-fleet
}

# deb PACKAGE DEBARCH BINDIR CONTROL: stage PACKAGE and build its .deb.
deb() {
	local pkg=$1 debarch=$2 bindir=$3 control=$4
	local root=$out/deb/$debarch/$pkg
	rm -rf "$root"
	mkdir -p "$root/DEBIAN"
	DESTDIR=$root PREFIX=/usr SYSCONFDIR=/etc ZSHDIR=/usr/share/zsh/vendor-completions CONFIG_REPLACE=1 \
		packaging/install.sh "$bindir" "$out/host" "$pkg"
	packaging/copyright.sh "$bindir/$pkg" >"$root/usr/share/doc/$pkg/copyright"
	if [ -d "$root/etc" ]; then
		(cd "$root" && find etc -type f -printf '/%p\n' | sort) >"$root/DEBIAN/conffiles"
	fi
	(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
	local size
	size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
	sed -e "s/@VERSION@/$debversion/g" -e "s/@ARCH@/$debarch/" -e "s/@SIZE@/$size/" \
		-e "s/@MAINTAINER@/$maintainer/" "$control" >"$root/DEBIAN/control"
	find "$root" -type d -exec chmod 0755 {} +
	local file=$out/${pkg}_${debversion}_$debarch.deb
	dpkg-deb --root-owner-group -Zxz --build "$root" "$file" >/dev/null
	debs+=("$file")
}

mkdir -p "$out"
# The man pages and completions come from binaries that run here.
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

	deb modelslot "$debarch" "$out/linux-$arch" packaging/deb/control
	deb modelslot-fleet "$debarch" "$out/linux-$arch" packaging/deb/control-fleet
done

(cd "$out" && sha256sum $(for a in $arches; do echo "linux-$a/modelslot linux-$a/modelslot-fleet"; done) "${debs[@]#"$out/"}") >"$out/SHA256SUMS"
echo "dist: $out/SHA256SUMS"
cat "$out/SHA256SUMS"
