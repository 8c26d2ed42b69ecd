# Multi-stage build: compile with the Rust toolchain, ship only the binary on a slim base as a
# non-root user. TLS is rustls (no OpenSSL); CA roots come from webpki, ca-certificates is kept
# for operators who mount custom tooling.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
# Cargo.toml names the bench targets: the manifest does not load without them.
COPY benches ./benches
RUN cargo build --release --locked --bin orgsso && strip target/release/orgsso

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/orgsso --create-home orgsso
COPY --from=build /src/target/release/orgsso /usr/local/bin/orgsso
USER orgsso
WORKDIR /var/lib/orgsso
ENV ORGSSO_LISTEN=0.0.0.0:8080 \
    ORGSSO_DATA_DIR=/var/lib/orgsso/data \
    ORGSSO_DATABASE_URL=sqlite:///var/lib/orgsso/data/orgsso.db?mode=rwc \
    ORGSSO_LOG_FORMAT=json
VOLUME ["/var/lib/orgsso/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/orgsso"]
CMD ["serve"]
