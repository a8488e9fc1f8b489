#!/usr/bin/env bash
# An S3-compatible server on 127.0.0.1:9310 for runnel's distributed cache tests and benchmark:
# moto's standalone server (moto[server] from PyPI) in a venv under $S3_DIR (default target/s3
# under the repository). Idempotent; needs python3 with venv (scripts/setup-python.sh).
#
# moto answers S3's REST API (path-style buckets, pre-signed V4 URLs, NoSuchKey/NoSuchBucket,
# server-side encryption headers) and keeps objects in memory or in temporary files. It does not
# check signatures, so tests cannot use it to see wrong credentials refused.
#
# Tests find it at $RUNNEL_TEST_S3 (default 127.0.0.1:9310) and create their own buckets.
# Stop it with: kill "$(cat target/s3/moto.pid)"
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=${S3_DIR:-$repo/target/s3}
port=${S3_PORT:-9310}
moto_version=5.2.6

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

probe() {
  python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=2).read()
PY
}

if [[ -s $dir/moto.pid ]] && kill -0 "$(cat "$dir/moto.pid")" 2>/dev/null; then
  if probe; then
    echo "moto S3 server already running on 127.0.0.1:$port (pid $(cat "$dir/moto.pid"))"
    exit 0
  fi
  echo "moto pid $(cat "$dir/moto.pid") does not answer on 127.0.0.1:$port" >&2
  exit 1
fi

if ! "$dir/venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
  echo "installing moto[server]==$moto_version from PyPI into $dir/venv"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$moto_version"
fi

# setsid: the server outlives this script and the shell that ran it.
setsid "$dir/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 </dev/null &
echo $! >"$dir/moto.pid"
for _ in $(seq 50); do
  if probe; then
    echo "moto S3 server running on 127.0.0.1:$port (pid $(cat "$dir/moto.pid"), log $dir/moto.log)"
    exit 0
  fi
  sleep 0.2
done
echo "moto did not answer on 127.0.0.1:$port; its log:" >&2
cat "$dir/moto.log" >&2
exit 1
