# modelslot — see README.md. Every target works on a fresh Debian 12 machine
# with Go; `make test` is exactly what CI runs (.ci/run).

GO          ?= go
BIN         := bin
# The version stamped into the binaries: the release tag (vX.Y.Z; a build after
# it reads X.Y.Z-N-gHASH), else the VERSION file. Tags are made by the release
# process, never by hand in a working tree. The commit goes next to it; both
# are internal/cli's, which modelslot and modelslot-fleet share.
VERSION     ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//' | grep . || cat VERSION)
COMMIT      ?= $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null || c=$$c-dirty; echo $$c; } || echo unknown)
CLIPKG      := github.com/modelslot/modelslot/internal/cli
LDFLAGS     := -s -w -X $(CLIPKG).version=$(VERSION) -X $(CLIPKG).commit=$(COMMIT)
STATICCHECK := $(BIN)/staticcheck
# Fuzz targets, each run briefly by `make test` (package:target).
FUZZ_TARGETS ?= ./verify:FuzzCheckPath ./verify:FuzzParseManifest ./verify:FuzzOpenManifest \
	./internal/safetensors:FuzzParse ./loader:FuzzMatchJSON ./internal/bundle:FuzzReader \
	./internal/rollout:FuzzOpen ./slots:FuzzParseState ./internal/agent:FuzzParseCommand ./internal/chunkindex:FuzzIndexAndLocations \
	./internal/publish:FuzzGGUFCuts
# How long the fuzzer may spend shrinking each new interesting input. Go's
# default, 60s, is spent whole on a bundle-sized input (its byte-subset pass is
# quadratic in the length): FuzzReader's 10 s then showed "0 execs/s" after a
# few hundred executions and fuzzed nothing.
FUZZ_MINIMIZE ?= 1s

.PHONY: all build print-version setup test unit lint fuzz bench fleet-bench demo cross dist install deb-check powercut powercut-ci clean

all: build

# VERSION and COMMIT as the binaries get them (a test checks the version is semantic).
print-version:
	@echo $(VERSION) $(COMMIT)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The Debian packages the tests use (a real systemd, mosquitto); needs root.
setup:
	scripts/ci-setup.sh

# The whole suite: lint, unit and integration tests (real processes, real
# mounts, a real systemd manager and broker; run as root), a short pass of
# every fuzz target, the release packages installed and checked, power cuts.
test: setup lint unit fuzz deb-check powercut-ci

unit:
	$(GO) test -count=1 -timeout 15m ./...

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go mod tidy would change go.mod/go.sum: run it"; exit 1; }

$(STATICCHECK):
	GOBIN=$(abspath $(BIN)) $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name"; \
		GO=$(GO) scripts/fuzz-one.sh "$$pkg" "$$name" 10s $(FUZZ_MINIMIZE) || exit 1; \
	done

# Real power cuts: a QEMU guest loops updates on a virtio ext4 disk and is
# killed at random moments; each image is checked on the host. A no-fsync
# canary build must be caught. docs/powercut.md.
powercut:
	test/powercut/run.sh

# The shorter pass CI runs (part of make test).
powercut-ci:
	POWERCUT_CUTS=40 POWERCUT_CANARY_CUTS=8 test/powercut/run.sh

bench: build
	scripts/bench-setup.sh
	bench/slots.sh
	@echo "== install (1, 4 GiB) from an nginx repository vs curl|zstd|tee|sha256sum; delta table vs casync and zsync; peak RSS; index of ~100k chunks"
	$(GO) run ./bench/install
	@echo "== demo server: link swap -> new version answering (reload, systemd restart, socket activation)"
	$(GO) test -run '^$$' -bench '^BenchmarkSwapToAnswer$$' -benchtime 1x ./cmd/modelslot-demo/
	@echo "== health: failure -> old version answering again, per failure kind"
	MODELSLOT_HEALTH_BENCH=1 $(GO) test -count=1 -run '^TestHealthRevertTimes$$' -v ./cmd/modelslot/
	@echo "== agent: idle RSS and CPU, events drained to mosquitto"
	bench/agent.sh
	@echo "== fleet controller: events/s into SQLite and PostgreSQL from 1,000 devices, CPU and RSS"
	MODELSLOT_FLEET_BENCH=1 $(GO) test -count=1 -timeout 30m -run '^TestFleetBench$$' -v ./cmd/modelslot/ | grep '^fleet bench'

# 10,000 simulated devices (real agents, slot stores on /dev/shm, an MQTT
# connection each) through one mosquitto, the fleet serve binary and
# PostgreSQL: a good version through three stages, a bad one halted at the
# first; time, events/s, CPU, RSS, database size, lost events (docs/scale.md).
# make test runs the same test with 500 devices. FLEET_DEVICES=N to change.
FLEET_DEVICES ?= 10000
# Where the bench writes the dashboard screenshot taken mid-rollout (empty: none).
FLEET_SCREENSHOT ?= $(abspath docs/img/dashboard-10000.png)
fleet-bench: setup
	MODELSLOT_FLEET_DEVICES=$(FLEET_DEVICES) MODELSLOT_FLEET_SCREENSHOT=$(FLEET_SCREENSHOT) $(GO) test -count=1 -timeout 90m -v \
		-run '^TestFleetConvergesThroughStagesAndHaltsABadVersion$$' ./internal/simulate/

demo:
	scripts/demo.sh

# Static binaries for the device architectures modelslot targets.
cross:
	@for target in linux/amd64 linux/arm64 linux/arm/7; do \
		os=$${target%%/*}; rest=$${target#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; \
		[ "$$arch" = arm ] || arm=; \
		out=dist/$$os-$$arch$${arm:+v$$arm}; \
		echo "build $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm \
			$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out/ ./cmd/... || exit 1; \
	done

# Release artifacts in dist/: static modelslot and modelslot-fleet binaries for
# linux amd64, arm64 and armv7, two .debs for each (modelslot for devices,
# modelslot-fleet for the controller; dpkg-deb), SHA256SUMS.
dist:
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' LDFLAGS='$(LDFLAGS)' scripts/dist.sh

# For other distributions: make install DESTDIR=/tmp/stage PREFIX=/usr
# (both binaries, units, preset, example config, man pages, completions, docs).
PREFIX      ?= /usr/local
SYSCONFDIR  ?= /etc
install: build
	DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' packaging/install.sh $(BIN) $(BIN)
	packaging/copyright.sh $(BIN)/modelslot > '$(DESTDIR)$(PREFIX)/share/doc/modelslot/copyright'
	packaging/copyright.sh $(BIN)/modelslot-fleet > '$(DESTDIR)$(PREFIX)/share/doc/modelslot-fleet/copyright'

# CI: the amd64 .deb installed into a fresh root and checked; the arm64 and
# armv7 packages' binaries run under qemu-user (scripts/deb-check.sh).
deb-check: dist
	scripts/deb-check.sh

clean:
	rm -rf $(BIN) dist
