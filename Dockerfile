# The raftkube image docker-compose.yml builds: `raftkube` as the entry point.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kvstore kvstore
COPY api api
COPY raftkube raftkube
RUN pip install --no-cache-dir .
ENTRYPOINT ["raftkube"]
