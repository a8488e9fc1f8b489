#!/usr/bin/env bash
# runnel's whole test suite: formatting, lints, every crate's tests and, when the conformance corpus
# is checked out beside the repository (../shared/conformance), the conformance harness against the
# built binary (a failed case is fine only when docs/divergences.md lists it). Every step runs even
# when an earlier one failed; the exit code is non-zero when any failed. The machine set-up (Docker
# engine, test images, sshd) is .ci/run's job; see README.md.
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
    -h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# Run the conformance harness with a JSON report, then judge the report: the step fails only when
# a case failed that docs/divergences.md does not list (lines "- `case-id`: ..."). It prints the
# pass count, the listed divergences that failed as expected, and listed ones that now pass (so
# the list stays honest).
conformance() {
  local report=${CARGO_TARGET_DIR:-$repo/target}/conformance-report.json rc=0
  rm -f "$report"
  python3 "$conformance_dir/harness.py" \
    --args-style runnel --format json --cmd "$(printf '%q' "$bin") exec --json {args}" --extra \
    --jobs 2 --timeout 120 --report "$report" >"$report.log" 2>&1 || rc=$?
  # The harness's own closing "N passed, M failed" line is left out: listed divergences fail by
  # design, and the verdict below is the one that counts.
  grep -Ev '^[0-9]+ passed, [0-9]+ failed' "$report.log" || true
  if [[ ! -f $report ]]; then
    echo "the harness wrote no report (exit code $rc)" >&2
    return 1
  fi
  python3 - "$report" "$repo/docs/divergences.md" <<'PY'
import json, re, sys

report = json.load(open(sys.argv[1]))
listed = []
for line in open(sys.argv[2], encoding="utf-8"):
    m = re.match(r"- `([^`]+)`", line)
    if m:
        listed.append(m.group(1))
cases = {c["id"]: c for c in report["cases"]}
failed = [i for i, c in cases.items() if not c["ok"]]
expected = [i for i in failed if i in listed]
unexpected = [i for i in failed if i not in listed]
now_pass = [i for i in listed if i in cases and cases[i]["ok"]]
unknown = [i for i in listed if i not in cases]

print(f"conformance: {report['passed']}/{len(cases)} cases passed; "
      f"{len(expected)} failed as listed in docs/divergences.md, {len(unexpected)} unexpected")
for i in expected:
    print(f"  divergence (fails as expected): {i}")
for i in now_pass:
    print(f"  listed divergence now PASSES, update docs/divergences.md: {i}")
for i in unknown:
    print(f"  listed divergence is not a case of this run: {i}")
for i in unexpected:
    print(f"  FAILED (not a listed divergence): {i}")
    for failure in cases[i]["failures"]:
        print(f"      - {failure}")
sys.exit(1 if unexpected else 0)
PY
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

# The Debian package, built from the debug binary the tests just built (an LTO release build takes
# minutes on 2 cores; scripts/build-deb.sh without --binary builds one), installed, upgraded and
# purged in a clean Debian container (scripts/test-deb.sh).
debian_package() {
  local deb
  build_runnel || return 1
  deb=$(scripts/build-deb.sh --fast --binary "$bin" | tail -1) || return 1
  scripts/test-deb.sh "$deb"
}
bin=
step "debian package" debian_package

if ((conformance)) && [[ -f $conformance_dir/harness.py ]]; then
  bin=
  step "build runnel for conformance" build_runnel
  if [[ -n $bin ]]; then
    step "conformance ($conformance_dir)" conformance
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
