# The README's two commands are `make run` and `make test`; the rest are helpers.
.DEFAULT_GOAL := help
SHELL := /bin/bash

.PHONY: help install build run token migrate test deploy-test typecheck bench bench-soak soak

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

install: node_modules/.package-lock.json ## install npm dependencies (npm ci)

build: install ## compile TypeScript to dist/
	npm run build

run: build ## start upstream-ai (mock provider) and the gateway on localhost
	./scripts/run-dev.sh

token: build ## print a development token: make token USER=alice
	@node dist/gateway/src/tools/dev-token.js "$(or $(USER_ID),$(USER))"

migrate: build ## create the usage ledger's tables at DATABASE_URL (the gateway also does at start; docs/usage.md)
	@node dist/gateway/src/tools/migrate.js

test: ## install what the tests need, build, run the whole suite
	./scripts/install-test-deps.sh
	npm ci --no-audit --no-fund
	npm run build
	npm test

deploy-test: build ## the deployment tests only: nginx, Caddy, compose, the Dockerfile's steps (deploy/test)
	./scripts/install-test-deps.sh
	npx tap deploy/test/*.test.ts

typecheck: install ## type-check without emitting
	npm run typecheck

bench: build ## run the benchmark (~7 min; writes docs/benchmarks.md, .png, .json)
	./scripts/install-bench-deps.sh
	npm run bench

bench-soak: build ## gateway RSS over 1 M requests (adds to docs/benchmarks.md)
	./scripts/install-bench-deps.sh
	npm run bench:soak

soak: build ## 15 min of steady load with client aborts; heap and RSS into docs/reliability.md (not in CI; SOAK_SECONDS=60 for a short run)
	./scripts/install-test-deps.sh
	node dist/gateway/test/reliability/soak.js
