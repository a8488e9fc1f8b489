#!/usr/bin/env bash
# Cache benchmark: push and restore of a ~1 GB, ~50,000-file venv-like tree of unpacked PyPI
# wheels through runnel's S3 cache (moto on loopback, scripts/start-s3.sh), runnel's local cache
# and plain `zip -r` / `unzip`, in the same run. Prints seconds, ratios and runnel's peak RSS.
#
#   bench/cache/run.sh [--format zip|tarzstd] [--level fastest|fast|default|slow|slowest] [--report out.json]
#     [--no-zip]        skip the zip -r / unzip baseline (quicker, for iterating)
#     [--local-first]   the local cache before S3 (the first push reads a cold tree)
#     [--tree DIR]      another tree (DIR/venv/...) instead of the prepared one
#   RUNNEL=/path/to/runnel bench/cache/run.sh      # skip the release build
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/common.sh
source "$here/../common.sh"

if ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "installing GNU time from apt (peak RSS)" >&2
  [[ -n "$(apt-get indextargets)" ]] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
command -v zip >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zip >/dev/null
"$bench_repo/scripts/start-s3.sh" >&2
"$here/prepare.sh" >&2
data=${BENCH_CACHE_DATA:-$here/.data}
mkdir -p "$data/work"
exec python3 "$here/bench.py" --runnel "$(runnel_bin)" --tree "$data/tree" --work "$data/work" "$@"
