#!/usr/bin/env bash
# Set up everything Moodsic needs on a fresh Debian machine with Python 3.11:
# system tools (ffmpeg, espeak-ng, melt) through apt when missing, and a virtual
# environment in .venv with the project installed editable plus its test and Ray extras.
#   bash .ci/setup.sh                 engine, CLI and tests
#   bash .ci/setup.sh --with-blender  also the bpy venv the Blender add-on tests use
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v melt >/dev/null 2>&1 || missing+=(melt)
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)  # FCPXML DTD checks in the tests
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || missing+=(libportaudio2)  # moodsic live: sound card
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,ray]"
.venv/bin/moodsic --version

if [ "${1:-}" = "--with-blender" ]; then
  bash tests/blender_env.sh "$repo/.venv-blender"
fi
