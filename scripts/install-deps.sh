#!/usr/bin/env bash
# Installs sdpal's build and test dependencies from Debian 12's packages (idempotent; needs root).
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config libpng-dev zlib1g-dev nlohmann-json3-dev libdnnl-dev
          libgtest-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
