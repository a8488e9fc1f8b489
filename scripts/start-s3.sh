#!/usr/bin/env bash
# An S3-compatible server on 127.0.0.1:9310 for runnel's distributed cache tests and benchmark:
# moto's standalone server (moto[server] from PyPI) in a venv under $S3_DIR (default target/s3
# under the repository). Idempotent; needs python3 with venv (scripts/setup-python.sh).
#
# moto answers S3's REST API (path-style buckets, pre-signed V4 URLs, NoSuchKey/NoSuchBucket,
# server-side encryption headers) and keeps objects in memory or in temporary files. It does not
# check signatures: its IAM mode (INITIAL_NO_AUTH_ACTION_COUNT) only reads the Authorization
# header and answers a pre-signed URL with 500, whatever its signature.
#
# So a second server checks credentials: s3rver (npm, node from apt if missing) on
# 127.0.0.1:9311 with the bucket `runnel-auth`, which knows the one access key `S3RVER` (secret
# `S3RVER`) and refuses any other with 403 InvalidAccessKeyId. It does not verify V4 signature
# values, so a wrong secret key with the right access key is not refused there either.
#
# So a third server checks signatures: s3s-fs (crates.io, `cargo install s3s-fs --features
# binary` into $S3_DIR/s3s-fs; about 3.5 minutes of compiling the first time) on 127.0.0.1:9312
# with the bucket `runnel-sigv4`, the access key `S3SFS` and the secret key `s3s-fs-secret`. It
# verifies V4 signatures, pre-signed URLs included: a wrong secret key gets 403
# SignatureDoesNotMatch, an unknown access key 403 NotSignedUp.
#
# Tests find them at $RUNNEL_TEST_S3 (default 127.0.0.1:9310; tests create their own buckets),
# $RUNNEL_TEST_S3_AUTH (default 127.0.0.1:9311) and $RUNNEL_TEST_S3_SIGV4 (default
# 127.0.0.1:9312).
# Stop them with:
#   kill "$(cat target/s3/moto.pid)" "$(cat target/s3/s3rver.pid)" "$(cat target/s3/s3s-fs.pid)"
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=${S3_DIR:-$repo/target/s3}
port=${S3_PORT:-9310}
auth_port=${S3_AUTH_PORT:-9311}
sigv4_port=${S3_SIGV4_PORT:-9312}
moto_version=5.2.6
s3rver_version=3.7.1
# 0.14 is the newest s3s-fs that builds with Rust 1.95 (0.17 needs 1.96).
s3s_fs_version=0.14.1

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

probe() {
  python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=2).read()
PY
}

start_moto() {
if [[ -s $dir/moto.pid ]] && kill -0 "$(cat "$dir/moto.pid")" 2>/dev/null; then
  if probe; then
    echo "moto S3 server already running on 127.0.0.1:$port (pid $(cat "$dir/moto.pid"))"
    return 0
  fi
  echo "moto pid $(cat "$dir/moto.pid") does not answer on 127.0.0.1:$port" >&2
  exit 1
fi
if probe; then
  echo "a moto S3 server (not started from $dir) already answers on 127.0.0.1:$port"
  return 0
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
    return 0
  fi
  sleep 0.2
done
echo "moto did not answer on 127.0.0.1:$port; its log:" >&2
cat "$dir/moto.log" >&2
exit 1
}

# The credential-checking server: it lists its bucket to an anonymous request.
auth_probe() {
  python3 - "$auth_port" <<'PY' 2>/dev/null
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2).read()
sys.exit(b"runnel-auth" not in body)
PY
}

start_s3rver() {
  if [[ -s $dir/s3rver.pid ]] && kill -0 "$(cat "$dir/s3rver.pid")" 2>/dev/null; then
    if auth_probe; then
      echo "s3rver already running on 127.0.0.1:$auth_port (pid $(cat "$dir/s3rver.pid"))"
      return 0
    fi
    echo "s3rver pid $(cat "$dir/s3rver.pid") does not answer on 127.0.0.1:$auth_port" >&2
    exit 1
  fi
  if auth_probe; then
    echo "an s3rver (not started from $dir) already answers on 127.0.0.1:$auth_port"
    return 0
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing nodejs and npm from apt"
    [[ -n "$(apt-get indextargets)" ]] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  local bin=$dir/s3rver/node_modules/s3rver/bin/s3rver.js
  if ! grep -q "\"version\": \"$s3rver_version\"" "$dir/s3rver/node_modules/s3rver/package.json" 2>/dev/null; then
    echo "installing s3rver@$s3rver_version from npm into $dir/s3rver"
    mkdir -p "$dir/s3rver"
    npm install -q --no-audit --no-fund --prefix "$dir/s3rver" "s3rver@$s3rver_version" >/dev/null
  fi
  rm -rf "$dir/s3rver-data"
  mkdir -p "$dir/s3rver-data"
  setsid node "$bin" -d "$dir/s3rver-data" -a 127.0.0.1 -p "$auth_port" --no-vhost-buckets \
    --configure-bucket runnel-auth >"$dir/s3rver.log" 2>&1 </dev/null &
  echo $! >"$dir/s3rver.pid"
  for _ in $(seq 50); do
    if auth_probe; then
      echo "s3rver running on 127.0.0.1:$auth_port (pid $(cat "$dir/s3rver.pid"), log $dir/s3rver.log)"
      return 0
    fi
    sleep 0.2
  done
  echo "s3rver did not answer on 127.0.0.1:$auth_port; its log:" >&2
  cat "$dir/s3rver.log" >&2
  exit 1
}

# The signature-checking server: it refuses an anonymous request with "Signature is required".
sigv4_probe() {
  python3 - "$sigv4_port" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2)
except urllib.error.HTTPError as e:
    sys.exit(not (e.code == 403 and b"Signature is required" in e.read()))
sys.exit(1)
PY
}

start_s3s_fs() {
  if [[ -s $dir/s3s-fs.pid ]] && kill -0 "$(cat "$dir/s3s-fs.pid")" 2>/dev/null; then
    if sigv4_probe; then
      echo "s3s-fs already running on 127.0.0.1:$sigv4_port (pid $(cat "$dir/s3s-fs.pid"))"
      return 0
    fi
    echo "s3s-fs pid $(cat "$dir/s3s-fs.pid") does not answer on 127.0.0.1:$sigv4_port" >&2
    exit 1
  fi
  if sigv4_probe; then
    echo "an s3s-fs (not started from $dir) already answers on 127.0.0.1:$sigv4_port"
    return 0
  fi
  # This version from $dir, or else from the PATH (`cargo install` puts it in ~/.cargo/bin).
  local bin=$dir/s3s-fs/bin/s3s-fs
  if [[ "$("$bin" --version 2>/dev/null)" != "s3s-fs $s3s_fs_version" ]]; then
    if [[ "$(s3s-fs --version 2>/dev/null)" == "s3s-fs $s3s_fs_version" ]]; then
      bin=$(command -v s3s-fs)
    else
      echo "installing s3s-fs@$s3s_fs_version from crates.io into $dir/s3s-fs (compiles for a few minutes)"
      cargo install -q --locked --features binary --root "$dir/s3s-fs" "s3s-fs@$s3s_fs_version"
    fi
  fi
  # A bucket is a directory of the data root.
  rm -rf "$dir/s3s-fs-data"
  mkdir -p "$dir/s3s-fs-data/runnel-sigv4"
  setsid "$bin" --host 127.0.0.1 --port "$sigv4_port" --access-key S3SFS \
    --secret-key s3s-fs-secret "$dir/s3s-fs-data" >"$dir/s3s-fs.log" 2>&1 </dev/null &
  echo $! >"$dir/s3s-fs.pid"
  for _ in $(seq 50); do
    if sigv4_probe; then
      echo "s3s-fs running on 127.0.0.1:$sigv4_port (pid $(cat "$dir/s3s-fs.pid"), log $dir/s3s-fs.log)"
      return 0
    fi
    sleep 0.2
  done
  echo "s3s-fs did not answer on 127.0.0.1:$sigv4_port; its log:" >&2
  cat "$dir/s3s-fs.log" >&2
  exit 1
}

start_moto
start_s3rver
start_s3s_fs
