# natalg: userspace NAT with an FTP application-layer gateway.
#
#   make demo   set up, then show natalg translating a real FTP session
#   make test   install what the tests need, then run them all (CI runs this)
#
# Other targets: build, deps, vet, fuzz (FUZZTIME per target), bench,
# bench-plot, bench-go, bench-targets (the runs behind bench/README.md's
# target table), bench-live (natalg vs the kernel on a real download),
# record (re-record the kernel golden sessions), clean.

GO        ?= go
BIN       := bin/natalg
FUZZTIME  ?= 30s
# Debian packages the tests and the demo use: the kernel-oracle recorder and
# the end-to-end suite (namespaces, the kernel's NAT and FTP helper, vsftpd,
# curl, lftp, Python's ftplib, tcpdump). ProFTPD, the second server, conflicts
# with vsftpd in Debian: testdata/e2e/deps.sh unpacks it beside it.
APT_PKGS  := iproute2 iptables nftables vsftpd curl lftp tcpdump ethtool conntrack wireshark-common procps python3 iperf3 keepalived conntrackd

.PHONY: all build deps vet test test-unit demo fuzz record clean bench bench-plot bench-go bench-targets bench-live

all: build

build:
	$(GO) build -o $(BIN) ./cmd/natalg

# deps installs the Debian packages above when something is missing (as
# root; elsewhere it says what to install). apt-get update runs first.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "deps: all present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "deps: installing$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "deps: missing$$missing (run 'sudo make deps'); root-only tests will skip"; fi
	@sh testdata/e2e/deps.sh

# vet: gofmt, go.mod tidy (go mod tidy -diff prints what tidy would change
# and fails), go vet, staticcheck (pinned: go run fetches that version), and
# the router binary links no plotting (cmd/natalg-plot does).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@if $(GO) list -deps ./cmd/natalg | grep -q '^gonum.org/'; then echo "cmd/natalg links gonum (plotting belongs in cmd/natalg-plot)"; exit 1; fi

# test: everything, including the root-only live comparison with the kernel
# (network namespaces of its own, addresses in 198.18.0.0/15 and fd00::/8,
# 2001:db8::/32 only).
# The packages under cmd/ run live sessions in network namespaces (the
# end-to-end suite, the load test, the live kernel recording); they run one
# package at a time (-p 1) so that their timing does not depend on another
# package's load test running beside them on a 2-core machine.
test: deps vet
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/cmd/')
	$(GO) test -race -count=1 -timeout 45m -p 1 ./cmd/...

# test-unit: no root, no packages.
test-unit:
	$(GO) test -short ./...

# demo: (1) replay real FTP sessions recorded through the kernel's NAT
# (testdata/kernel) through natalg, show each rewritten control line and
# check the result against what the kernel sent; (2) as root, a live router
# in network namespaces: vsftpd, natalg run on NFQUEUE, an active-mode and a
# passive-mode download through it, the control lines on both sides and
# natalg flows during the transfer; (3) as root, unless HA=0, the router pair
# of testdata/ha (keepalived, conntrackd) failing over during a download
# (about 15 s).
demo: deps build
	@for c in snat-port dnat-pasv snat-eprt; do \
		echo; echo "=== $$c: natalg replay $$(cat testdata/kernel/$$c/args)"; \
		./$(BIN) replay --show $$(cat testdata/kernel/$$c/args) testdata/kernel/$$c/in.pcap /tmp/natalg-demo-$$c.pcap \
			--expect testdata/kernel/$$c/golden.pcap || exit 1; \
	done
	@if [ "$$(id -u)" = 0 ]; then echo; echo "=== live: natalg run on a namespace router"; \
		NATALG=$(CURDIR)/$(BIN) bash testdata/e2e/demo.sh; \
	else echo; echo "(the live router part needs root: sudo make demo)"; fi
	@if [ "$$(id -u)" = 0 ] && [ "$(HA)" != 0 ]; then echo; echo "=== live: a router pair fails over (HA=0 skips it)"; \
		NATALG=$(CURDIR)/$(BIN) bash testdata/ha/demo.sh; fi

# bench-live: natalg run (split and full datapaths) against the kernel's NAT
# and nf_nat_ftp, alternating, ROUNDS rounds: a MIB MiB FTP download with
# offloads on and off, iperf3 TCP, iperf3 UDP with 1200- and 64-byte
# datagrams; medians and the ratios to the kernel.
bench-live: deps build
	NATALG=$(CURDIR)/$(BIN) bash testdata/e2e/bench-live.sh $(ROUNDS) $(MIB)

# fuzz: every native fuzz target for FUZZTIME each (seeded from testdata).
# A crasher the fuzzer finds is written to the package's testdata/fuzz/
# directory, which plain `go test` then runs as a regression case: commit it
# with the fix.
FUZZ_TARGETS := ./cmd/internal/nfq:FuzzQueueBatch ./alg:FuzzParseLine ./alg:FuzzTLSTracker ./alg:FuzzNAT64Control ./alg:FuzzControlState \
	./nat:FuzzProcess ./nat:FuzzPeekTuple ./nat:FuzzLoadState ./nat/header:FuzzDecode ./nat/xlat:FuzzXlat \
	./nat/checksum:FuzzSum ./nat/checksum:FuzzUpdate ./seqdelta:FuzzLedger ./seqdelta:FuzzLedgerBinary ./conntrack:FuzzFlowRecord \
	./nat/frag:FuzzReassemble ./nat:FuzzFragments ./nat:FuzzParseForward64 ./nat:FuzzDecodeLabels
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

# bench: the engine from memory, no kernel in the path (bench/README.md).
bench:
	$(GO) run ./cmd/natalg bench --scenario established --flows 1000,10000,100000,1000000
	$(GO) run ./cmd/natalg bench --scenario ftp-control --flows 1000
	$(GO) run ./cmd/natalg bench --scenario setup --flows 100000
	$(GO) run ./cmd/natalg bench --scenario mixed --flows 100000

bench-plot:
	$(GO) run ./cmd/natalg bench --json --scenario established --flows 1000,10000,100000,1000000 | $(GO) run ./cmd/natalg-plot -o bench-established.png

# bench-targets: the runs behind bench/README.md's target table, pinned to
# vCPU $(CPU) where one core is measured (the machine's vCPUs change speed
# from minute to minute: see bench/README.md, "Running it"). About a minute.
CPU ?= 1
bench-targets: build
	@echo "== targets 1, 3, 4: 1k and 1M flows in turn, 9 rounds (ratio within each round)"
	taskset -c $(CPU) $(BIN) bench --scenario established --flows 1000,1000000 --rounds 9
	@echo "== target 2: FTP control segments with rewrites"
	taskset -c $(CPU) $(BIN) bench --scenario ftp-control --flows 1000
	@echo "== target 5: 1 and 2 workers on one table, 100k flows, alternating (packets/s)"
	@for i in 1 2 3 4 5; do for c in 1 2; do \
		printf 'workers %s: ' $$c; \
		$(BIN) bench --scenario established --flows 100000 --cores $$c --json | tail -1 | \
			grep -o '"packets_per_second":[0-9.]*' | cut -d: -f2; \
	done; done

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./nat/... ./conntrack ./seqdelta ./alg

# record: re-record the kernel golden sessions (root; see testdata/record.sh).
record: deps
	bash testdata/record.sh

clean:
	rm -rf bin
