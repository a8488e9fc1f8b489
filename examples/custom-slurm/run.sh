#!/usr/bin/env bash
# run_exec of the Slurm driver: `run.sh <script> <stage>` runs the stage's script as one Slurm
# job step (`srun`) on a node of the partition, its output streamed back to the job's trace.
#
# Exit codes: the script's failure is BUILD_FAILURE_EXIT_CODE; a job step that Slurm itself
# could not run (no allocation, a node failure, a killed step) is SYSTEM_FAILURE_EXIT_CODE. The
# script writes its own exit status next to itself (the builds directory is shared), so the two
# are told apart. On SIGTERM (cancel, timeout) the job is cancelled with `scancel` first.
source "$(dirname "$0")/base.sh"
script=$1 stage=$2
status_file="$script.status"
rm -f "$status_file"

cancel() {
  scancel --quiet --name "$slurm_job_name" 2>/dev/null || true
  exit "$SYSTEM_FAILURE_EXIT_CODE"
}
trap cancel TERM INT

srun --quiet --job-name "$slurm_job_name" --partition "$slurm_partition" \
  --nodes 1 --ntasks 1 --kill-on-bad-exit=1 --export ALL \
  bash -c 'bash "$1"; echo $? > "$2"' runnel-stage "$script" "$status_file" &
wait $! || true

if [[ ! -s $status_file ]]; then
  echo "Slurm could not run the $stage stage (job $slurm_job_name)" >&2
  exit "$SYSTEM_FAILURE_EXIT_CODE"
fi
code=$(cat "$status_file")
if [[ $code != 0 ]]; then
  exit "$BUILD_FAILURE_EXIT_CODE"
fi
