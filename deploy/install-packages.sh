#!/usr/bin/env bash
# Install the Debian packages that `make deploy-check` needs, only those missing (idempotent):
# podman and buildah to build and run the image (runc as their runtime), debootstrap to make the
# base image locally, git for the playbook's release archive.
set -euo pipefail

packages=(podman buildah runc debootstrap containernetworking-plugins git)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query --show --showformat='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "Debian packages present: ${packages[*]}"
    exit 0
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
