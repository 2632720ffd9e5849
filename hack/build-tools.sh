#!/usr/bin/env bash
# Builds the pinned control plane (etcd, kube-apiserver, kube-scheduler,
# kube-controller-manager) and the matching kubectl from e2e/tools into
# bin/: make dev hands kubectl to its user, and the end-to-end suite applies
# manifests with it to assert what kubectl prints.
# Skips the build when bin/.tools-stamp matches the tools module and flags.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/e2e/tools"
bin="$root/bin"
mkdir -p "$bin"

k8s_version=$(cd "$tools" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w \
 -X $pkg.gitVersion=$k8s_version \
 -X $pkg.gitMajor=$major \
 -X $pkg.gitMinor=$minor \
 -X $pkg.gitCommit=$(printf '%040d' 0) \
 -X $pkg.gitTreeState=clean \
 -X $pkg.buildDate=1970-01-01T00:00:00Z"

binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
packages=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
stampfile="$bin/.tools-stamp"
stamp=$(cat "$tools/go.mod" "$tools/go.sum" "$0" | sha256sum | cut -d' ' -f1)-$(go env GOVERSION)
current=true
for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || current=false; done
if $current && [ "$(cat "$stampfile" 2>/dev/null)" = "$stamp" ]; then
	echo "${binaries[*]} $k8s_version in bin/ current"
	exit 0
fi

echo "building ${binaries[*]} $k8s_version into bin/ (a cold build takes about ten minutes)"
start=$SECONDS
cd "$tools"
# One go build for the Kubernetes binaries so they share compiled packages.
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/" "${packages[@]}"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
echo "$stamp" > "$stampfile"
echo "built in $((SECONDS - start))s"
