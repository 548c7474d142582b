# netlab: the two commands a newcomer needs are `make demo` and `make test`.
# Both install what is missing on a Debian/Ubuntu machine (as root).

export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := bin/netlab
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Fuzz budgets are counts of inputs, about 15 s each here, not durations: a
# duration races Go's fuzz coordinator at its deadline (golang/go#75804,
# fixed in Go 1.27) and fails with "context deadline exceeded" and no
# crasher on a busy machine. FUZZTIME=10m (or 5000000x) sets them all.
FUZZTIME ?=
fuzzbudget = $(if $(FUZZTIME),$(FUZZTIME),$(1))
# make install: the binary to $(DESTDIR)$(BINDIR), and where AppArmor is
# active its profile (APPARMOR=yes: always; no: never), loaded.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
APPARMOR ?= auto

# netlab is built without cgo: a static binary starts 2 ms sooner here
# (`netlab version`, 40 runs: 10.2 ms against 12.3, 9 ms of CPU against 14:
# no dynamic loader, no libc start-up, and each page fault costs about 30 us
# on this machine), runs where the machine's libc is not, and reads a user
# from the /etc/passwd a service's view has, as os/user does without cgo.
# The tests' own builds use -race, which needs cgo; TestStaticBuild runs
# this one.
BUILD   = CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)"

.PHONY: all deps build demo demo-down test test-long unit e2e fuzz vet apparmor-check bench bench-scale clean install uninstall

all: build

deps:
	@scripts/install-deps.sh

build:
	$(BUILD) -o $(BIN) ./cmd/netlab

# Brings up labs/blue-red.yaml and shows it working.
demo: deps build
	@scripts/demo.sh $(BIN)

demo-down: build
	$(BIN) down blue-red

# The binary, and where AppArmor restricts user namespaces (Ubuntu 23.10 and
# later) the profile that lets netlab make sandboxes for users
# (packaging/apparmor/netlab), loaded. As root: sudo make install.
install: build
	@BINDIR="$(BINDIR)" DESTDIR="$(DESTDIR)" APPARMOR="$(APPARMOR)" scripts/install.sh install $(BIN)

uninstall:
	@BINDIR="$(BINDIR)" DESTDIR="$(DESTDIR)" APPARMOR="$(APPARMOR)" scripts/install.sh uninstall

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# The AppArmor profile parses (apparmor_parser -Q -T).
apparmor-check:
	@scripts/install.sh check

# Every test: vet, unit and fuzz-seed tests, e2e tests (real namespaces, OVS,
# traffic) with -race, and a short fuzz run of the parsers. Packages run side
# by side: each that makes namespaces runs in a sandbox of its own, and the
# one that looks at the machine itself (e2e/machine) sees none of theirs.
test: deps vet apparmor-check
	$(GO) test -race -count=1 -timeout 25m ./...
	cd examples/fixture && $(GO) test -race -count=1 ./...
	$(MAKE) fuzz

# The long variants of the reliability suites: a crash after every step of
# every shipped lab, and hundreds of kills at any moment, not a sample.
test-long: deps
	NETLAB_LONG=1 $(GO) test -race -count=1 -timeout 60m -run 'TestCrashAtEveryStep|TestKillAtAnyMoment' -v ./e2e/

unit:
	$(GO) test -count=1 ./topology/... ./internal/plan/... ./internal/state/... ./internal/apply/... ./internal/deps/...

e2e: deps
	$(GO) test -race -count=1 -timeout 20m -v ./e2e/...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(call fuzzbudget,250000x) ./topology/
	$(GO) test -run '^$$' -fuzz '^FuzzParseLinkMessage$$' -fuzztime $(call fuzzbudget,500000x) ./internal/kernel/
	$(GO) test -run '^$$' -fuzz '^FuzzSummary$$' -fuzztime $(call fuzzbudget,250000x) ./internal/capture/
	$(GO) test -run '^$$' -fuzz '^FuzzArgs$$' -fuzztime $(call fuzzbudget,150000x) ./cmd/netlab/
	$(GO) test -run '^$$' -fuzz '^FuzzModel$$' -fuzztime $(call fuzzbudget,150000x) ./internal/linkmodel/
	$(GO) test -run '^$$' -fuzz '^FuzzFormat$$' -fuzztime $(call fuzzbudget,250000x) ./topology/
	$(GO) test -run '^$$' -fuzz '^FuzzSocketOn$$' -fuzztime $(call fuzzbudget,500000x) ./internal/supervise/

# Times netlab up/down against bench/floor (the same star made as directly
# as the kernel allows, each in a throwaway world of its own, paired
# rounds), then against shell baselines (hand-batched and naive) on
# star labs of 10..250 namespaces, and TCP through veth, Linux bridge, OVS and
# the learning switch; also the planner's own benchmark, and netlab's
# reflector against a minimal C reflector in the same run, and labs in
# sandboxes against the same labs on the machine; and the userspace link
# emulator against its targets (delay, jitter, rate, Gilbert-Elliott,
# traces, throughput against a veth). Root; about 22 min (BENCHFLAGS=-quick
# for less). Results: bench/RESULTS.md.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 20x ./internal/plan/
	$(GO) run ./bench/run $(BENCHFLAGS)
	PAIRS=8 bash bench/reflector/bench.sh 3 3
	$(BUILD) -o bench/bin/netlab ./cmd/netlab
	$(GO) run ./bench/emulator -netlab bench/bin/netlab

# Labs of 1,000 and 10,000 namespaces (bare, and stars over Linux bridges)
# and of 1,000 Open vSwitch ports over 4 bridges, up, up again and down,
# against bench/floor: cost per namespace, peak memory, open files; two
# rounds of each 10,000 lab. Root; 10 to 15 minutes. Not part of `make bench`.
bench-scale: deps
	$(GO) run ./bench/run -scale $(BENCHFLAGS)

clean:
	rm -rf bin
