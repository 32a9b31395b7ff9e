# Shared helpers for the infra/setup install scripts; sourced, not run.

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
