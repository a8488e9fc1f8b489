#!/usr/bin/env bash
# prepare_exec of the Slurm driver: checks that the controller answers and the partition exists.
# A cluster that does not answer is a system failure (the runner retries the preparation).
source "$(dirname "$0")/base.sh"
if ! scontrol ping >/dev/null 2>&1; then
  echo "slurmctld does not answer (scontrol ping)" >&2
  exit "$SYSTEM_FAILURE_EXIT_CODE"
fi
if ! sinfo --noheader --partition "$slurm_partition" --format '%P' | grep -q .; then
  echo "Slurm has no partition \`$slurm_partition\`" >&2
  exit "$SYSTEM_FAILURE_EXIT_CODE"
fi
echo "Slurm partition $slurm_partition: $(sinfo --noheader --partition "$slurm_partition" --format '%D node(s), %a')"
