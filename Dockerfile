# binlog2es container image.
#   docker build -t binlog2es .
#   docker run --rm \
#     -v "$PWD/binlog2es.toml:/etc/binlog2es/binlog2es.toml:ro" \
#     -v binlog2es-state:/var/lib/binlog2es \
#     binlog2es
# Any setting can be overridden with BINLOG2ES__SECTION__KEY (e.g. BINLOG2ES__MYSQL__URL);
# BINLOG2ES_CONFIG replaces the --config path when CMD is overridden without it.

ARG RUST_VERSION=1.95

# ---- toolchain + cargo-chef ------------------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# cargo-chef turns the manifests into a "recipe" so that building the
# dependencies is a layer of its own, redone only when Cargo.toml/Cargo.lock
# change (it also stubs bench/test targets, which a hand-made dummy main misses).
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---- build -------------------------------------------------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: cached until the recipe changes.
RUN cargo chef cook --release --locked --bin binlog2es --recipe-path recipe.json
COPY . .
# .git is not in the context: the revision comes in as a build argument (compose passes
# BINLOG2ES_GIT_REV from the environment), else `binlog2es version` says "unknown".
ARG BINLOG2ES_GIT_REV=""
ENV BINLOG2ES_GIT_REV=${BINLOG2ES_GIT_REV}
RUN cargo build --release --locked --bin binlog2es \
 && install -D -m 0755 target/release/binlog2es /out/binlog2es \
 && install -d -m 0700 /out/state

# ---- runtime -----------------------------------------------------------------
# distroless/cc: glibc + libgcc + ca-certificates, no shell or package manager
# (~25 MB). Debian 12 like the builder, so the glibc versions match.
FROM gcr.io/distroless/cc-debian12 AS runtime

LABEL org.opencontainers.image.title="binlog2es" \
      org.opencontainers.image.description="Keeps Elasticsearch indices equal to MySQL tables by tailing the binlog"

COPY --from=builder /out/binlog2es /usr/local/bin/binlog2es
# The checkpoint (and default dead-letter file) directory: the only path the
# process writes, owned by the fixed non-root uid. A new named volume mounted
# here inherits this ownership, so no chown step is needed at run time.
COPY --from=builder --chown=10001:10001 /out/state /var/lib/binlog2es

# Fixed numeric uid/gid (no passwd entry needed) so volume and host-side
# permissions are predictable; run the container with a read-only root fs.
USER 10001:10001
WORKDIR /var/lib/binlog2es
VOLUME ["/var/lib/binlog2es"]

# Metrics / health endpoint. Inside a container it must listen on 0.0.0.0
# ([http] listen = "0.0.0.0:9187", as docker/binlog2es.toml does), not the
# default 127.0.0.1, to be reachable through a published port.
EXPOSE 9187

# SIGTERM starts the drain (up to shutdown_timeout, 30 s by default): give the
# container a longer stop timeout, e.g. `docker stop -t 45` / stop_grace_period.
STOPSIGNAL SIGTERM
# No shell or curl in distroless: the binary asks its own /readyz (exit 0 when ready). It
# reads the same configuration for [http] listen and credentials (BINLOG2ES_CONFIG works too).
HEALTHCHECK --interval=15s --timeout=12s --start-period=60s --retries=4 \
  CMD ["binlog2es", "probe", "--config", "/etc/binlog2es/binlog2es.toml"]
ENTRYPOINT ["binlog2es"]
CMD ["run", "--config", "/etc/binlog2es/binlog2es.toml"]
