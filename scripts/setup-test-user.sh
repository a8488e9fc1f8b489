#!/usr/bin/env bash
# The unprivileged user the least-privilege tests run shell-executor jobs as (`runnel run --user
# runnel-test-job`): a system user with a home and bash, as the Debian package's `runnel` user.
# Idempotent. Run as root.
set -euo pipefail
user=runnel-test-job
if getent passwd "$user" >/dev/null; then
  echo "user $user exists"
else
  useradd --system --user-group --create-home --home-dir "/var/lib/$user" --skel /dev/null \
    --shell /bin/bash --comment 'runnel test job user' "$user"
  echo "created user $user"
fi
