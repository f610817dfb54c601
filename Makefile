# clusterd — `make run` brings up a local 3-node cluster, `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/clusterd
APT_PACKAGES := clang libclang-dev libseccomp-dev pkg-config busybox-static etcd-server etcd-client runc
# Integration tests start several node processes each; two at a time suit a 2-core machine.
TEST_THREADS ?= 2

.PHONY: deps build run test bench lint fmt clean-run

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	$(CARGO) build --workspace --bins

run: build
	@bash examples/local-cluster.sh

test: deps
	$(CARGO) test --workspace --no-run
	$(CARGO) test --workspace -- --test-threads=$(TEST_THREADS)

bench: deps
	$(CARGO) bench --bench store

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean-run:
	rm -rf .local/cluster
