#!/usr/bin/env bash
# Lint benchmark: `runnel lint` (release build) against `gitlab-ci-local --list` on one generated
# pipeline of 1,000 jobs in 50 included files with 3-level `extends` chains (bench/lint/gen.py),
# both timed in the same run. Uses hyperfine when installed (apt-get install hyperfine), else
# bench/measure.py. Prints each tool's median wall time and the ratio.
#
#   bench/lint/run.sh [--runs N] [--jobs 1000] [--files 50]
#   RUNNEL=/path/to/runnel PEER=/path/to/gitlab-ci-local bench/lint/run.sh   # skip build/install
#   RUNNEL_LINT_ARGS="..."   extra arguments after `runnel lint`
#   BENCH_NO_HYPERFINE=1     time with bench/measure.py even when hyperfine is installed
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/common.sh
source "$here/../common.sh"

runs=10 jobs=1000 files=50
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--jobs N] [--files N]" >&2; exit 2 ;;
  esac
done

runnel=$(runnel_bin)
peer=$(peer_bin)
work=$(mktemp -d "${TMPDIR:-/tmp}/runnel-bench-lint.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
python3 "$here/gen.py" "$tree" --jobs "$jobs" --files "$files"
make_git_repo "$tree"
cd "$tree"

read -r -a lint_args <<<"${RUNNEL_LINT_ARGS:-}"
runnel_cmd=("$runnel" lint "${lint_args[@]}")
peer_cmd=("$peer" --list)

# One untimed run each: both must succeed, or their numbers mean nothing.
names=() cmds=()
if "${runnel_cmd[@]}" >"$work/runnel.out" 2>&1; then
  names+=(runnel) cmds+=("$(printf '%q ' "${runnel_cmd[@]}")")
else
  echo "runnel lint failed (exit $?), not timed; its output:" >&2
  head -20 "$work/runnel.out" >&2
fi
if "${peer_cmd[@]}" >"$work/peer.out" 2>&1; then
  names+=(gitlab-ci-local) cmds+=("$(printf '%q ' "${peer_cmd[@]}")")
  "$peer" --list-json >"$work/peer.json" 2>/dev/null
  echo "gitlab-ci-local lists $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$work/peer.json") jobs"
else
  echo "gitlab-ci-local --list failed (exit $?), not timed; its output:" >&2
  head -20 "$work/peer.out" >&2
fi
((${#names[@]})) || { echo "nothing to time" >&2; exit 1; }

results="$work/results.json"
if [[ -z "${BENCH_NO_HYPERFINE:-}" ]] && command -v hyperfine >/dev/null; then
  args=()
  for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
  hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/hyperfine.json" "${args[@]}"
  python3 - "$work/hyperfine.json" >"$results" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
print(json.dumps({r["command"]: {"median_wall_s": r["median"], "runs": len(r["times"])} for r in h["results"]}))
PY
else
  echo "timing with bench/measure.py (hyperfine not installed or BENCH_NO_HYPERFINE set)"
  {
    echo '{'
    for i in "${!names[@]}"; do
      read -r -a cmd <<<"${cmds[$i]}"
      ((i == 0)) || echo ','
      printf '"%s": ' "${names[$i]}"
      python3 "$here/../measure.py" --runs "$runs" --warmup 1 -- "${cmd[@]}"
    done
    echo '}'
  } >"$results"
fi

python3 - "$results" "$jobs" "$files" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"\nlint benchmark: {sys.argv[2]} jobs in {sys.argv[3]} included files")
for name, v in r.items():
    m = v["median_wall_s"]
    print(f"  {name:16s} median {m * 1000:9.1f} ms")
if "runnel" in r and "gitlab-ci-local" in r:
    ratio = r["gitlab-ci-local"]["median_wall_s"] / r["runnel"]["median_wall_s"]
    print(f"  gitlab-ci-local / runnel = {ratio:.1f}x")
PY
