#!/usr/bin/env bash
# Make the Dockerfile's base image locally when it is missing (Docker Hub cannot be reached here):
# a minimal Debian bookworm with python3 and python3-venv from Debian's packages, imported into
# podman under the tag the Dockerfile names. Skipped when that image already exists.
set -euo pipefail
cd "$(dirname "$0")/.."

base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
image="docker.io/library/${base}"
if podman image exists "$image"; then
    echo "Base image $image is already here: not rebuilt."
    exit 0
fi
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p var/deploy-check
rootfs=$(mktemp -d var/deploy-check/rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "Building $image with debootstrap (Debian bookworm, python3, python3-venv) from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" \
    >var/deploy-check/debootstrap.log 2>&1 || {
    tail -n 30 var/deploy-check/debootstrap.log
    exit 1
}
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$image"
podman run --rm "$image" python3 -c 'import sys, venv; print("base image python", sys.version.split()[0])'
