# syntax=docker/dockerfile:1
#
# The snapshotter sidecar (cmd/snapshotter) and, for docker-compose.yml, the
# snapshotting example (examples/snapshotting):
#
#   docker build -t snaplog/snapshotter .                    # the sidecar: the last stage
#   docker build --target example -t snaplog/example .       # the example
#
# Both are static binaries (CGO_ENABLED=0) on a distroless base, run as its
# non-root user nonroot (uid 65532). Distroless has no shell and no curl: the
# sidecar's HEALTHCHECK runs the binary's own `healthcheck` command, which
# asks its /healthz.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
# Only the packages the two binaries are built from. (.dockerignore keeps a
# local broker's data, .kafka/, out of the build context.)
COPY aggregate/ aggregate/
COPY cmd/ cmd/
COPY examples/ examples/
COPY internal/ internal/
COPY log/ log/
COPY schemas/ schemas/
COPY snapshots/ snapshots/
COPY snapshotter/ snapshotter/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/snapshotter ./cmd/snapshotter && \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/snapshotting ./examples/snapshotting

# The example: runs the seed's snapshotting scenarios, for instance on the
# compose file's broker with `-brokers kafka:9092`, or with
# `-prefix snaplog. -feed n` saves n orders for the sidecar to snapshot.
FROM gcr.io/distroless/static-debian12:nonroot AS example
COPY --from=build /out/snapshotting /snapshotting
USER nonroot:nonroot
ENTRYPOINT ["/snapshotting"]

# The sidecar. Configure it with the SNAPLOG_* environment variables (see
# `snapshotter -h`); SNAPLOG_BROKERS is required. It stops cleanly on
# SIGTERM: give it a stop grace period of at least 30s.
FROM gcr.io/distroless/static-debian12:nonroot AS snapshotter
COPY --from=build /out/snapshotter /snapshotter
USER nonroot:nonroot
ENV SNAPLOG_HTTP_ADDR=:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 CMD ["/snapshotter", "healthcheck"]
ENTRYPOINT ["/snapshotter"]
