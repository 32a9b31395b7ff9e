#!/usr/bin/env bash
# Fetches ONNX Runtime's shared library from a pinned wheel on PyPI, checks the wheel's sha256
# and installs it where `autorma` looks for it by default:
#   CPU (default): the `onnxruntime` wheel, into
#     ${XDG_DATA_HOME:-$HOME/.local/share}/autorma/onnxruntime/<version>/libonnxruntime.so
#   --gpu: the `onnxruntime-gpu` wheel (CUDA 13 build), into
#     ${XDG_DATA_HOME:-$HOME/.local/share}/autorma/onnxruntime/<version>-cuda/
#     libonnxruntime.so, libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so;
#     an `autorma` built with `--features cuda` looks there. The CUDA library runs the CPU
#     provider too.
# `autorma` never downloads anything at run time; override the location with
# `--ort-library PATH`, `AUTORMA_ORT_LIBRARY` or `ort_library` in the config file.
#
# The CUDA provider also needs, from the machine (not installed here):
#   linked: libcuda.so.1 (NVIDIA driver), libcudart.so.13, libcublas.so.13, libcublasLt.so.13,
#           libcurand.so.10 (CUDA 13);
#   opened at run time: libcudnn.so.9 (cuDNN 9), libcufft.so.12 (only for FFT operators).
# They come from the NVIDIA driver + CUDA 13 toolkit + cuDNN 9, or from the `nvidia-*` pip wheels
# PyTorch brings (their `lib` folders go on LD_LIBRARY_PATH).
#
# Usage: infra/setup/onnxruntime.sh [--gpu] [DEST_DIR]
# Needs: a python3 with pip (the project's .venv is used when present), network to PyPI.
set -euo pipefail

ORT_VERSION="1.31.1"
# Only the C libraries of a wheel are used, so the local python version does not matter.
PLATFORM="manylinux_2_28_x86_64"

usage() {
  cat <<EOF
Usage: infra/setup/onnxruntime.sh [--gpu] [DEST_DIR]

Installs ONNX Runtime ${ORT_VERSION} from its pinned, sha256-checked PyPI wheel.
  (default)  CPU build (onnxruntime), into
             \${XDG_DATA_HOME:-\$HOME/.local/share}/autorma/onnxruntime/${ORT_VERSION}/
  --gpu      CUDA build (onnxruntime-gpu), into
             \${XDG_DATA_HOME:-\$HOME/.local/share}/autorma/onnxruntime/${ORT_VERSION}-cuda/
             for an autorma built with \`cargo build --release --features cuda\`; the machine
             also needs the CUDA 13 runtime libraries and cuDNN 9.
  DEST_DIR   install there instead.
EOF
}

variant="cpu"
dest_arg=""
for arg in "$@"; do
  case "${arg}" in
    -h | --help) usage; exit 0 ;;
    --gpu) variant="gpu" ;;
    -*) echo "onnxruntime.sh: unknown option ${arg}" >&2; usage >&2; exit 2 ;;
    *)
      if [[ -n "${dest_arg}" ]]; then
        echo "onnxruntime.sh: more than one DEST_DIR" >&2; usage >&2; exit 2
      fi
      dest_arg="${arg}"
      ;;
  esac
done

# What each variant installs: the wheel (name and sha256 pinned), the python tag pip asks for,
# the install folder, and FILES: "member inside the wheel:installed name".
if [[ "${variant}" == "gpu" ]]; then
  PACKAGE="onnxruntime-gpu"
  WHEEL="onnxruntime_gpu-${ORT_VERSION}-cp312-cp312-manylinux_2_28_x86_64.whl"
  WHEEL_SHA256="05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7"
  PYTHON_VERSION="3.12"
  FOLDER="${ORT_VERSION}-cuda"
  FILES=(
    "onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}:libonnxruntime.so"
    "onnxruntime/capi/libonnxruntime_providers_shared.so:libonnxruntime_providers_shared.so"
    "onnxruntime/capi/libonnxruntime_providers_cuda.so:libonnxruntime_providers_cuda.so"
  )
else
  PACKAGE="onnxruntime"
  WHEEL="onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
  WHEEL_SHA256="5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
  PYTHON_VERSION="3.11"
  FOLDER="${ORT_VERSION}"
  FILES=("onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}:libonnxruntime.so")
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="${dest_arg:-${XDG_DATA_HOME:-$HOME/.local/share}/autorma/onnxruntime/${FOLDER}}"
lib="${dest}/libonnxruntime.so"

# What the CUDA provider needs besides this install; printed after a --gpu run.
gpu_notes() {
  [[ "${variant}" == "gpu" ]] || return 0
  local where="it then loads ${lib} by default"
  [[ -z "${dest_arg}" ]] || where="point --ort-library or AUTORMA_ORT_LIBRARY at ${lib}"
  cat <<EOF
The CUDA provider also needs, from this machine (not installed by this script):
  - the NVIDIA driver: libcuda.so.1
  - CUDA 13 runtime libraries: libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10
    (and libcufft.so.12, only for FFT operators)
  - cuDNN 9: libcudnn.so.9
  from the NVIDIA driver + CUDA 13 toolkit + cuDNN 9, or from the nvidia-* pip wheels that
  PyTorch brings (put their lib folders on LD_LIBRARY_PATH).
Build autorma with \`cargo build --release --features cuda\`; ${where}.
Without those libraries \`--execution-provider cuda\` fails with an error; it never falls back to CPU.
EOF
}

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "onnxruntime.sh: only linux x86_64 is pinned; set AUTORMA_ORT_LIBRARY to your own libonnxruntime" >&2
  exit 1
fi

installed=1
for file in "${FILES[@]}"; do
  [[ -f "${dest}/${file#*:}" ]] || installed=0
done
if [[ "${installed}" == 1 && -f "${dest}/WHEEL_SHA256" && "$(cat "${dest}/WHEEL_SHA256")" == "${WHEEL_SHA256}" ]]; then
  echo "${PACKAGE} ${ORT_VERSION} already installed at ${lib}"
  gpu_notes
  exit 0
fi

python="${PYTHON:-}"
if [[ -z "${python}" ]]; then
  if [[ -x "${repo_root}/.venv/bin/python" ]]; then python="${repo_root}/.venv/bin/python"; else python="python3"; fi
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
"${python}" -m pip download "${PACKAGE}==${ORT_VERSION}" --no-deps --only-binary=:all: \
  --python-version "${PYTHON_VERSION}" --platform "${PLATFORM}" --dest "${work}" --quiet
if [[ ! -f "${work}/${WHEEL}" ]]; then
  echo "onnxruntime.sh: pip did not produce ${WHEEL}; got: $(ls "${work}")" >&2
  exit 1
fi
actual="$(sha256sum "${work}/${WHEEL}" | cut -d' ' -f1)"
if [[ "${actual}" != "${WHEEL_SHA256}" ]]; then
  echo "onnxruntime.sh: sha256 mismatch for ${WHEEL}: expected ${WHEEL_SHA256}, got ${actual}" >&2
  exit 1
fi

mkdir -p "${dest}"
# A wheel is a zip; python's zipfile is always there, `unzip` may not be. Each file is written
# under a temporary name and then renamed, so a concurrent reader never sees half a library.
"${python}" - "${work}/${WHEEL}" "${dest}" "${FILES[@]}" <<'PY'
import os, shutil, sys, zipfile
wheel, dest, *files = sys.argv[1:]
pairs = [f.split(":", 1) for f in files]
with zipfile.ZipFile(wheel) as z:
    for member, name in pairs:
        with z.open(member) as src, open(os.path.join(dest, name + ".tmp"), "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
for _, name in pairs:
    os.replace(os.path.join(dest, name + ".tmp"), os.path.join(dest, name))
PY
echo "${WHEEL_SHA256}" > "${dest}/WHEEL_SHA256.tmp"
mv -f "${dest}/WHEEL_SHA256.tmp" "${dest}/WHEEL_SHA256"
echo "installed ${PACKAGE} ${ORT_VERSION} at ${lib}"
gpu_notes
