#!/usr/bin/env bash
# Runs the benchmarks that docs/benchmarks.md reports, each next to its
# baseline in the same run (the machine is shared: compare ratios, not
# absolute times). Needs the test peers (scripts/install-peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-2s}
go test -run '^$' -bench . -benchtime "$BENCHTIME" ./ingest ./edge ./frontdoor ./replicate ./objects/s3 ./objects/azblob
# TLS next to plain HTTP: two topologies side by side.
go test ./topology -run '^$' -bench TLS -benchtime 3s -count 4
# MariaDB → PostgreSQL: full load next to pgloader on the same table
# (apt-get install pgloader), CDC next to a raw COPY of the same rows.
for rows in 200000 1000000; do
	INTERCLOUD_BENCH_ROWS=$rows go test ./replicate/mysqlsrc/ -run '^$' -bench MariaDBToPostgres -benchtime 1x -timeout 60m
done
rm -rf /tmp/intercloud-bench
go run ./cmd/intercloud demo --records 10000 --data-dir /tmp/intercloud-bench 2>/dev/null
