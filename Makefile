# intercloud: `make demo` runs the scenario, `make test` runs every test
# (installing and starting the real servers the tests talk to).

GO ?= go
# The real servers the tests start are installed once per machine, outside
# the checkout, so a fresh clone starts them in seconds.
export INTERCLOUD_PEERS_CACHE ?= $(HOME)/.cache/intercloud/peers
.PHONY: test test-sqlserver peers demo build fuzz bench vet lint image image-tar package

test: peers lint
	$(GO) test -count=1 -timeout 25m ./...
	$(MAKE) fuzz FUZZTIME=3000x

peers:
	bash scripts/install-peers.sh

# The suites that need a SQL Server (none runs here): the sqldb conformance
# suite, the poll and CDC sources' suites and the scenario with Azure on SQL
# Server, against INTERCLOUD_SQLSERVER_URL (a login that may create
# databases; see README, SQL Server). Unset, it says so and skips them.
test-sqlserver:
	@if [ -z "$$INTERCLOUD_SQLSERVER_URL" ]; then \
		echo "make test-sqlserver: SKIPPED: INTERCLOUD_SQLSERVER_URL is not set; no SQL Server test ran (see README, SQL Server)" >&2; \
		exit 0; \
	fi; \
	$(GO) test -count=1 -timeout 30m -run 'TestConformanceLive' ./sqldb/sqlserver && \
	$(GO) test -count=1 -timeout 30m -short -run 'TestSQLServerLive' ./replicate/pollsrc && \
	$(GO) test -count=1 -timeout 30m -run 'TestSQLServerLive' ./replicate/sqlserversrc && \
	$(GO) test -count=1 -timeout 30m -run 'TestScenarioPollSource/sqlite-sqlserver' ./topology

demo:
	$(GO) run ./cmd/intercloud demo --records 10000

build:
	$(GO) build -o intercloud ./cmd/intercloud

vet:
	$(GO) vet ./...

# gofmt -l, go vet, go mod tidy -diff and staticcheck (the pinned version
# `make peers` installs) must all be clean.
lint:
	GO=$(GO) bash scripts/lint.sh

# The parsers of outside input, each fuzzed for a while (FUZZTIME=5m for
# longer; `make test` runs 3,000 inputs each, a count rather than a time:
# Go 1.26's fuzz coordinator can fail a time-limited run with "context
# deadline exceeded" at its end on a busy machine, golang/go#75804, fixed
# in Go 1.27): ingest bodies (and the
# fast path against the reference parser), topology
# files, replication row filters, log queries, Authorization headers, poll
# source positions and change keys, SQL Server CDC source positions; and
# the file store's listing after a start key against its definition.
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./ingest -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./ingest -run '^$$' -fuzz '^FuzzFastPath$$' -fuzztime $(FUZZTIME)
	$(GO) test ./config -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./replicate -run '^$$' -fuzz '^FuzzParseFilter$$' -fuzztime $(FUZZTIME)
	$(GO) test ./logstore -run '^$$' -fuzz '^FuzzParseQuery$$' -fuzztime $(FUZZTIME)
	$(GO) test ./auth -run '^$$' -fuzz '^FuzzBearerKey$$' -fuzztime $(FUZZTIME)
	$(GO) test ./objects/file -run '^$$' -fuzz '^FuzzListKeysAfter$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/serve -run '^$$' -fuzz '^FuzzParseFastRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./objects -run '^$$' -fuzz '^FuzzKeyOfPath$$' -fuzztime $(FUZZTIME)
	$(GO) test ./replicate/pollsrc -run '^$$' -fuzz '^FuzzParsePosition$$' -fuzztime $(FUZZTIME)
	$(GO) test ./replicate/pollsrc -run '^$$' -fuzz '^FuzzDecodeKey$$' -fuzztime $(FUZZTIME)
	$(GO) test ./replicate/sqlserversrc -run '^$$' -fuzz '^FuzzPositionLSN$$' -fuzztime $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./ingest ./edge ./frontdoor ./replicate
	INTERCLOUD_BENCH_ROWS=200000 $(GO) test ./replicate/mysqlsrc/ -run '^$$' -bench MariaDBToPostgres -benchtime 1x -timeout 60m

# The container image (deploy/Dockerfile: multi-stage, distroless, non-root);
# needs a running Docker daemon. IMAGE=registry/name:tag to name it.
IMAGE ?= intercloud:dev
image:
	@docker info >/dev/null 2>&1 || { echo "make image: no Docker daemon answers (docker info failed); make image-tar builds the image without one; see docs/deploy.md" >&2; exit 1; }
	docker build -f deploy/Dockerfile -t $(IMAGE) .

# The same image without a Docker daemon (deploy/image): the static binary
# on a distroless-like base, configured as deploy/Dockerfile's final stage
# says, written to dist/intercloud-image.tar for `docker load`, `podman
# load` or `crane push`.
image-tar:
	mkdir -p dist
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags="-s -w" -o dist/intercloud ./cmd/intercloud
	$(GO) run ./deploy/image -binary dist/intercloud -o dist/intercloud-image.tar -tag $(IMAGE)

# The AWS Lambda and Azure Functions zips under dist/ (ARCH=arm64 for arm).
package:
	GO=$(GO) bash scripts/package.sh
