# Sourced by scripts/test and scripts/demo: build and install the package (with its Cython extensions) into a
# venv. Usage: install_into_venv [EXTRAS]   e.g. install_into_venv "[test]"
PYTHON=${PYTHON:-python3}
VENV=${RDS_CSI_VENV:-.venv}

make_venv() {
  # Debian's python3 ships without venv/ensurepip until python3-venv is installed.
  if ! "$PYTHON" -m venv "$1" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "== installing python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$1"
    "$PYTHON" -m venv "$1"
  fi
}

install_into_venv() {
  echo "== venv ($VENV) and package build"
  make_venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # Non-editable on purpose: what runs is what a user would install. pip always rebuilds a local directory.
  "$VENV/bin/python" -m pip install -q ".${1:-}"
  "$VENV/bin/python" -c "import rds_csi._native as n; print('native backend:', n.BACKEND)"
}
