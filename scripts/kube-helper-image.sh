#!/usr/bin/env bash
# Build the helper image of runnel's Kubernetes executor offline: the runnel binary and the shared
# libraries it links, nothing else (~15 MB from a release build). The helper container only runs
# `runnel helper sleep|pack|unpack`; sources, caches and artifacts are handled by the runner and
# copied into the pod (see crates/runnel-kube/src/lib.rs), so the image needs no git or shell.
#
#   scripts/kube-helper-image.sh [BINARY] [TAG]
#
# BINARY defaults to target/release/runnel (else target/debug/runnel), TAG to runnel/helper:latest
# (the executor's default `helper_image`). Load the image into your cluster's registry or nodes
# and set `helper_image` in [runners.kubernetes] when it lives elsewhere. Idempotent: an image
# with the binary's digest as its label is kept (FORCE=1 rebuilds). Needs a Docker engine.
set -euo pipefail

cd "$(dirname "$0")/.."
bin=${1:-}
if [[ -z "$bin" ]]; then
  if [[ -x target/release/runnel ]]; then bin=target/release/runnel; else bin=target/debug/runnel; fi
fi
tag=${2:-runnel/helper:latest}
[[ -x "$bin" ]] || { echo "no runnel binary at $bin: build it first (cargo build --release -p runnel)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "docker is not answering: run scripts/start-dockerd.sh first" >&2; exit 1; }

digest=$(sha256sum "$bin" | cut -c1-16)
if [[ -z "${FORCE:-}" ]] && [[ "$(docker image inspect -f '{{index .Config.Labels "dev.runnel.binary"}}' "$tag" 2>/dev/null)" == "$digest" ]]; then
  echo "$tag exists (runnel $digest)"
  exit 0
fi

root=$(mktemp -d /var/tmp/runnel-helper.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
install -m 0755 "$bin" "$root/usr/local/bin/runnel"
# The dynamic loader and every library the binary links, at their paths.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
tar -C "$root" --numeric-owner -c . |
  docker import -c 'ENV PATH=/usr/local/bin' -c "LABEL dev.runnel.binary=$digest" \
    -c 'CMD ["runnel", "helper", "sleep"]' - "$tag" >/dev/null
# A smoke test: the binary runs in the image.
docker run --rm --network none "$tag" runnel helper pack / >/dev/null
echo "built $tag (runnel $digest)"
