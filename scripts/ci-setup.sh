#!/usr/bin/env bash
# Installs the Debian packages the test suite uses. Idempotent; needs root.
# systemd: a private user manager for the unit tests (no systemd as PID 1 here).
# mosquitto: a real MQTT broker for the reporting tests (started by the tests).
# xfsprogs: a loop-mounted XFS to test reflinked chunk reuse; openssl: key interop.
# postgresql: the fleet controller's tests make a throwaway cluster (internal/pgtest).
# prometheus: promtool checks that the fleet alert rules fire on the controller's metrics.
# nginx: a real static server for format-2 repositories (Range requests) and the fleet
# scale test's repository (internal/nginxtest).
# man-db: the man pages render without warnings; zsh, fish: the completions;
# qemu-user: the arm64 and armv7 binaries of make dist run (make deb-check);
# python3: the tests of integrations/python; python3-torch (Debian's 1.13, ~47 MB + deps):
# the PyTorch example server and its TorchScript models (testdata/torch).
# chromium: the fleet dashboard's test drives a real headless browser (chromedp).
# nginx, casync, zsync: bench/install's delta test serves the repository and the
# baselines from a real nginx and runs casync and zsync against it.
set -euo pipefail
need=()
for pkg in systemd util-linux make git mosquitto mosquitto-clients dbus-user-session xfsprogs openssl e2fsprogs man-db zsh fish qemu-user python3 python3-torch postgresql prometheus chromium nginx casync zsync; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}"
fi
