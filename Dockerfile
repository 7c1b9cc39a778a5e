# The raftkube image docker-compose.yml runs: masters and nodes, `raftkube` as the entry point, as a non-root user.
# BASE_IMAGE is any Debian-based image with python3 and its venv module: python:3.11-slim by default, or the
# stand-in compose/standin-image.sh makes where no image registry can be reached.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
# One layer (every layer is a full copy with Docker's vfs storage): the source is bind-mounted, not copied. pip
# trusts the CA bundle in the optional build secret pip_cert (a proxy's, say); it never stays in the image.
RUN --mount=type=bind,target=/src,rw --mount=type=secret,id=pip_cert \
    set -e; \
    if ! command -v ip >/dev/null; then \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 && rm -rf /var/lib/apt/lists/*; \
    fi; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    python3 -m venv /opt/raftkube; \
    /opt/raftkube/bin/pip install --quiet --no-cache-dir --disable-pip-version-check /src; \
    useradd --system --uid 10001 --user-group --home-dir /var/lib/raftkube --create-home raftkube; \
    install -d -o raftkube -g raftkube /data
ENV PATH=/opt/raftkube/bin:$PATH PYTHONUNBUFFERED=1
USER raftkube
ENTRYPOINT ["raftkube"]
