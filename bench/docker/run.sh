#!/usr/bin/env bash
# Docker job overhead: `runnel exec --executor docker` (release build) for one job against a bare
# `docker run --rm` of the same image and command, interleaved in the same run; the shell
# executor on the same pipeline for reference. Needs the engine and the test images
# (scripts/start-dockerd.sh, scripts/test-images.sh). See bench/docker/bench.py.
#
#   bench/docker/run.sh [--runs N] [--report out.json]
#   RUNNEL=/path/to/runnel bench/docker/run.sh          # skip the release build
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/common.sh
source "$here/../common.sh"

docker image inspect runnel-test/busybox:latest >/dev/null 2>&1 || {
  echo "runnel-test/busybox:latest is missing: run scripts/start-dockerd.sh and scripts/test-images.sh" >&2
  exit 1
}
exec python3 "$here/bench.py" --runnel "$(runnel_bin)" "$@"
