# kube-eip's one image: `kube-eip webhook` and `kube-eip binder` in their
# Deployments, and `kube-eip wait` as the init container the webhook injects
# into pods.
# Build: docker build --build-arg VERSION=$(git describe --tags --always) -t ghcr.io/kube-eip/kube-eip:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY binder/ binder/
COPY certs/ certs/
COPY cmd/kube-eip/ cmd/kube-eip/
COPY internal/ internal/
COPY webhook/ webhook/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/kube-eip ./cmd/kube-eip

# Static, no shell, non-root: uid 65532 is also what the injected wait
# container runs as, so pods in restricted namespaces admit it.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kube-eip /kube-eip
USER 65532:65532
ENTRYPOINT ["/kube-eip"]
