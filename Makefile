# Tether: `make run` and `make test` set up whatever is missing, then run.
# Every install step checks the installed version first and is skipped in well under
# a second when it is already right.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO_LEPTOS_VERSION := 0.3.10
# The wasm-bindgen CLI must match the crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/"/, "", $$3); print $$3; exit}' Cargo.lock)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# wasm-opt for release builds comes from npm's binaryen (Debian's is too old).
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
# cargo-leptos compiles leptos_config with this set; plain cargo must too, or the two
# builds invalidate each other's artifacts in target/.
export LEPTOS_OUTPUT_NAME := tether

.PHONY: help setup run dev cluster test test-native lint test-e2e build-dev build-release \
        wasm-target cargo-leptos wasm-bindgen chromium nginx node-modules proptest-long bench \
        crash-long fuzz bench-browser

help:
	@echo "make run    set up, build a release and serve Tether at http://127.0.0.1:3000"
	@echo "make test   set up and run every test (native, clippy, fmt, Playwright)"
	@echo "make dev    cargo leptos watch (rebuilds and reloads on change)"
	@echo "make cluster  PostgreSQL + 3 nodes + nginx on http://127.0.0.1:3000"

# ---- set-up (idempotent) ------------------------------------------------------------

setup: wasm-target cargo-leptos wasm-bindgen chromium node-modules

wasm-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown \
	  || rustup target add wasm32-unknown-unknown

cargo-leptos:
	@[ "$$(cargo leptos --version 2>/dev/null)" = "cargo-leptos $(CARGO_LEPTOS_VERSION)" ] \
	  || { echo "installing cargo-leptos $(CARGO_LEPTOS_VERSION) (about 20 minutes, once)"; \
	       cargo install cargo-leptos@$(CARGO_LEPTOS_VERSION) --locked --features no_downloads; }

wasm-bindgen:
	@[ "$$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $(WASM_BINDGEN_VERSION)" ] \
	  || { echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION)"; \
	       cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; }

chromium:
	@$(CHROMIUM) --version >/dev/null 2>&1 \
	  || { echo "installing Chromium from Debian"; \
	       $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

# Playwright's cluster spec and `make cluster` put nginx in front of the nodes.
nginx:
	@[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 \
	  || { echo "installing nginx from Debian"; \
	       $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nginx; }

node-modules:
	@cd end2end && { [ node_modules/.package-lock.json -nt package-lock.json ] \
	  && [ "$$(node -p 'require("@playwright/test/package.json").version' 2>/dev/null)" = "$$(node -p 'require("./package.json").devDependencies["@playwright/test"]')" ]; } \
	  || npm ci --no-audit --no-fund

# ---- run ----------------------------------------------------------------------------

# --precompress writes .br (brotli 11) beside the wasm, js and css, which the server
# sends to browsers that accept br (leptos_axum's file handler): 343 KB for the wasm
# instead of 430 KB compressed on the fly. Its .gz files are dropped: they are larger
# than what the server's own gzip makes (docs/BENCHMARKS.md, "bundle").
build-release: setup
	cargo leptos build --release --precompress
	rm -f target/site/pkg/*.gz

run: build-release
	@echo "Tether: http://127.0.0.1:3000 (database: ./data/tether.db; Ctrl-C stops)"
	TETHER_SITE_ROOT=target/site ./target/release/tether

dev: setup
	cargo leptos watch

# Three nodes on a throwaway PostgreSQL behind nginx on http://127.0.0.1:3000
# (docs/DEPLOYMENT.md); prints where each part logs; Ctrl-C stops everything.
cluster: build-release nginx
	scripts/cluster.sh

# ---- test ---------------------------------------------------------------------------

# Everything runs inside one throwaway PostgreSQL cluster (scripts/postgres.sh: installs
# the server from Debian's packages if missing, starts it on a free loopback port in a
# temporary directory as the `postgres` user, removes it afterwards whatever happened).
test: setup nginx
	scripts/postgres.sh run $(MAKE) --no-print-directory test-native lint test-e2e
	@echo "make test: all passed (native tests on SQLite and PostgreSQL, clippy ssr+hydrate, fmt, Playwright)"

# The server suites that run a second time with every test server on PostgreSQL
# (tests/cluster.rs runs in the first pass: it always needs PostgreSQL).
PG_SUITES := server_basics server_sync server_live server_bad_input isolation \
             server_durability hostile crash presence

test-native:
	cargo test --features ssr,loadgen
	@[ -n "$${TETHER_TEST_POSTGRES:-}" ] || { echo "TETHER_TEST_POSTGRES is not set: run 'make test'"; exit 1; }
	TETHER_TEST_STORE=postgres cargo test --features ssr,loadgen $(addprefix --test ,$(PG_SUITES))

lint:
	cargo fmt --all --check
	cargo build --lib --target wasm32-unknown-unknown   # the sync module alone, for wasm32
	cargo clippy --all-targets --features ssr,loadgen -- -D warnings
	cargo clippy --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings

build-dev: setup
	cargo leptos build

test-e2e: build-dev
	cd end2end && npx playwright test

# ---- longer runs (documented in docs/) ---------------------------------------------

proptest-long:
	PROPTEST_CASES=100000 cargo test --release --lib model::

# Crash durability, long form: the server binary SIGKILLed 20 times under writers
# (make test runs 3). Figures in docs/RELIABILITY.md.
crash-long:
	TETHER_CRASH_KILLS=20 cargo test --features ssr --test crash -- --nocapture

# Fuzzing (cargo-fuzz on stable: no sanitizer), FUZZ_SECS per target; the documented
# run is 180 + 120 + 300 s. A crash input goes to fuzz/regressions/<target>/.
FUZZ_SECS ?= 200
fuzz:
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	cargo fuzz build -s none
	cargo fuzz run -s none wire_decode fuzz/corpus/wire_decode fuzz/seeds/wire_decode -- -max_total_time=$(FUZZ_SECS)
	cargo fuzz run -s none registry_validate -- -max_total_time=$(FUZZ_SECS)
	cargo fuzz run -s none push_handler -- -max_total_time=$(FUZZ_SECS) -max_len=2048

bench:
	cargo bench --bench model

# Browser catch-up benchmark (Playwright, release build): figures in docs/BENCHMARKS.md.
bench-browser: build-release
	cd end2end && npx playwright test -c playwright.bench.config.ts

# ---- benchmarks (docs/BENCHMARKS.md) -----------------------------------------------
# Each scenario starts its own release server on a fresh temporary database with the
# limits it needs raised (benches/run-scenario.sh: TETHER_MAX_PUSHES_PER_SECOND=1000000,
# TETHER_MAX_SUBSCRIBERS_PER_LIST=10000, `ulimit -n` raised), runs tether-load, which
# also measures this machine's bare limits in the same run, and writes
# target/bench/<scenario>.json. Figures move with the machine's load: compare ratios.

.PHONY: bench-build bench-fanout bench-ingest bench-catchup bench-connections \
        bench-bundle bench-limits bench-storm bench-all bench-cluster

# The server as `make run` ships it (ssr only); the generator with its own feature.
bench-build:
	cargo build --release --features ssr --bin tether
	cargo build --release --features loadgen --bin tether-load

# (a) 1 list, 100 subscribers, 1 writer at 200 ops/s for 10 s: fan-out latency.
bench-fanout: bench-build
	benches/run-scenario.sh fanout

# (b) 50 writers pushing batches of 100 as fast as they can: acknowledged field ops/s.
bench-ingest: bench-build
	benches/run-scenario.sh ingest

# (c) a client that missed 10,000 changes pulls and applies them into a Replica.
bench-catchup: bench-build
	benches/run-scenario.sh catchup

# (d) 5,000 idle live subscribers: memory per socket, time to reach them all.
bench-connections: bench-build
	benches/run-scenario.sh connections

# (e) the release wasm and js, raw and gzip.
bench-bundle: build-release
	benches/bundle-size.sh target/site/pkg

# (f) this machine's limits alone: bare WebSocket echo and broadcast, bare SQLite.
bench-limits: bench-build
	@mkdir -p target/bench
	./target/release/tether-load --scenario limits --json target/bench/limits.json

# Reconnect storm (docs/RELIABILITY.md): 1,000 live clients, the server SIGKILLed and
# restarted under them (tether-load starts it, so it can); they come back with the
# browser's jittered backoff while a writer writes. Reconnect times, convergence,
# server memory. STORM_FLAGS adds flags, e.g. STORM_FLAGS="--drop client" or
# STORM_FLAGS="--down 2".
bench-storm: bench-build
	benches/run-scenario.sh storm $(STORM_FLAGS)

# PostgreSQL with one and three nodes next to SQLite, in one run: ingest, fan-out
# across nodes, 1,000 subscribers, idle memory per node. Starts and stops its own
# throwaway PostgreSQL and nodes (benches/cluster.sh). BENCH_ROUNDS (2) alternates.
bench-cluster: bench-build
	benches/cluster.sh

bench-all: bench-fanout bench-ingest bench-catchup bench-connections bench-limits bench-storm \
           bench-bundle
