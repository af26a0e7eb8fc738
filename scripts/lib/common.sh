# Shell helpers shared by scripts/setup, scripts/test and scripts/demo. Source it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# Sets PIXFLOW_ROOT (the repository) and defines the functions below.
# shellcheck shell=bash

PIXFLOW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PIXFLOW_ROOT

# log MESSAGE...: a progress line on stderr, prefixed with the script's name.
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# die MESSAGE...: print the message and exit 1.
die() { log "error: $*"; exit 1; }

# as_root COMMAND...: run a command as root (directly, or through sudo when not root).
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root to run '$*' and sudo is not installed"
  fi
}

# pil_python: print a python3 that can import Pillow (Debian's python3-pil belongs to
# /usr/bin/python3; a python3 earlier on PATH, e.g. pyenv's, may lack it).
pil_python() {
  local candidate
  for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import PIL' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  die "no python3 with Pillow: run scripts/setup (python3-pil)"
}

# seconds_since START: whole seconds elapsed since START (a value of $SECONDS).
seconds_since() { echo $((SECONDS - $1)); }

# The gallery server is the nginx test fixture (tests/fixtures/nginx): tests and the demo share it.
# gallery_start STATE_DIR [PHOTOS_DIR]: start it serving PHOTOS_DIR (default: the sample photos),
# print its base URL. gallery_stop STATE_DIR: stop it (never fails).
gallery_start() {
  local state=$1 photos=${2:-}
  if [[ -n $photos ]]; then
    PIXFLOW_GALLERY_PHOTOS=$photos bash "$PIXFLOW_ROOT/tests/fixtures/nginx/start.sh" "$state" >&2
  else
    bash "$PIXFLOW_ROOT/tests/fixtures/nginx/start.sh" "$state" >&2
  fi || die "the gallery server did not start (state in $state)"
  cat "$state/base_url"
}

gallery_stop() { bash "$PIXFLOW_ROOT/tests/fixtures/nginx/stop.sh" "$1" || true; }
