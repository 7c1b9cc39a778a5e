#!/usr/bin/env bash
# A stand-in for the public base images (python:3.11-slim and haproxy:2.9), for machines that reach Debian's
# package mirror but no image registry: Debian 12 (minbase) with python3, venv, haproxy and iproute2, made with
# debootstrap from the mirror apt already uses and loaded with `docker import`. One image serves as both bases:
# the Dockerfile builds raftkube on it, and docker-compose.yml runs haproxy from it (both are on its PATH).
#
#   compose/standin-image.sh [TAG]      # as root; default tag raftkube-standin:bookworm; nothing to do if present
#
# `make compose-up` runs it by itself when the public images cannot be pulled.
set -euo pipefail
tag=${1:-raftkube-standin:bookworm}
packages=python3,python3-venv,haproxy,iproute2

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "stand-in image $tag: already here"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "standin-image.sh: debootstrap needs root; run it with sudo (or pull python:3.11-slim and haproxy:2.9)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "standin-image.sh: debootstrap is missing; install it: apt-get install debootstrap" >&2
  exit 1
fi

# The Debian mirror apt already uses (its main archive, not -security or -updates), else Debian's own.
mirror=$(apt-get indextargets --format '$(REPO_URI) $(CODENAME)' 'Created-By: Packages' 'Origin: Debian' 2>/dev/null |
         awk '$2 !~ /-/ {print $1; exit}')
mirror=${mirror:-http://deb.debian.org/debian/}

rootfs=$(mktemp -d /var/tmp/raftkube-rootfs.XXXXXX)
chmod 755 "$rootfs"  # it becomes the image's /, which every user must traverse
trap 'rm -rf "$rootfs"' EXIT
echo "stand-in image $tag: debootstrap of Debian 12 from $mirror (about a minute) ..."
started=$(date +%s)
if ! debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
  tail -20 "$rootfs.log" >&2
  echo "standin-image.sh: debootstrap failed (full log: $rootfs.log); is $mirror reachable?" >&2
  exit 1
fi
rm -f "$rootfs.log"
# What a container never needs: package caches and lists, documentation, translations.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "stand-in image $tag: made in $(( $(date +%s) - started ))s, $(docker image inspect -f '{{.Size}}' "$tag" |
     awk '{printf "%d MB", $1 / 1e6}')"
