#!/usr/bin/env bash
# The modelslot demo on a built-in default setup: a scratch device in a temp
# directory, the test models from testdata/models, and the story of one update,
# its repetition and a rollback, told step by step.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/modelslot-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

CGO_ENABLED=0 go build -o "$work/modelslot" ./cmd/modelslot
mkdir -p "$work/srv"
cat >"$work/modelslot.toml" <<TOML
device_id  = "demo-device"
state_root = "$work/state"

[[model]]
name = "demo"
link = "$work/srv/demo"   # what the inference server would read
TOML
export MODELSLOT_CONFIG="$work/modelslot.toml"
ms() { echo "\$ modelslot $*"; "$work/modelslot" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
serving() { echo "   the link now serves: $(readlink "$work/srv/demo")  (version $(grep -o '"version": *"[^"]*"' "$work/srv/demo/.modelslot/manifest.json" | head -1 | cut -d'"' -f4))"; }

step "1. Install v1 on a fresh device: copied into slot a, verified, link swapped"
ms install --insecure --version v1 testdata/models/v1
serving

step "2. Update to v2: written into the inactive slot b, verified, one rename(2) of the link"
ms install --insecure --version v2 testdata/models/v2
serving

step "3. The same update again: nothing changes"
ms install --insecure --version v2 testdata/models/v2

step "4. Verify the active slot against its manifest"
ms verify

step "5. Roll back to v1 (v2 is marked bad so a second rollback does not swing back)"
ms rollback
serving
ms rollback

step "6. Status"
ms status
