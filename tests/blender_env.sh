#!/usr/bin/env bash
# Create the separate venv that holds Blender as a Python module (bpy from PyPI) for the
# Blender add-on tests. bpy stays out of the main venv: it pins its own numpy and friends.
#   bash tests/blender_env.sh [VENV_DIR]     (default: <repo>/.venv-blender)
# Environment: MOODSIC_BPY_VERSION (default 5.0.1; 4.5.x works too), PYTHON (default python3.11).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo/.venv-blender}"
version="${MOODSIC_BPY_VERSION:-5.0.1}"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import importlib.metadata as m; import sys; sys.exit(m.version('bpy') != '$version')" 2>/dev/null; then
  echo "blender venv ready: $venv (bpy $version)"
  exit 0
fi
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "bpy==$version"
"$venv/bin/python" -c "import bpy; print('blender venv ready:', '$venv', bpy.app.version_string)"
