#!/usr/bin/env bash
# Installs what building `autorma` needs besides Rust: cmake and nasm, with which the
# `turbojpeg` crate builds libjpeg-turbo (the JPEG decoder the training code's Pillow uses)
# from its bundled source. Debian's packages; nothing to do when both are there.
# Usage: infra/setup/build-tools.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
for tool in cmake nasm; do
  command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  apt_install "${missing[@]}"
fi
cmake_version="$(cmake --version)"
echo "build tools: ${cmake_version%%$'\n'*}, $(nasm -v)"
