#!/usr/bin/env bash
# Fails when gofmt, go vet, go mod tidy or staticcheck would change or
# report anything, and lists every finding of each before it fails.
# staticcheck is the pinned version scripts/install-peers.sh installs.
# Usage: scripts/lint.sh
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
cache=${INTERCLOUD_PEERS_CACHE:-.cache/peers}
staticcheck=${STATICCHECK:-$cache/bin/staticcheck}
gofmt="$("$GO" env GOROOT)/bin/gofmt"
failed=()

unformatted=$(find . -name '*.go' -not -path './.git/*' -not -path './.cache/*' -not -path '*/node_modules/*' -print0 | xargs -0 "$gofmt" -l)
if [ -n "$unformatted" ]; then
	printf 'lint: not gofmt-formatted (run gofmt -w):\n%s\n' "$unformatted" >&2
	failed+=(gofmt)
fi
"$GO" vet ./... || failed+=("go vet")
if ! "$GO" mod tidy -diff; then
	echo "lint: go.mod or go.sum is not tidy (run go mod tidy)" >&2
	failed+=("go mod tidy")
fi
if [ ! -x "$staticcheck" ]; then
	echo "lint: $staticcheck is missing (run scripts/install-peers.sh staticcheck)" >&2
	failed+=(staticcheck)
elif ! "$staticcheck" ./...; then
	failed+=(staticcheck)
fi

if [ ${#failed[@]} -gt 0 ]; then
	echo "lint: failed: ${failed[*]}" >&2
	exit 1
fi
echo "lint: gofmt, go vet, go mod tidy and staticcheck are clean"
