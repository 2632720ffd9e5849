#!/usr/bin/env bash
# Builds the tools of e2e/tools into bin/: the pinned control plane (etcd,
# kube-apiserver, kube-scheduler, kube-controller-manager), the matching
# kubectl (make dev hands it to its user, and the end-to-end suite applies
# manifests with it to assert what kubectl prints), and Helm 3 and 4
# (bin/helm-<version>, with bin/helm and bin/helm3 pointing at them).
#
# Everything is built from the one tools module with the same flags, so the
# Kubernetes libraries that the control plane and Helm share are compiled
# once: Helm 4 is built against the control plane's very client-go.
#
#   hack/build-tools.sh        everything
#   hack/build-tools.sh helm   Helm alone (make generate needs no cluster)
#
# Skips what bin/.tools-stamp or bin/.helm-stamp says is current.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
script="$root/hack/build-tools.sh"
tools="$root/e2e/tools"
bin="$root/bin"
mkdir -p "$bin"
cd "$tools"

version() { go list -m -f '{{.Version}}' "$1"; }
stamp=$(cat go.mod go.sum "$script" | sha256sum | cut -d' ' -f1)-$(go env GOVERSION)

helm3=helm-$(version helm.sh/helm/v3)
helm4=helm-$(version helm.sh/helm/v4)
build_helm() {
	if [ -x "$bin/$helm3" ] && [ -x "$bin/$helm4" ] && [ "$(cat "$bin/.helm-stamp" 2>/dev/null)" = "$stamp" ]; then
		echo "$helm3 $helm4 in bin/ current"
	else
		echo "building $helm3 and $helm4 into bin/"
		local start=$SECONDS
		# Two builds, since both commands are named helm.
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/$helm4" helm.sh/helm/v4/cmd/helm
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/$helm3" helm.sh/helm/v3/cmd/helm
		echo "$stamp" > "$bin/.helm-stamp"
		echo "built in $((SECONDS - start))s"
	fi
	ln -sf "$helm4" "$bin/helm"
	ln -sf "$helm3" "$bin/helm3"
}

k8s_version=$(version k8s.io/kubernetes)
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

build_kubernetes() {
	local binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
	local packages=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
	local current=true
	for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || current=false; done
	if $current && [ "$(cat "$bin/.tools-stamp" 2>/dev/null)" = "$stamp" ]; then
		echo "${binaries[*]} $k8s_version in bin/ current"
		return
	fi
	echo "building ${binaries[*]} $k8s_version into bin/ (a cold build takes about ten minutes)"
	local start=$SECONDS
	# One go build for the Kubernetes binaries so they share compiled packages.
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/" "${packages[@]}"
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
	echo "$stamp" > "$bin/.tools-stamp"
	echo "built in $((SECONDS - start))s"
}

case "${1:-all}" in
helm) build_helm ;;
all)
	build_kubernetes
	build_helm
	;;
*)
	echo "usage: $0 [helm]" >&2
	exit 2
	;;
esac
