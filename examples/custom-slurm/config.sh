#!/usr/bin/env bash
# config_exec of the Slurm driver: names the driver and passes the partition to later calls.
# The builds directory stays the runner's: it must be on a file system every Slurm node shares.
source "$(dirname "$0")/base.sh"
version=$(sinfo --version 2>/dev/null | awk '{print $2}')
cat <<JSON
{
  "driver": { "name": "slurm", "version": "${version:-unknown}" },
  "job_env": { "RUNNEL_SLURM_PARTITION": "$slurm_partition" }
}
JSON
