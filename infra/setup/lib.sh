# Shared helpers for the infra/setup install scripts; sourced, not run.

# apt_install PACKAGE...: installs Debian packages (as root, or through sudo without a
# password prompt), refreshing the package lists once if they are stale (as on a fresh
# machine); otherwise says what to install by hand and stops.
apt_install() {
  local sudo=""
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
      echo "$(basename "$0"): needs Debian's $* and cannot install them (not root, no password-less sudo); install them and run again" >&2
      exit 1
    fi
    sudo="sudo -n"
  fi
  # `env` after sudo: sudo resets the environment.
  local install=(${sudo} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@")
  echo "installing Debian's $*"
  "${install[@]}" >/dev/null || { ${sudo} apt-get update -q >/dev/null && "${install[@]}" >/dev/null; }
}

# check_install_dest DEST SCRIPT ENTRY...: an earlier, unfinished or outdated install at DEST
# (only the ENTRY names) may be replaced; anything else there is left alone and the script stops.
check_install_dest() {
  local dest="$1" script="$2" entry name
  shift 2
  [[ -e "${dest}" && -n "$(ls -A "${dest}")" ]] || return 0
  for entry in "${dest}"/*; do
    name="$(basename "${entry}")"
    if [[ " $* " != *" ${name} "* ]]; then
      echo "${script}: ${dest} exists and holds more than an install ('${name}'); pick another DEST_DIR" >&2
      exit 1
    fi
  done
}

# begin_install DEST SCRIPT ENTRY...: checks DEST as check_install_dest does, then makes and
# prints a temporary folder beside it, to be renamed into place once complete, so a
# half-finished install is never found at DEST. The caller removes it on exit.
begin_install() {
  check_install_dest "$@"
  mkdir -p "$(dirname "$1")"
  mktemp -d "$1.tmp.XXXXXX"
}

# install_go_program SCRIPT DEST NAME VERSION BUILD...: builds the Go program NAME at VERSION
# into DEST/bin/NAME, with a VERSION marker beside bin/; returns at once when that version is
# already there. BUILD is a command (or function) that writes the binary to "${GOBIN}/NAME";
# it runs with GOBIN set to a temporary install beside DEST, which replaces DEST only once the
# binary is there. The default Go caches are reused, so a rebuild is quick once they are warm.
# Runs in a subshell: its EXIT trap (removing the temporary install) is not the caller's.
install_go_program() (
  set -euo pipefail
  script="$1" dest="$2" name="$3" version="$4"
  shift 4
  if [[ -x "${dest}/bin/${name}" && -f "${dest}/VERSION" && "$(cat "${dest}/VERSION")" == "${version}" ]]; then
    echo "${name} ${version} already installed at ${dest}/bin/${name}"
    exit 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "${script}: go is not on PATH; install Go (https://go.dev/dl/) and run again" >&2
    exit 1
  fi
  work="$(begin_install "${dest}" "${script}" bin VERSION)"
  trap 'rm -rf "${work}"' EXIT
  mkdir -p "${work}/bin"
  echo "building ${name} ${version} with $(go version | cut -d' ' -f3) (minutes when the Go caches are cold)..."
  if ! GOBIN="${work}/bin" "$@"; then
    echo "${script}: building ${name} ${version} failed (see above)" >&2
    exit 1
  fi
  if [[ ! -x "${work}/bin/${name}" ]]; then
    echo "${script}: the build did not produce ${work}/bin/${name}" >&2
    exit 1
  fi
  echo "${version}" >"${work}/VERSION"
  rm -rf "${dest}"
  mv "${work}" "${dest}"
  trap - EXIT
  echo "installed ${name} ${version} at ${dest}/bin/${name}"
)
