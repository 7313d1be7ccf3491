# Builds one of the project's binaries into a small image (docker-compose.yaml passes BIN:
# anineplus-registry, anineplus-schemas, anineplus-api, anineplus-indexer, anineplus-logs,
# anineplus-analytics, anineplus-console). The builder
# stage does not depend on BIN, so it compiles the whole workspace once for every image;
# each service image copies its binary. .dockerignore keeps target/, .stack/ and
# node_modules/ out of the context.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --workspace --bins && \
    mkdir -p /out && find target/release -maxdepth 1 -type f -executable -exec cp {} /out/ \;

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/*
# The log archive's folder (a volume in docker-compose.yaml), writable by the service.
RUN mkdir -p /var/lib/anineplus/logs-archive && chown -R nobody /var/lib/anineplus
ARG BIN
COPY --from=build /out/${BIN} /usr/local/bin/service
USER nobody
ENTRYPOINT ["/usr/local/bin/service"]
