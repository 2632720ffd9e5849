#!/usr/bin/env bash
# Builds the cert-manager harness (e2e/certmanager: cert-manager's
# controllers and cainjector in one process, with its CRDs) into
# bin/cert-manager-harness for the end-to-end suite.
# Skips the build when bin/.cert-manager-stamp matches the module's files,
# this script and the Go version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/e2e/certmanager"
script="$root/hack/$(basename "$0")"
bin="$root/bin"
out="$bin/cert-manager-harness"
stampfile="$bin/.cert-manager-stamp"
mkdir -p "$bin"
cd "$mod"

# The embedded CRDs are copies of the required cert-manager's deploy/crds.
go mod download github.com/cert-manager/cert-manager
upstream=$(go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
if ! diff -r -x README.md "$upstream/deploy/crds" crds -x '*.go' >/dev/null; then
	echo "e2e/certmanager/crds differ from $upstream/deploy/crds; copy them:" >&2
	echo "  rm e2e/certmanager/crds/*.yaml && cp $upstream/deploy/crds/*.yaml e2e/certmanager/crds/ && chmod 644 e2e/certmanager/crds/*.yaml" >&2
	exit 1
fi

stamp=$( (find . -type f \( -name '*.go' -o -name '*.yaml' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort | xargs sha256sum; sha256sum "$script" | cut -d' ' -f1) \
	| sha256sum | cut -d' ' -f1)-$(go env GOVERSION)
if [ -x "$out" ] && [ "$(cat "$stampfile" 2>/dev/null)" = "$stamp" ]; then
	echo "cert-manager-harness $(go list -m -f '{{.Version}}' github.com/cert-manager/cert-manager) in bin/ current"
	exit 0
fi

echo "building cert-manager-harness $(go list -m -f '{{.Version}}' github.com/cert-manager/cert-manager) into bin/ (a cold build takes minutes)"
start=$SECONDS
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out" .
echo "$stamp" > "$stampfile"
echo "built in $((SECONDS - start))s"
