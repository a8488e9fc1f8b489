#!/usr/bin/env bash
# cleanup_exec of the Slurm driver: cancels whatever Slurm still runs for the job and waits (at
# most 30 s) until `squeue` no longer lists it.
source "$(dirname "$0")/base.sh"
scancel --quiet --name "$slurm_job_name" 2>/dev/null || true
for _ in $(seq 150); do
  [[ -z $(squeue --noheader --name "$slurm_job_name" --format '%i' 2>/dev/null) ]] && exit 0
  sleep 0.2
done
echo "Slurm still lists job $slurm_job_name" >&2
exit "$SYSTEM_FAILURE_EXIT_CODE"
