#!/usr/bin/env bash
# Exec benchmark: `runnel exec` (release build) against `gitlab-ci-local --shell-isolation` on an
# empty pipeline, 30 echo jobs over 3 stages and 5 `python3 -c 'print(1)'` jobs, in the same run,
# each timed run in a fresh git repository. Reports median wall time, median peak RSS and ratios,
# and runnel's per-job overhead. See bench/exec/bench.py for the details.
#
#   bench/exec/run.sh [--runs N] [--only runnel|gitlab-ci-local] [--report out.json] [--keep]
#   RUNNEL=/path/to/runnel PEER=/path/to/gitlab-ci-local bench/exec/run.sh   # skip build/install
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/common.sh
source "$here/../common.sh"

if ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "installing GNU time from apt (peak RSS)" >&2
  [[ -n "$(apt-get indextargets)" ]] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
only=
for ((i = 1; i <= $#; i++)); do
  [[ ${!i} == --only ]] && { j=$((i + 1)); only=${!j}; }
done
runnel_args=() peer_args=()
[[ $only == gitlab-ci-local ]] || runnel_args=(--runnel "$(runnel_bin)")
[[ $only == runnel ]] || peer_args=(--peer "$(peer_bin)")
exec python3 "$here/bench.py" "${runnel_args[@]}" "${peer_args[@]}" "$@"
