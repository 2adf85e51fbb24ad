# cronhook: a multi-stage build. The runtime image holds the binary, CA certificates and a
# non-root user; nothing else.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cronhook --bin cronhook \
    && strip target/release/cronhook

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/cronhook --create-home cronhook
COPY --from=build /src/target/release/cronhook /usr/local/bin/cronhook
USER cronhook
WORKDIR /var/lib/cronhook
ENV CRONHOOK_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/cronhook/cronhook.db
EXPOSE 8080
ENTRYPOINT ["cronhook"]
CMD ["serve"]
