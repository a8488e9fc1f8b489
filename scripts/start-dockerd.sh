#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock, for runnel's docker executor tests.
#
# Installs docker.io from apt if dockerd is missing, starts dockerd in the background if none
# answers, and waits until it does. Idempotent, and safe to run twice at once (a lock file): when a
# dockerd process already exists it waits for that one instead of starting another. Run as root.
#
#   DOCKERD_LOG=/var/log/runnel-dockerd.log   where dockerd writes
#   DOCKERD_ARGS="--flag ..."                 extra dockerd flags
#
# Never start a second dockerd in this machine's own network namespace, and never with
# `--bridge=none` there: it deletes the running daemon's docker0 bridge, and every `docker run`
# then fails with "could not find bridge docker0". A test daemon of its own belongs in separate
# mount, network and PID namespaces (`unshare -mnpf --mount-proc`), with its own --data-root,
# --exec-root, --pidfile and -H socket.
set -euo pipefail
log=${DOCKERD_LOG:-/var/log/runnel-dockerd.log}
pidfile=/var/run/docker.pid

answering() { docker info >/dev/null 2>&1; }
# A killed process stays a zombie until PID 1 reaps it (lazily on this machine): not alive.
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ -n $st && $st != Z* ]]; }
server_version() { docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'; }

if [[ " ${DOCKERD_ARGS:-} " == *" --bridge=none "* || " ${DOCKERD_ARGS:-} " == *" --bridge none "* ]]; then
  echo "refusing DOCKERD_ARGS with --bridge=none in the host network namespace (see the header)" >&2
  exit 2
fi

if answering; then
  echo "dockerd already answering (server $(server_version))"
  exit 0
fi

if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
  echo "installing docker.io from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

# One starter at a time: a second caller waits here, then finds the first one's daemon.
exec 9>/var/run/runnel-dockerd.lock
flock 9

if answering; then
  echo "dockerd already answering (server $(server_version))"
  exit 0
fi

pid=
if [[ -s $pidfile ]] && alive "$(cat "$pidfile")"; then
  pid=$(cat "$pidfile")              # started but not answering yet: wait for it
else
  # A dockerd without the pid file in this network namespace: never start a second one beside it.
  # (A test daemon in namespaces of its own does not count: it does not serve this socket.)
  netns=$(readlink /proc/self/ns/net)
  for p in $(pgrep -x dockerd || true); do
    if alive "$p" && [[ $(readlink "/proc/$p/ns/net" 2>/dev/null) == "$netns" ]]; then pid=$p; break; fi
  done
fi
if [[ -n $pid ]]; then
  echo "a dockerd (pid $pid) is starting; waiting for it"
else
  rm -f "$pidfile"                   # a stale pid file makes dockerd refuse to start
  # setsid: a session and process group of its own, so killing the caller's group or session
  # (a tool's job, `timeout`, a test harness) does not take the daemon down with it.
  # shellcheck disable=SC2086  # DOCKERD_ARGS is a list of flags
  nohup setsid dockerd ${DOCKERD_ARGS:-} >>"$log" 2>&1 </dev/null 9>&- &  # 9>&-: the daemon must not hold the lock
  pid=$!
  echo "started dockerd (pid $pid, log $log)"
fi

for _ in $(seq 240); do
  if answering; then
    echo "dockerd running (pid $pid, server $(server_version), log $log)"
    exit 0
  fi
  alive "$pid" || break
  sleep 0.5
done
echo "dockerd did not come up; last lines of $log:" >&2
tail -20 "$log" >&2 || true
exit 1
