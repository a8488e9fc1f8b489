#!/usr/bin/env bash
# Kubernetes job start: `runnel exec --executor kubernetes` against the fake API server of
# crates/runnel-kube-fake (pods run on the local Docker engine) and `runnel exec --executor
# docker` on the same engine, interleaved in the same run: time from the start of `runnel exec`
# to the job's first script line, and to the end. Needs the engine and the test images
# (scripts/start-dockerd.sh, scripts/test-images.sh). See bench/kubernetes/bench.py.
#
#   bench/kubernetes/run.sh [--runs N] [--report out.json]
#   RUNNEL=target/debug/runnel FAKE=target/debug/runnel-kube-fake bench/kubernetes/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/common.sh
source "$here/../common.sh"

docker image inspect runnel-test/busybox:latest >/dev/null 2>&1 || {
  echo "runnel-test/busybox:latest is missing: run scripts/start-dockerd.sh and scripts/test-images.sh" >&2
  exit 1
}
runnel=$(runnel_bin)
if [[ -n "${FAKE:-}" ]]; then
  fake=$(realpath "$FAKE")
else
  (cd "$bench_repo" && cargo build --release -p runnel-kube-fake >&2)
  fake="${CARGO_TARGET_DIR:-$bench_repo/target}/release/runnel-kube-fake"
fi
helper=runnel-bench/kube-helper:latest
"$bench_repo/scripts/kube-helper-image.sh" "$runnel" "$helper" >&2
exec python3 "$here/bench.py" --runnel "$runnel" --fake "$fake" --helper-image "$helper" "$@"
