#!/usr/bin/env bash
# A private OpenSSH server on 127.0.0.1:2222 for runnel's ssh executor tests. Idempotent; run as root.
#
# Installs openssh-server from apt if sshd is missing, generates a host key and a client key into
# $SSHD_DIR (default target/sshd under the repository), and starts sshd with its own config: key
# login as root, and password login for the user `runnel-ssh` only (created here, with a random
# password kept in $SSHD_DIR/password). The system sshd, port 22 and /etc/ssh are left alone.
#
#   ssh -i target/sshd/id_ed25519 -p 2222 -o StrictHostKeyChecking=no root@127.0.0.1 true
#
# Tests find the key at $SSHD_DIR/id_ed25519, the host's public key at $SSHD_DIR/host_ed25519.pub,
# the password at $SSHD_DIR/password and the port in $SSHD_PORT (2222). Stop the server with:
# kill "$(cat target/sshd/sshd.pid)"
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=${SSHD_DIR:-$repo/target/sshd}
port=${SSHD_PORT:-2222}

if ! [[ -x /usr/sbin/sshd ]] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
  echo "installing openssh-server from apt"
  [[ -n "$(apt-get indextargets)" ]] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
fi

mkdir -p "$dir" /run/sshd
chmod 700 "$dir"
dir=$(cd "$dir" && pwd)
[[ -s $dir/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C runnel-test-host -f "$dir/host_ed25519"
[[ -s $dir/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C runnel-test-client -f "$dir/id_ed25519"
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"

# The password-login user (tests of `password` in [runners.ssh]).
if ! id runnel-ssh >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash runnel-ssh
fi
[[ -s $dir/password ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/password")
echo "runnel-ssh:$(cat "$dir/password")" | chpasswd

cat >"$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
MaxSessions 64
MaxStartups 64:30:128
Match User runnel-ssh
  PasswordAuthentication yes
CONF

probe() {
  ssh -i "$dir/id_ed25519" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=2 root@127.0.0.1 true 2>/dev/null
}

if [[ -s $dir/sshd.pid ]] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
  if probe; then
    echo "sshd already running on 127.0.0.1:$port (pid $(cat "$dir/sshd.pid"))"
    exit 0
  fi
  echo "sshd pid $(cat "$dir/sshd.pid") does not answer on 127.0.0.1:$port" >&2
  exit 1
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "127.0.0.1:$port is taken by another server (another checkout's sshd?); stop it or set SSHD_PORT" >&2
  exit 1
fi
rm -f "$dir/sshd.pid"
/usr/sbin/sshd -t -f "$dir/sshd_config"
/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
for _ in $(seq 50); do
  if probe; then
    echo "sshd running on 127.0.0.1:$port (pid $(cat "$dir/sshd.pid")); key: $dir/id_ed25519"
    exit 0
  fi
  if [[ -s $dir/sshd.pid ]] && ! kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
    break
  fi
  sleep 0.2
done
echo "sshd did not answer on 127.0.0.1:$port; last lines of $dir/sshd.log:" >&2
tail -20 "$dir/sshd.log" >&2 || true
exit 1
