# kube-eip: the two commands a newcomer needs are `make dev` and `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Pinned tool versions. The control plane and Helm 3 and 4 are pinned in
# e2e/tools/go.mod: Helm 4 installs in the end-to-end tests and renders the
# plain manifests; the chart is linted with both majors.
GOLANGCI_LINT_VERSION ?= v2.15.0
CONTROLLER_GEN_VERSION ?= v0.23.0

BIN := $(CURDIR)/bin
# The repository's own helper programs build as the image does (no cgo,
# trimmed paths), so they reuse the packages its build already compiled.
GO_RUN := CGO_ENABLED=0 go run -trimpath
GO_TEST_FLAGS ?= -race -count=1
# The e2e suite starts a control plane; give it room on 2 cores.
E2E_TIMEOUT ?= 20m

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: build
build: ## build kube-eip's binaries into bin/
	go build -o $(BIN)/ ./cmd/...

# The image is built from the commit alone (no container engine), so the
# same commit yields the same digest: every file carries the commit time.
VERSION ?= $(shell git describe --tags --always --dirty)
REVISION ?= $(shell git rev-parse HEAD)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct)
IMAGE_REF ?= ghcr.io/kube-eip/kube-eip:dev
IMAGE_ARCH ?= $(shell go env GOARCH)
IMAGE_DIR := $(BIN)/image

.PHONY: image
image: ## build the OCI image without a container engine: bin/image/oci (OCI layout), bin/image/kube-eip.tar (docker load)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags "-s -w -X main.Version=$(VERSION)" -o $(IMAGE_DIR)/kube-eip ./cmd/kube-eip
	$(GO_RUN) ./hack/image -binary $(IMAGE_DIR)/kube-eip -out $(IMAGE_DIR) -ref $(IMAGE_REF) -arch $(IMAGE_ARCH) \
		-version $(VERSION) -revision $(REVISION) -created-unix $(SOURCE_DATE_EPOCH)

.PHONY: tools
# The cert-manager harness and controller-gen share no package with the
# control plane (other Kubernetes versions), so they build beside it at the
# lowest CPU priority, on what its module downloads and its links leave
# idle; their output follows.
tools: ## build the pinned control plane (etcd, kube-apiserver, scheduler, controller manager), kubectl, Helm 3 and 4, the cert-manager harness and controller-gen into bin/
	mkdir -p $(BIN)
	nice -n 19 $(MAKE) --no-print-directory cert-manager-harness $(CONTROLLER_GEN) >$(BIN)/tools-beside.log 2>&1 & beside=$$!; built=0; \
	bash hack/build-tools.sh || built=$$?; \
	wait $$beside || { cat $(BIN)/tools-beside.log; echo "building the cert-manager harness or controller-gen failed (above)"; exit 1; }; \
	cat $(BIN)/tools-beside.log; exit $$built

.PHONY: cert-manager-harness
cert-manager-harness: ## build the cert-manager harness into bin/
	bash hack/build-certmanager.sh

# bin/helm and bin/helm3 point at the versions e2e/tools pins; the tests
# run those names.
HELM3 := $(BIN)/helm3
HELM4 := $(BIN)/helm

.PHONY: helm
helm: ## build the pinned Helm 3 and Helm 4 into bin/ (bin/helm3, bin/helm), from e2e/tools as the control plane is
	bash hack/build-tools.sh helm

.PHONY: helm-lint
helm-lint: helm ## helm lint --strict of the chart with Helm 3 and Helm 4, with each certificate source
	@for h in $(HELM3) $(HELM4); do \
		for set in "" "certManager.enabled=false" "certManager.enabled=false,tls.secretName=my-tls,tls.caBundle=-----BEGIN CERTIFICATE-----" "metrics.serviceMonitor.enabled=true"; do \
			echo "$$(basename $$(readlink -f $$h)) lint --set clusterName=lint$${set:+,$$set}"; \
			$$h lint --strict charts/kube-eip --set "clusterName=lint$${set:+,$$set}" >/dev/null || { $$h lint --strict charts/kube-eip --set "clusterName=lint$${set:+,$$set}"; exit 1; }; \
		done; \
	done

CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
CRD_DIR := deploy/crds

.PHONY: generate
generate: $(CONTROLLER_GEN) helm ## regenerate deep-copy code, CRDs, roles, admission policies, the chart's generated files and docs, and the plain manifests from the code
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=$(CRD_DIR)
	$(CONTROLLER_GEN) rbac:roleName=kube-eip-binder paths=./binder/... output:rbac:artifacts:config=deploy/rbac/binder
	$(CONTROLLER_GEN) rbac:roleName=kube-eip-webhook paths=./webhook/... output:rbac:artifacts:config=deploy/rbac/webhook
	$(GO_RUN) ./hack/manifests -helm $(HELM4)
	$(GO_RUN) ./hack/chartdocs -chart charts/kube-eip README.md

.PHONY: verify-generate
GENERATED := api/v1alpha1/zz_generated.deepcopy.go $(CRD_DIR) deploy/rbac deploy/admission-policies.yaml deploy/manifests \
	charts/kube-eip/crds charts/kube-eip/files charts/kube-eip/README.md README.md

verify-generate: generate ## fail if generated files are not checked in as generated
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "generated files are stale; run make generate and commit:"; git status --short -- $(GENERATED); git diff -- $(GENERATED) | head -40; exit 1; fi

$(CONTROLLER_GEN):
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@

# The end-to-end suites' stacks write the API server's audit log of
# kube-eip's service accounts here; hack/rbaccheck then fails on a
# permission of the generated roles that no suite used, or one missing.
AUDIT_DIR := $(BIN)/audit
AUDIT_ENV := KUBE_EIP_AUDIT_DIR=$(AUDIT_DIR)

# The end-to-end suites run two at a time: built here once, kube-eip (as
# the suites are, -race under the race detector) and its image are not
# compiled by two suites side by side (stack.BinaryEnv, stack.ImageLayoutEnv).
E2E_BINARY := $(BIN)/e2e/kube-eip
E2E_ENV := KUBE_EIP_E2E_BINARY=$(E2E_BINARY) KUBE_EIP_E2E_IMAGE=$(IMAGE_DIR)/oci

.PHONY: e2e-builds
e2e-builds: image
	go build $(filter -race,$(GO_TEST_FLAGS)) -o $(E2E_BINARY) ./cmd/kube-eip

# The fuzz targets build instrumented copies of their whole dependency tree,
# which share nothing with the tests' race build: about 6 minutes of
# compiling on 2 cores when cold, and 40 seconds of fuzzing. make test runs
# them beside the tests at the lowest CPU priority, on the CPU the tests
# leave idle, and prints their output after the tests'.
FUZZ_LOG := $(BIN)/fuzz.log

.PHONY: test
test: tools verify-generate helm-lint e2e-builds ## unit and end-to-end tests, with bounded fuzzing beside them (what CI runs)
	rm -rf $(AUDIT_DIR)
	nice -n 19 $(MAKE) --no-print-directory fuzz >$(FUZZ_LOG) 2>&1 & fuzz=$$!; tests=0; fuzzed=0; \
	$(AUDIT_ENV) $(E2E_ENV) go test $(GO_TEST_FLAGS) -timeout $(E2E_TIMEOUT) ./... || tests=$$?; \
	wait $$fuzz || fuzzed=$$?; cat $(FUZZ_LOG); \
	[ $$tests -eq 0 ] || exit $$tests; \
	[ $$fuzzed -eq 0 ] || { echo "make fuzz failed (above)"; exit $$fuzzed; }
	$(GO_RUN) ./hack/rbaccheck -dir $(AUDIT_DIR)
	cd e2e/certmanager && go test -count=1 ./crds/

# Fuzz targets with their budgets, as execution counts: a -fuzztime given as
# a duration can fail spuriously on a loaded machine with "context deadline
# exceeded" (go.dev/issue/75804, fixed only in Go 1.27).
FUZZ_TARGETS := ./api:FuzzParseRequest:200000x ./webhook:FuzzHandler:15000x ./webhook/wait:FuzzParseLabels:200000x

.PHONY: fuzz
fuzz: ## run each fuzz target for a bounded number of executions
	@for t in $(FUZZ_TARGETS); do \
		IFS=: read -r pkg name budget <<< "$$t"; \
		echo "fuzzing $$name in $$pkg ($$budget)"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime "$$budget" -timeout 15m "$$pkg" || exit 1; \
	done

.PHONY: unit
unit: ## unit tests only (no control plane)
	go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v '/e2e$$')

.PHONY: e2e
e2e: tools e2e-builds ## end-to-end tests against the real control plane
	$(E2E_ENV) go test $(GO_TEST_FLAGS) -timeout $(E2E_TIMEOUT) -v ./e2e/...

.PHONY: bench
bench: tools ## benchmarks: admission over TLS, pod and Deployment creation with and without the webhooks, the EC2 emulator, the binder, a floating address's failover (about 17 minutes)
	go test -run '^$$' -bench . -benchtime 5s ./webhook/
	go test -run '^$$' -bench PodCreation -benchtime 600x ./e2e/
	go test -run '^$$' -bench DeploymentCreation -benchtime 300x ./e2e/
	go test -run '^$$' -bench SDKCalls -benchtime 3s ./e2e/ec2sim/
	go test -run '^$$' -bench SinglePod -benchtime 20x -timeout 20m ./e2e/bench/
	go test -run '^$$' -bench FloatingFailover -benchtime 5x -timeout 15m ./e2e/bench/
	go test -run '^$$' -bench 'Burst|Memory' -benchtime 1x -timeout 40m ./e2e/bench/

.PHONY: lint
lint: $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION) ## go vet, gofmt and golangci-lint
	go vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION) run ./...

$(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION):
	GOBIN=$(BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

.PHONY: dev
dev: helm ## start the local stack in the background, kube-eip installed with its chart as pods of its image, cert-manager beside it (idempotent)
	bash hack/build-tools.sh
	bash hack/build-certmanager.sh
	go build -o $(BIN)/ ./cmd/devstack ./cmd/kube-eip ./cmd/ec2sim
	$(MAKE) --no-print-directory image
	bash hack/dev.sh

.PHONY: dev-down
dev-down: ## stop the local stack; its state stays in .dev/
	bash hack/dev-down.sh

.PHONY: dev-clean
dev-clean: dev-down ## stop the local stack and delete its state
	rm -rf .dev
