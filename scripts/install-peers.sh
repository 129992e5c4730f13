#!/usr/bin/env bash
# Installs the real servers the tests talk to (versitygw, Azurite, the AWS
# Lambda RIE, VictoriaLogs, MariaDB, PostgreSQL with PostGIS) into
# .cache/peers, or with apt-get for the database servers. Idempotent:
# seconds when cached.
# Usage: scripts/install-peers.sh [name ...]
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./internal/peers/cmd/install-peers "$@"
