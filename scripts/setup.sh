#!/usr/bin/env bash
# Installs the Debian packages sid builds against, only those missing.
# Needs root (or sudo) the first time; a no-op once everything is there.
set -euo pipefail
packages=(build-essential libopenblas-openmp-dev libcjson-dev libpng-dev libjpeg-dev zlib1g-dev liblapacke-dev dataset-fashion-mnist
          libopenmpi-dev openmpi-bin jq qemu-user)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "setup: Debian packages present (${packages[*]})"
