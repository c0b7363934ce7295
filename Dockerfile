# The sidecar image: `docker build -t entitlements-sidecar .`
#   reader (next to an app):  docker run -e ENTITLEMENTS_SOURCE=lago ... entitlements-sidecar serve --roles reader
#   syncer (webhooks, Lago):  docker run -e ENTITLEMENTS_SOURCE=lago ... entitlements-sidecar serve --roles syncer
#   a catalog file:           docker run -v $PWD/examples:/catalog -e ENTITLEMENTS_CATALOG_PATH=/catalog/catalog.yaml ...
# There is no implicit source of truth: with none configured, `serve` exits with an error that says what to set.
# Non-root, no compilers, nothing written at run time (PYTHONDONTWRITEBYTECODE), so it runs with a
# read-only root filesystem. tests/integration/test_image_install.py runs the same two install scripts.

FROM python:3.11-slim AS wheels
WORKDIR /build
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
COPY scripts/image-build-wheels.sh ./scripts/
RUN sh scripts/image-build-wheels.sh /build /wheels

FROM python:3.11-slim
COPY --from=wheels /wheels /wheels
COPY scripts/image-install.sh /tmp/image-install.sh
RUN sh /tmp/image-install.sh /wheels /opt/entitlements-sidecar \
    && rm -rf /wheels /tmp/image-install.sh \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sidecar
ENV PATH=/opt/entitlements-sidecar/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENTITLEMENTS_GRPC_ADDRESS=0.0.0.0:50051 \
    ENTITLEMENTS_HTTP_ADDRESS=0.0.0.0:8080 \
    ENTITLEMENTS_LOG_FORMAT=json
USER 10001:10001
EXPOSE 50051 8080
ENTRYPOINT ["entitlements-sidecar"]
CMD ["serve"]
