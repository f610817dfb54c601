# clusterd — `make run` brings up a local 3-node cluster, `make test` runs every test, `make fuzz` fuzzes for long.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/clusterd
APT_PACKAGES := clang libclang-dev libseccomp-dev pkg-config busybox-static etcd-server etcd-client runc crun nftables iproute2 util-linux docker-registry skopeo curl python3-venv systemd
# Integration tests start several node processes each; two at a time suit a 2-core machine.
TEST_THREADS ?= 2

.PHONY: deps build images run test chaos fuzz bench lint fmt reset

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	$(CARGO) build --workspace --bins

# Test images: OCI archives of Debian's busybox-static, tagged clusterd.local/busybox:v1 and :v2.
images: deps
	$(CARGO) build --workspace --bins --examples
	target/debug/examples/busybox_image target/images

run: build images
	@bash examples/local-cluster.sh

test: deps images
	$(CARGO) test --workspace --no-run
	$(CARGO) test --workspace -- --test-threads=$(TEST_THREADS)

# A long fault run (tests/chaos.rs): CHAOS_SECONDS of faults from CHAOS_SEED.
# Builds the test binaries as `make test` does (no other feature set, so no
# rebuild of RocksDB), then runs only the fault run's binary.
CHAOS_SECONDS ?= 1800
CHAOS_SEED ?= $(shell date +%s)
chaos: deps
	$(CARGO) test --workspace --no-run
	@bin=$$($(CARGO) test --workspace --no-run --message-format=json 2>/dev/null | grep -o '"executable":"[^"]*/deps/chaos-[0-9a-f]*"' | tail -1 | cut -d'"' -f4); \
	test -x "$$bin" || { echo "no chaos test binary found"; exit 1; }; \
	CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SEED=$(CHAOS_SEED) $$bin a_cluster_under_faults_keeps_its_promises --exact --nocapture

# Property-based fuzzing (proptest on stable Rust): the `fuzz` tests of every
# crate — manifests through admission and the registry, request bodies, gRPC
# requests, selectors, quantities, Raft frames — with many more cases than the
# few hundred each runs in `make test`. Only the unit-test binaries are built
# (no node processes run). FUZZ_CASES scales every target.
FUZZ_CASES ?= 100000
fuzz: deps
	$(CARGO) test --workspace --lib --no-run
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --workspace --lib -- fuzz --test-threads=$(TEST_THREADS)

bench: deps images
	$(CARGO) bench --bench store
	$(CARGO) bench --bench runtime
	$(CARGO) bench --bench pods
	$(CARGO) bench --bench workloads
	$(CARGO) bench --bench services
	$(CARGO) bench --bench dns
	$(CARGO) bench --bench kubeapi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Remove the local cluster of `make run` (stop it first): its pods, bridges,
# nftables tables and cgroups, then its data.
reset:
	@for d in .local/cluster/n*; do [ -f $$d/node.json ] && [ -x target/debug/clusterd ] && target/debug/clusterd reset --data-dir $$d || true; done
	rm -rf .local/cluster
