# Shared by bench/*/run.sh (sourced, not run).
# shellcheck shell=bash

bench_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# runnel_bin: the release binary, built unless RUNNEL= names one.
runnel_bin() {
  if [[ -n "${RUNNEL:-}" ]]; then
    realpath "$(command -v "$RUNNEL" || echo "$RUNNEL")"
    return
  fi
  (cd "$bench_repo" && cargo build --release -p runnel >&2)
  echo "${CARGO_TARGET_DIR:-$bench_repo/target}/release/runnel"
}

# peer_bin: gitlab-ci-local, installed into target/peer/ unless PEER= names one.
peer_bin() {
  if [[ -n "${PEER:-}" ]]; then
    realpath "$(command -v "$PEER" || echo "$PEER")"
    return
  fi
  "$bench_repo/scripts/install-peer.sh" | tail -1
}

# make_git_repo DIR: commit DIR's files as a repository both tools accept (branch main, remote
# origin with origin/HEAD, fixed author and date).
make_git_repo() {
  local dir=$1
  (
    cd "$dir" || exit 1
    export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench \
      GIT_COMMITTER_EMAIL=bench@example.com GIT_AUTHOR_DATE=2020-01-05T00:00:00Z \
      GIT_COMMITTER_DATE=2020-01-05T00:00:00Z
    git init -q -b main
    git config commit.gpgsign false
    git remote add origin git@gitlab.com:bench/pipeline.git
    git add -A
    git commit -q --allow-empty -m "bench pipeline"
    git update-ref refs/remotes/origin/main HEAD
    git symbolic-ref refs/remotes/origin/HEAD refs/remotes/origin/main
  )
}
