#!/usr/bin/env bash
# Prints the Debian copyright file (DEP-5) of a modelslot binary (modelslot,
# modelslot-fleet): modelslot's
# own license and, for every Go module linked into BINARY (go version -m), the
# license text from the module cache. Run where the build ran.
#
#   packaging/copyright.sh BINARY > copyright
set -euo pipefail
bin=${1:?usage: packaging/copyright.sh BINARY}
modcache=$(go env GOMODCACHE)
name=$(basename "$bin")

cat <<HEAD
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: modelslot
Upstream-Contact: https://github.com/modelslot/modelslot/issues
Source: https://github.com/modelslot/modelslot

Files: *
Copyright: the modelslot authors
License: Apache-2.0
 On Debian systems the full text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0 (and in LICENSE next to this file).
Comment: /usr/bin/$name is a static Go binary. The Go modules linked into
 it are listed below, each with the license text it ships.
HEAD

printf '\nFiles: go-modules/std\nCopyright: the Go authors (%s)\nLicense: go-standard-library\n' "$(go env GOVERSION)"
sed -e 's/^[[:space:]]*$/./' -e 's/^/ /' "$(go env GOROOT)/LICENSE"

go version -m "$bin" | awk '$1 == "dep" { print $2, $3 }' | while read -r path version; do
	dir=$modcache/$(printf '%s' "$path" | sed 's/[A-Z]/!\L&/g')@$version
	license=$(find "$dir" -maxdepth 1 -type f \( -iname 'LICENSE*' -o -iname 'COPYING*' -o -iname 'LICENCE*' \) | sort | head -1)
	[ -n "$license" ] || { echo "copyright.sh: no license file in $dir ($path $version)" >&2; exit 1; }
	printf '\nFiles: go-modules/%s\nCopyright: the authors of %s %s\nLicense: %s\n' "$path" "$path" "$version" "$path"
	# DEP-5 continuation lines: one space in front, an empty line is " .".
	sed -e 's/^[[:space:]]*$/./' -e 's/^/ /' "$license"
done
