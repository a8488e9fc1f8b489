#!/usr/bin/env bash
# The Debian package's install test: the built .deb goes into a clean Debian bookworm container
# (runnel-test/python:3.11 is `debootstrap --variant=minbase bookworm` plus python and git, see
# scripts/test-images.sh; nothing of runnel is in it) and is installed, checked, upgraded with a
# changed conffile and a registered config, and purged; then the container's file system must be
# what it was before the install. The unit is checked with `systemd-analyze verify` on this
# host, against the package's files (the container has no systemd).
#
#   scripts/test-deb.sh PATH/TO/runnel_VERSION_ARCH.deb
#
# Without Docker or systemd-analyze it prints SKIPPED and succeeds, unless CI=true (then it fails).
set -euo pipefail
deb=$(realpath "${1:?usage: scripts/test-deb.sh PATH/TO/runnel.deb}")
image=runnel-test/python:3.11
name="runnel-deb-test-$$"

skip() {
  if [[ ${CI:-} == true ]]; then
    echo "FAILED: $* (CI=true: the test must run)" >&2
    exit 1
  fi
  echo "SKIPPED: $*"
  exit 0
}
fail() { echo "FAILED: $*" >&2; exit 1; }
step() { printf -- '--- %s\n' "$*"; }

command -v systemd-analyze >/dev/null || skip "no systemd-analyze on this host (apt-get install systemd)"
docker info >/dev/null 2>&1 || skip "no Docker engine (scripts/start-dockerd.sh)"
docker image inspect "$image" >/dev/null 2>&1 || skip "no $image image (scripts/test-images.sh)"

work=$(mktemp -d "${TMPDIR:-/tmp}/runnel-deb-test.XXXXXX")
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step "systemd-analyze verify the packaged unit"
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$work/root/lib/systemd"
cp -r /lib/systemd/system/. "$work/root/lib/systemd/system/"   # the targets the unit names
verify=$(systemd-analyze verify --root="$work/root" /lib/systemd/system/runnel.service 2>&1) ||
  fail "systemd-analyze verify: $verify"
[[ -z $verify ]] || fail "systemd-analyze verify warns: $verify"
echo ok

step "start a clean Debian container"
docker run -d --name "$name" --label runnel-test=deb --network none \
  "$image" sleep infinity >/dev/null
docker cp "$deb" "$name:/tmp/runnel.deb"
inside() { docker exec "$name" bash -euo pipefail -c "$1"; }
# What is there before: every path but the ones that change by themselves or hold dpkg's logs.
snapshot() {
  inside "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /run \
      -o -path /var/lib/dpkg -o -path /var/log -o -path /var/cache/debconf -o -name '*-' \\) -prune \
      -o -print | sort; md5sum /etc/passwd /etc/group /etc/shadow /etc/gshadow"
}
snapshot >"$work/before"

step "install"
inside "dpkg -i /tmp/runnel.deb"
inside "runnel --version" | grep -q '^runnel ' || fail "runnel --version"
passwd=$(inside "getent passwd runnel")
[[ $passwd == runnel:x:*:*:*:/var/lib/runnel:/bin/bash ]] || fail "user: $passwd"
uid=$(cut -d: -f3 <<<"$passwd")
((uid < 1000)) || fail "runnel is not a system user (uid $uid)"
perms=$(inside "stat -c '%n %U:%G %a' /etc/runnel /var/lib/runnel /var/lib/runnel/builds /var/lib/runnel/cache \
  /usr/bin/runnel /lib/systemd/system/runnel.service /etc/default/runnel")
expected="/etc/runnel root:root 700
/var/lib/runnel runnel:runnel 750
/var/lib/runnel/builds runnel:runnel 750
/var/lib/runnel/cache runnel:runnel 750
/usr/bin/runnel root:root 755
/lib/systemd/system/runnel.service root:root 644
/etc/default/runnel root:root 644"
[[ $perms == "$expected" ]] || fail "permissions: $perms"
inside "ls -A /var/lib/runnel" | sort | tr '\n' ' ' | grep -qx 'builds cache ' || fail "skeleton files in the home"
inside "test -s /usr/share/man/man1/runnel.1.gz && test -s /usr/share/man/man1/runnel-install.1.gz"
inside "grep -q complete /usr/share/bash-completion/completions/runnel && test -s /usr/share/zsh/vendor-completions/_runnel"
inside "dpkg-query -W -f='\${Conffiles}' runnel" | grep -q /etc/default/runnel || fail "/etc/default/runnel is not a conffile"
inside "test ! -e /etc/runnel/config.toml" || fail "the package created a config"
# No systemd in the container: status answers from the unit file, and says the service is not running.
status=$(inside "runnel status 2>&1 || echo rc=\$?")
grep -q 'systemd is not running here' <<<"$status" || fail "status: $status"
grep -q '/lib/systemd/system/runnel.service' <<<"$status" || fail "status: $status"
grep -q 'rc=1' <<<"$status" || fail "status exit code: $status"
echo ok

step "upgrade keeps a changed conffile and the registered config"
inside "echo 'HTTPS_PROXY=http://proxy.invalid:3128' >>/etc/default/runnel"
inside "printf 'concurrent = 1\n[[runners]]\n  name = \"r\"\n  url = \"http://gitlab.invalid\"\n  token = \"glrt-secret\"\n  executor = \"shell\"\n' >/etc/runnel/config.toml && chmod 0644 /etc/runnel/config.toml"
mkdir "$work/v2"
dpkg-deb -R "$deb" "$work/v2/root"
sed -i 's/^Version: \(.*\)$/Version: \1+upgrade1/' "$work/v2/root/DEBIAN/control"
dpkg-deb --root-owner-group -Znone --build "$work/v2/root" "$work/v2/runnel-upgrade.deb" >/dev/null
docker cp "$work/v2/runnel-upgrade.deb" "$name:/tmp/runnel-upgrade.deb"
inside "dpkg -i /tmp/runnel-upgrade.deb"
inside "dpkg-query -W -f='\${Version}' runnel" | grep -q 'upgrade1$' || fail "not upgraded"
inside "grep -q '^HTTPS_PROXY=http://proxy.invalid:3128' /etc/default/runnel" || fail "the changed conffile was replaced"
inside "grep -q glrt-secret /etc/runnel/config.toml" || fail "the config was lost"
[[ $(inside "stat -c '%U %a' /etc/runnel/config.toml") == "root 600" ]] || fail "config.toml is not root 0600 after the upgrade"
echo ok

step "purge leaves nothing"
inside "dpkg --purge runnel"
snapshot >"$work/after"
diff -u "$work/before" "$work/after" || fail "the purge left the changes above"
inside "! getent passwd runnel && ! getent group runnel" || fail "the runnel user or group is left"
echo ok
echo "package install test passed: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
