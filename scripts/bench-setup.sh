#!/usr/bin/env bash
# Installs the Debian packages the benchmarks compare against (baselines) and
# need (broker, web server). Idempotent; needs root.
set -euo pipefail
need=()
for pkg in curl zstd zsync casync nginx-light mosquitto mosquitto-clients; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}"
fi
