# Shared by the Slurm driver's programs (sourced, not run).
#
# Every Slurm job of a CI job is named `runnel-<runner short token>-<CI job id>-<n>`, where <n> is
# the name of the job's private temporary directory that runnel gives every driver call as
# TMPDIR: unique per job run, the same in every stage and in `cleanup_exec` (also when a
# restarted runner sweeps up a job it lost), so `scancel --name` finds exactly this job's work.
set -eu
slurm_job_name="runnel-${CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN:-local}-${CUSTOM_ENV_CI_JOB_ID:-0}-$(basename "${TMPDIR:-/tmp}")"
# The partition: config_exec's job_env, else the job's CI/CD variable RUNNEL_SLURM_PARTITION
# (or the runner's `environment`), else `debug`.
slurm_partition=${RUNNEL_SLURM_PARTITION:-${CUSTOM_ENV_RUNNEL_SLURM_PARTITION:-debug}}
