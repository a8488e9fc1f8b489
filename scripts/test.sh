#!/usr/bin/env bash
# runnel's whole test suite: formatting, lints, every crate's tests and, when the conformance corpus
# is checked out beside the repository (../shared/conformance), the conformance harness against the
# built binary. Every step runs even when an earlier one failed; the exit code is non-zero when any
# failed. The machine set-up (Docker engine, test images, sshd) is .ci/run's job; see README.md.
#
#   scripts/test.sh                      everything
#   scripts/test.sh --no-conformance     without the conformance harness
#   CONFORMANCE_DIR=/path/to/conformance scripts/test.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

conformance=1
for arg in "$@"; do
  case $arg in
    --no-conformance) conformance=0 ;;
    -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
conformance_dir=${CONFORMANCE_DIR:-$repo/../shared/conformance}

# Print the path of the `runnel` binary from cargo's JSON messages on stdin.
runnel_from_cargo_json() {
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target", {})
    if (m.get("reason") == "compiler-artifact" and t.get("name") == "runnel" and "bin" in t.get("kind", [])
            and not m["profile"]["test"] and m.get("executable")):
        print(m["executable"])
'
}

# Build the debug `runnel` binary and set $bin. `cargo test --no-run` is the build nextest just did
# (same features, so a no-op after it), and it builds the binary for crates/runnel's integration
# tests; `cargo build -p runnel` (other feature set: slower) only when that yields none.
build_runnel() {
  bin=$(cargo test --workspace --no-run --message-format json-render-diagnostics | runnel_from_cargo_json | tail -1)
  if [[ -z $bin ]]; then
    bin=$(cargo build -p runnel --message-format json-render-diagnostics | runnel_from_cargo_json | tail -1)
  fi
  [[ -n $bin && -x $bin ]] || { echo "no runnel binary came out of the build" >&2; return 1; }
  echo "runnel binary: $bin"
}

failed=()
section() { printf '\n\033[1m=== %s ===\033[0m\n' "$*"; }
step() {   # step NAME COMMAND...: run it, remember a failure, go on
  local name=$1 start=$SECONDS rc=0
  shift
  section "$name"
  printf '$'; printf ' %q' "$@"; echo
  "$@" || rc=$?
  if ((rc == 0)); then
    echo "--- $name: ok ($((SECONDS - start)) s)"
  else
    echo "--- $name: FAILED with exit code $rc ($((SECONDS - start)) s)"
    failed+=("$name")
  fi
}

step "cargo fmt" cargo fmt --all --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo nextest" cargo nextest run --workspace --profile ci

if ((conformance)) && [[ -f $conformance_dir/harness.py ]]; then
  bin=
  step "build runnel for conformance" build_runnel
  if [[ -n $bin ]]; then
    step "conformance ($conformance_dir)" python3 "$conformance_dir/harness.py" \
      --args-style runnel --format json --cmd "$(printf '%q' "$bin") exec --json {args}" --extra \
      --jobs 2 --timeout 120 --report "${CARGO_TARGET_DIR:-$repo/target}/conformance-report.json"
  fi
elif ((conformance)); then
  section "conformance"
  echo "skipped: no harness at $conformance_dir/harness.py"
fi

section "summary"
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all steps passed"
