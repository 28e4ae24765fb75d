# Multi-stage build of the guildhall binary.
#   docker build -t guildhall .     (or: docker-compose up --build)

FROM rust:1.95-bookworm AS builder
WORKDIR /src
ENV CARGO_TARGET_DIR=/src/target \
    CARGO_TERM_COLOR=never
COPY . .
RUN cargo build --release --locked --bin guildhall \
 && install -m 0755 /src/target/release/guildhall /usr/local/bin/guildhall

# The media worker behind `cargo lambda watch`, a local Lambda invoke API (docker-compose's
# media-lambda). In AWS, deploy lambda/ with `cargo lambda build --release` + `cargo lambda deploy`.
FROM builder AS media-lambda
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --break-system-packages cargo-lambda \
 && cargo build --locked --manifest-path lambda/Cargo.toml --bin guildhall-media
WORKDIR /src/lambda
EXPOSE 9000
CMD ["cargo", "lambda", "watch", "--ignore-changes", "-A", "0.0.0.0", "-P", "9000"]

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 guildhall \
 && useradd --system --uid 10001 --gid guildhall --home-dir /nonexistent --shell /usr/sbin/nologin guildhall
COPY --from=builder /usr/local/bin/guildhall /usr/local/bin/guildhall
USER guildhall:guildhall
ENV GUILDHALL_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["guildhall"]
CMD ["serve"]
