# Multi-stage build of the guildhall binary.
#   docker build -t guildhall .     (or: docker-compose up --build)

FROM rust:1.95-bookworm AS builder
WORKDIR /src
ENV CARGO_TARGET_DIR=/src/target \
    CARGO_TERM_COLOR=never
COPY . .
RUN cargo build --release --locked --bin guildhall \
 && install -m 0755 /src/target/release/guildhall /usr/local/bin/guildhall

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
