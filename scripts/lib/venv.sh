# Sourced by scripts/test and scripts/demo: build and install the package (with its Cython extensions) into a
# venv. Usage: install_into_venv [EXTRAS]   e.g. install_into_venv "[test]"
PYTHON=${PYTHON:-python3}
VENV=${RDS_CSI_VENV:-.venv}

install_into_venv() {
  echo "== venv ($VENV) and package build"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # Non-editable on purpose: what runs is what a user would install. pip always rebuilds a local directory.
  "$VENV/bin/python" -m pip install -q ".${1:-}"
  "$VENV/bin/python" -c "import rds_csi._native as n; print('native backend:', n.BACKEND)"
}
