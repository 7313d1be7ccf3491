# AnineePlus: the README's vocabulary. Every target is a thin wrapper over scripts/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help up down status run seed test test-unit test-cluster bench bench-cluster fmt lint

# CLUSTER=1 (`make up CLUSTER=1`, `make down CLUSTER=1`, `make status CLUSTER=1`): the
# cluster mode, beside the single-node stack (scripts/stack/cluster.env).
CLUSTER ?= 0
export CLUSTER

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

up: ## start the stack and the project's services in the background (idempotent; CLUSTER=1: the cluster mode)
	@bash scripts/stack/up.sh

down: ## stop everything `make up` started, nothing else (CLUSTER=1: the cluster mode's)
	@bash scripts/stack/down.sh

status: ## what runs, where
	@bash scripts/stack/status.sh

run: ## `make up`, print the endpoints, follow the logs until Ctrl-C
	@bash scripts/run.sh

seed: ## load the bangumi-data anime catalogue (CC-BY-4.0) through the API; `make seed ARGS="--limit 50"`
	@bash scripts/seed.sh $(ARGS)

test: ## unit tests, then the stack, then the integration tests against it
	@bash scripts/test.sh

test-cluster: ## the failure drills on the cluster mode: starts it, runs them, stops it
	@bash scripts/test-cluster.sh

test-unit: ## unit tests only (no service needed)
	@cargo test --workspace --lib --bins

bench: ## every benchmark; figures to target/bench/results.json and a table
	@bash scripts/bench.sh

bench-cluster: ## the cluster mode's benchmarks (replication, two indexer instances); figures to target/bench/cluster.json
	@bash scripts/bench-cluster.sh

fmt: ## format the code
	@cargo fmt --all

lint: ## formatting and clippy, as CI would want them
	@cargo fmt --all -- --check && cargo clippy --workspace --all-targets -- -D warnings
