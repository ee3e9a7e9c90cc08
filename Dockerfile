# Switchyard in a small image: built with the Rust toolchain, run on Debian slim as an
# unprivileged user. Migrations, templates and static files are inside the binary.
#   docker build -t switchyard .
#   docker run -p 8080:8080 -e DATABASE_URL=postgres://… -e SWITCHYARD_SECRET_KEY=… switchyard

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchyard \
    && cp target/release/switchyard /usr/local/bin/switchyard

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin switchyard
COPY --from=build /usr/local/bin/switchyard /usr/local/bin/switchyard
USER 10001
ENV SWITCHYARD_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["switchyard"]
CMD ["serve"]
