# Sourced by scripts/test: run independent passes to the end and report every failure at the end, rather than
# stop at the first one (a failing test must not hide what the later passes would have said).
# Usage: run_pass NAME COMMAND [ARGS...]   ...   finish_passes   (exits non-zero naming the passes that failed)

failed_passes=()

run_pass() {
  local name=$1 status
  shift
  echo "== $name"
  # The pass runs in a subshell with errexit of its own: a failing command ends that pass, not the script. (Run
  # as an `if` condition, bash would ignore errexit inside the pass, and a multi-command pass could not fail.)
  set +e
  (
    set -e
    "$@"
  )
  status=$?
  set -e
  if ((status != 0)); then
    echo "== FAILED: $name (exit status $status)"
    failed_passes+=("$name")
  fi
}

finish_passes() {
  if ((${#failed_passes[@]})); then
    echo "== ${#failed_passes[@]} pass(es) failed:"
    printf '   - %s\n' "${failed_passes[@]}"
    exit 1
  fi
  echo "== every pass succeeded"
}
