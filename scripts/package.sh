#!/usr/bin/env bash
# Builds the function packages for the clouds' own function services into dist/:
#   dist/intercloud-lambda-linux-$ARCH.zip           AWS Lambda, custom runtime
#        (provided.al2023): the load function as `bootstrap`
#   dist/intercloud-azure-functions-linux-$ARCH.zip  Azure Functions custom handler
#        app: host.json, load/function.json, publish/function.json, `intercloud`
# Usage: scripts/package.sh            (ARCH=arm64 for Graviton / Ampere)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
ARCH=${ARCH:-amd64}
out=dist
work="$out/work-$ARCH"
rm -rf "$work"
mkdir -p "$work/lambda" "$work/azure"
build() { CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH "$GO" build -trimpath -ldflags="-s -w" "$@"; }

build -tags lambda.norpc -o "$work/lambda/bootstrap" ./cmd/intercloud-lambda
build -o "$work/azure/intercloud" ./cmd/intercloud
# host.json and the function.json files, written by the binary for this machine.
"$GO" run ./cmd/intercloud function azure init "$work/azure" >/dev/null

lambda="$out/intercloud-lambda-linux-$ARCH.zip"
azure="$out/intercloud-azure-functions-linux-$ARCH.zip"
rm -f "$lambda" "$azure"
# -X: no extra file attributes; the executables keep their mode bits.
(cd "$work/lambda" && zip -q -X "../../$(basename "$lambda")" bootstrap)
(cd "$work/azure" && zip -q -X -r "../../$(basename "$azure")" .)
rm -rf "$work"
for z in "$lambda" "$azure"; do
	printf '%s\t%s bytes\n' "$z" "$(stat -c %s "$z")"
done
