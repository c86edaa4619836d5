# rerank-gateway: one worker per container, scaled with replicas (docs/deploy.md).
#   docker build -t rerank-gateway .
#   docker build --build-arg LOCAL_MODEL=1 -t rerank-gateway:local .   # with the embedded offline model
# The pip install and start commands are the ones tests/test_deploy.py runs in CI.
ARG PYTHON=python:3.11-slim-bookworm

FROM ${PYTHON} AS build
ARG LOCAL_MODEL=0
# llama.cpp is compiled only for the embedded model; the same flags as dev.sh (AVX2, not -march=native).
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
RUN if [ "$LOCAL_MODEL" = "1" ]; then \
        apt-get update && apt-get install -y --no-install-recommends build-essential cmake && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY gateway gateway
COPY prompts prompts
RUN python -m venv /opt/rerank-gateway \
    && if [ "$LOCAL_MODEL" = "1" ]; then SPEC=".[local]"; else SPEC="."; fi \
    && CMAKE_ARGS="$LLAMA_CMAKE_ARGS" /opt/rerank-gateway/bin/pip install --no-cache-dir --disable-pip-version-check -c constraints.txt "$SPEC"

FROM ${PYTHON}
COPY --from=build /opt/rerank-gateway /opt/rerank-gateway
COPY deploy/config.toml /etc/rerank-gateway/config.toml
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway
ENV PATH=/opt/rerank-gateway/bin:$PATH \
    RERANK_GATEWAY_CONFIG=/etc/rerank-gateway/config.toml \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
# SIGTERM drains (server.drain_seconds), then finishes in-flight requests (server.graceful_shutdown_seconds).
STOPSIGNAL SIGTERM
CMD ["rerank-gateway", "serve"]
