#!/usr/bin/env bash
# Fetches ONNX Runtime's shared library from the pinned `onnxruntime` wheel on PyPI, checks the
# wheel's sha256 and installs `libonnxruntime.so` where `autorma` looks for it by default:
#   ${XDG_DATA_HOME:-$HOME/.local/share}/autorma/onnxruntime/<version>/libonnxruntime.so
# `autorma` never downloads anything at run time; override the location with
# `--ort-library PATH`, `AUTORMA_ORT_LIBRARY` or `ort_library` in the config file.
#
# Usage: infra/setup/onnxruntime.sh [DEST_DIR]
# Needs: a python3 with pip (the project's .venv is used when present), network to PyPI.
set -euo pipefail

ORT_VERSION="1.31.1"
WHEEL="onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256="5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
# The wheel is cp311 but only its C library is used, so the local python version does not matter.
PLATFORM="manylinux_2_28_x86_64"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="${1:-${XDG_DATA_HOME:-$HOME/.local/share}/autorma/onnxruntime/${ORT_VERSION}}"
lib="${dest}/libonnxruntime.so"

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "onnxruntime.sh: only linux x86_64 is pinned; set AUTORMA_ORT_LIBRARY to your own libonnxruntime" >&2
  exit 1
fi
if [[ -f "${lib}" && -f "${dest}/WHEEL_SHA256" && "$(cat "${dest}/WHEEL_SHA256")" == "${WHEEL_SHA256}" ]]; then
  echo "onnxruntime ${ORT_VERSION} already installed at ${lib}"
  exit 0
fi

python="${PYTHON:-}"
if [[ -z "${python}" ]]; then
  if [[ -x "${repo_root}/.venv/bin/python" ]]; then python="${repo_root}/.venv/bin/python"; else python="python3"; fi
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
"${python}" -m pip download "onnxruntime==${ORT_VERSION}" --no-deps --only-binary=:all: \
  --python-version 3.11 --platform "${PLATFORM}" --dest "${work}" --quiet
if [[ ! -f "${work}/${WHEEL}" ]]; then
  echo "onnxruntime.sh: pip did not produce ${WHEEL}; got: $(ls "${work}")" >&2
  exit 1
fi
actual="$(sha256sum "${work}/${WHEEL}" | cut -d' ' -f1)"
if [[ "${actual}" != "${WHEEL_SHA256}" ]]; then
  echo "onnxruntime.sh: sha256 mismatch for ${WHEEL}: expected ${WHEEL_SHA256}, got ${actual}" >&2
  exit 1
fi

# A wheel is a zip; python's zipfile is always there, `unzip` may not be.
"${python}" - "${work}/${WHEEL}" "${work}/lib" "${ORT_VERSION}" <<'PY'
import sys, zipfile
wheel, out, version = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    z.extract(f"onnxruntime/capi/libonnxruntime.so.{version}", out)
PY
mkdir -p "${dest}"
# Install via a temporary name and rename, so a concurrent reader never sees half a library.
cp "${work}/lib/onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" "${lib}.tmp"
mv -f "${lib}.tmp" "${lib}"
echo "${WHEEL_SHA256}" > "${dest}/WHEEL_SHA256"
echo "installed onnxruntime ${ORT_VERSION} at ${lib}"
