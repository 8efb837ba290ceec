# The code location as a gRPC server, for a deployment where the webserver and daemon run
# elsewhere (see deploy/dagster.postgres.yaml). Dependencies and project in two layers, so a code
# change does not reinstall the world.
FROM python:3.11-slim

ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PYTHONUNBUFFERED=1
RUN pip install --no-cache-dir "uv>=0.13,<0.14"

WORKDIR /opt/dagster/app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY README.md workspace.yaml dagster.yaml ./
COPY dataeng_assets ./dataeng_assets
RUN uv sync --frozen --no-dev

ENV PATH="/opt/dagster/app/.venv/bin:${PATH}" \
    DAGSTER_HOME=/opt/dagster/home \
    DATAENG_DATA_DIR=/opt/dagster/data
RUN mkdir -p "$DAGSTER_HOME" "$DATAENG_DATA_DIR" && cp dagster.yaml "$DAGSTER_HOME/"

# Inside the container's own network namespace the server must accept the webserver's connections;
# publish the port on the host's loopback only (docker run -p 127.0.0.1:4000:4000 ...).
EXPOSE 4000
CMD ["dagster", "api", "grpc", "--module-name", "dataeng_assets.definitions", "--host", "0.0.0.0", "--port", "4000"]
