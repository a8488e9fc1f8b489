#!/usr/bin/env bash
# Build the local Docker images runnel's tests and examples use. No image registry is reachable, so
# everything is made from Debian packages. Idempotent: an existing image is kept (FORCE=1 rebuilds).
# Needs a running engine (scripts/start-dockerd.sh). Run as root.
#
#   runnel-test/busybox:latest   busybox-static in an empty image: sh + coreutils (~2 MB); tests name
#                                it where a pipeline would say `alpine` (it has no apk, so it is not
#                                tagged alpine)
#   runnel-test/python:3.11      Debian bookworm (minbase) + python3 3.11, pip, venv, git, and the
#                                host's CA bundle (so pip reaches PyPI where the host does)
#   python:3.11-slim             the same image, so examples/python-app runs unchanged
#
# The Debian mirror is the one apt already uses here (override with MIRROR=http://host/debian).
set -euo pipefail

have() { [[ -z "${FORCE:-}" ]] && docker image inspect "$1" >/dev/null 2>&1; }
apt_lists() { [[ -n "$(apt-get indextargets)" ]] || apt-get update -qq; }

docker info >/dev/null 2>&1 || { echo "docker is not answering: run scripts/start-dockerd.sh first" >&2; exit 1; }
work=$(mktemp -d /var/tmp/runnel-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

build_busybox() {
  apt_lists
  (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root busybox-static)
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
  local root="$work/busybox" applet
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var/tmp,home}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cp "$work/bb/bin/busybox" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list-full); do   # bin/sh, usr/bin/env, sbin/ip, ...
    [[ -e "$root/$applet" ]] || ln -s /bin/busybox "$root/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -c . |
    docker import -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["sh"]' - runnel-test/busybox:latest >/dev/null
}

build_python() {
  apt_lists
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  if [[ -z "${MIRROR:-}" ]]; then   # the main (not -updates/-security) Debian repository apt uses
    # shellcheck disable=SC2016  # $(REPO_URI) is apt's format syntax, not the shell's
    MIRROR=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk '$2 !~ /-/ {print $1; exit}')
  fi
  [[ -n "$MIRROR" ]] || { echo "no Debian mirror found in apt's sources; set MIRROR=" >&2; exit 1; }
  local root="$work/python"
  echo "debootstrapping bookworm into $root (a minute or two)"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3,git,ca-certificates \
    bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # Like the Docker Hub image: pip may install system-wide; no apt lists, docs or host files.
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/{doc,man,info,locale}/* "$root"/var/log/*
  echo '# offline test image: no apt sources' >"$root/etc/apt/sources.list"
  # Trust what the host trusts: where the network inspects TLS, pip in a container reaches PyPI only
  # with the host's CA bundle (a superset of Debian's).
  if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  : >"$root/etc/resolv.conf"
  : >"$root/etc/hostname"
  tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
    docker import -c 'ENV LANG=C.UTF-8' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'CMD ["python3"]' - runnel-test/python:3.11 >/dev/null
}

if have runnel-test/busybox:latest; then
  echo "runnel-test/busybox:latest exists"
else
  build_busybox
  echo "built runnel-test/busybox:latest"
fi
if have runnel-test/python:3.11; then
  echo "runnel-test/python:3.11 exists"
else
  build_python
  echo "built runnel-test/python:3.11"
fi
docker tag runnel-test/python:3.11 python:3.11-slim

# A smoke test of each image: an image that imports but cannot run a shell is no use to the tests.
docker run --rm --network none runnel-test/busybox:latest sh -c 'echo busybox ok' >/dev/null
docker run --rm --network none python:3.11-slim sh -c 'python3 -m venv /tmp/v && git --version' >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E '^(runnel-test/|python:3.11-slim)'
