# The `autorma` binary with ONNX Runtime's library and the shipped model package inside.
# Used by docker-compose.yml for `ingest`, `worker` and `serve`; nothing is downloaded at run
# time. Build: docker build -t autorma .
FROM rust:1.92-bookworm AS build
WORKDIR /src
COPY . .
# ONNX Runtime's library from the pinned wheel (sha256-checked), where autorma looks for it.
# cmake and nasm (infra/setup/build-tools.sh): the turbojpeg crate builds libjpeg-turbo.
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3-pip python3-venv \
    && infra/setup/build-tools.sh \
    && infra/setup/onnxruntime.sh /opt/onnxruntime \
    && cargo build --release --locked --bin autorma

FROM debian:bookworm-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/autorma --create-home autorma
COPY --from=build /src/target/release/autorma /usr/local/bin/autorma
COPY --from=build /opt/onnxruntime /opt/onnxruntime
COPY models/fashion5 /opt/autorma/models/fashion5
ENV AUTORMA_ORT_LIBRARY=/opt/onnxruntime/libonnxruntime.so \
    AUTORMA_MODEL=/opt/autorma/models/fashion5 \
    XDG_CACHE_HOME=/var/lib/autorma/cache
USER autorma
WORKDIR /var/lib/autorma
ENTRYPOINT ["autorma"]
CMD ["--help"]
