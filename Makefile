# storage: a Supabase-Storage-compatible object store whose brain is PostgreSQL.
# `make` lists the targets.

GO          ?= go
BIN         := bin/storage
DATA        ?= ./data
TEST_FLAGS  ?= -count=1 -timeout 25m

.DEFAULT_GOAL := help
.PHONY: help build run test test/race lint verify migrate db/reset api/snapshot postgres libvips

help: ## list the targets
	@grep -E '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

build: libvips ## build bin/storage
	$(GO) build -o $(BIN) ./cmd/storage

run: postgres build ## build and start `storage serve` on the embedded default (data in ./data)
	STORAGE_DATA_DIR=$${STORAGE_DATA_DIR:-$(DATA)} ./$(BIN) serve

test: postgres libvips versitygw rclone ## run every test against real PostgreSQL (ephemeral cluster unless TEST_DATABASE_URL), every fuzz target for 3s, the JS clients
	$(GO) test $(TEST_FLAGS) ./...
	$(MAKE) fuzz/smoke
	$(MAKE) test/js

test/race: postgres libvips versitygw rclone ## the tests with the race detector
	$(GO) test -race $(TEST_FLAGS) ./...

lint: libvips ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

verify: lint ## lint, plus the schema checks: migrations round trip, snapshot = sql/api, API parity
	$(GO) test -count=1 -run 'TestMigrations' ./tests/

migrate: postgres build ## apply pending migrations (DATABASE_URL, or the embedded cluster in ./data)
	STORAGE_DATA_DIR=$${STORAGE_DATA_DIR:-$(DATA)} ./$(BIN) migrate

db/reset: ## delete the embedded cluster in ./data/pg (all buckets and objects' rows!); keeps the JWT secret
	rm -rf $(DATA)/pg

api/snapshot: ## freeze sql/api into the next migration (sql/NNN_install_api.sql + sql/snapshots/NNN)
	$(GO) run github.com/jackc/tern/v2@$$($(GO) list -m -f "{{.Version}}" github.com/jackc/tern/v2) code snapshot sql/api -m sql
	@echo "now add the down section to the new sql/NNN_install_api.sql and bump latestMigration in tests/migrate_test.go"

postgres: ## make sure PostgreSQL server binaries exist (installs them with apt when root)
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	    { command -v pg_config >/dev/null 2>&1 && test -x "$$(pg_config --bindir)/initdb"; }; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing PostgreSQL server binaries (apt-get install -y postgresql)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	else \
	  echo "PostgreSQL server binaries (initdb, postgres) not found. Install them with:"; \
	  echo "  sudo apt-get install -y postgresql"; \
	  exit 1; \
	fi

libvips: ## make sure libvips and its headers exist for the image renderer (installs Debian's libvips-dev with apt when root)
	@if pkg-config --exists vips 2>/dev/null; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing libvips for /render/image (apt-get install -y libvips-dev pkg-config)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libvips-dev pkg-config; \
	else \
	  echo "libvips (the image library /render/image uses, through cgo) not found. Install it with:"; \
	  echo "  sudo apt-get install -y libvips-dev pkg-config"; \
	  exit 1; \
	fi

VERSITYGW_VERSION := v1.8.0
.PHONY: versitygw

versitygw: ## install the S3 test server (versitygw v1.8.0) into $(GOPATH)/bin
	@gobin="$$($(GO) env GOBIN)"; gobin="$${gobin:-$$($(GO) env GOPATH | cut -d: -f1)/bin}"; \
	if [ -n "$$VERSITYGW" ] && [ -x "$$VERSITYGW" ]; then :; \
	elif command -v versitygw >/dev/null 2>&1 || [ -x "$$gobin/versitygw" ]; then :; \
	else \
	  echo "installing versitygw $(VERSITYGW_VERSION) into $$gobin (about 1.5 min the first time)"; \
	  $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi

.PHONY: rclone

rclone: ## make sure rclone exists for tests/cli_rclone_test.go (installs Debian's package with apt when root)
	@if command -v rclone >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing rclone for the S3 protocol test (apt-get install -y rclone)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rclone; \
	else \
	  echo "rclone (the S3 client tests/cli_rclone_test.go drives) not found. Install it with:"; \
	  echo "  sudo apt-get install -y rclone"; \
	  exit 1; \
	fi

.PHONY: fuzz fuzz/smoke
FUZZTIME ?= 1m

fuzz: ## run every fuzz target (scripts/fuzz) for FUZZTIME each (default 1m), one at a time; FUZZ=regexp picks some
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz

fuzz/smoke: ## every fuzz target for 3s: each still builds, runs and finds nothing quickly
	FUZZTIME=3s GO=$(GO) scripts/fuzz

.PHONY: bench

bench: postgres build ## run the benchmarks (wrk, pgbench); not part of make test
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing wrk (apt-get install -y wrk)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; \
	else \
	  echo "wrk not found. Install it with:"; \
	  echo "  sudo apt-get install -y wrk"; \
	  exit 1; \
	fi
	$(GO) build -o bin/bench-hello ./bench/hello
	$(GO) run ./bench

.PHONY: soak

soak: postgres build versitygw ## soak both backends: SOAK_CONNECTIONS (256) clients for SOAK_DURATION (10m) each; exits 1 when a target is missed; not part of make test
	$(GO) run ./bench -soak -storage $(BIN)

.PHONY: test/js chromium

test/js: postgres build versitygw chromium ## run the storage-js, supabase-js and tus-js-client suites (tests/js: node --test, file and s3 backends, headless Chromium)
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	  echo "node and npm (Node >= 20) not found; install Node.js 20 or newer (apt-get install -y nodejs)"; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || { \
	  echo "tests/js needs Node >= 20, found $$(node --version)"; exit 1; }
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	cd tests/js && STORAGE_BROWSER_TEST=1 node --test

chromium: ## make sure headless Chromium exists for tests/js (installs it with apt when root)
	@if [ -n "$$CHROMIUM" ] && [ -x "$$CHROMIUM" ]; then :; \
	elif command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	     command -v google-chrome >/dev/null 2>&1 || command -v google-chrome-stable >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Chromium for the browser test (apt-get install -y chromium)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
	  echo "Chromium (headless browser for tests/js/browser.test.js) not found. Install it with:"; \
	  echo "  sudo apt-get install -y chromium"; \
	  exit 1; \
	fi
