//! Runs payloads with `runnel-exec`'s SSH, VirtualBox and Parallels executors (`executor =
//! "ssh"`, `"virtualbox"`, `"parallels"`): their `config.toml` sections turned into settings,
//! and the start-up sweep of VMs a killed runner left behind.
//!
//! GitLab: gitlab-runner `helpers/ssh/ssh_config.go` (`[runners.ssh]`: `host`, `port`, `user`,
//! `password`, `identity_file`, `known_hosts_file`, `disable_strict_host_key_checking`, all
//! implemented), `common/config.go` `VirtualBoxConfig` (`base_name`, `base_snapshot`,
//! `base_folder`, `disable_snapshots`, `start_type`, `allowed_images`, all implemented) and
//! `ParallelsConfig` (`base_name`, `template_name`, `disable_snapshots`, `time_server`,
//! `allowed_images`, all implemented). A missing section fails the job as gitlab-runner's
//! `Prepare` does.
//!
//! `builds_dir` names the directory on the remote host (the VM), where the remote host clones or
//! fetches the sources itself as with gitlab-runner; runnel keeps its own copy of each project
//! under its local `builds` directory for caches and artifacts (see `runnel_exec::ssh`).

use std::path::{Path, PathBuf};

use runnel_api::{FailureReason, FeaturesInfo, JobPayload};
use runnel_exec::Concurrency;
use runnel_exec::ssh::{SshConfig as ExecSshConfig, SshExecutor, parse_port};
use runnel_exec::vm::{
    ParallelsConfig as ExecParallelsConfig, ParallelsExecutor,
    VirtualBoxConfig as ExecVirtualBoxConfig, VirtualBoxExecutor, VmOwner, sweep_parallels,
    sweep_virtualbox,
};

use crate::config::RunnerConfig;
use crate::exec_adapter::{KILL_GRACE, ShellJobExecutor, exec_outcome};
use crate::executor::{ExecFuture, ExecOutcome, ExecStatus, JobContext, JobExecutor, StartUp};

/// A section the executor cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteSettingsError {
    /// No `[runners.<section>]`.
    #[error("missing `[runners.{0}]` configuration")]
    Missing(&'static str),
    /// No `base_name`.
    #[error("missing `runners.{0}.base_name`")]
    BaseName(&'static str),
    /// A `port` that is not a port.
    #[error("`runners.ssh.port`: {0}")]
    Port(String),
}

fn nonempty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

/// The SSH login of a `[[runners]]` entry: its `[runners.ssh]` with gitlab-runner's defaults,
/// and the remote builds directory `<builds_dir>/<short token>/<project slot>` (relative to
/// the remote home unless absolute; `builds` by default).
pub fn ssh_settings(
    runner: &RunnerConfig,
    project_slot: usize,
) -> Result<ExecSshConfig, RemoteSettingsError> {
    let ssh = runner
        .ssh
        .as_ref()
        .ok_or(RemoteSettingsError::Missing("ssh"))?;
    let defaults = ExecSshConfig::default();
    let builds = nonempty(&runner.builds_dir).unwrap_or_else(|| "builds".to_owned());
    Ok(ExecSshConfig {
        host: nonempty(&ssh.host).unwrap_or(defaults.host),
        port: parse_port(ssh.port.as_deref().unwrap_or("")).map_err(RemoteSettingsError::Port)?,
        user: nonempty(&ssh.user).unwrap_or(defaults.user),
        password: nonempty(&ssh.password),
        identity_file: nonempty(&ssh.identity_file).map(PathBuf::from),
        known_hosts_file: nonempty(&ssh.known_hosts_file).map(PathBuf::from),
        disable_strict_host_key_checking: ssh.disable_strict_host_key_checking.unwrap_or(false),
        builds_dir: Path::new(&builds)
            .join(runner.short_token())
            .join(project_slot.to_string()),
        kill_grace: KILL_GRACE,
        ..defaults
    })
}

fn owner(runner: &RunnerConfig, concurrency: Concurrency) -> VmOwner {
    VmOwner {
        short_token: runner.short_token(),
        concurrent_id: concurrency.id,
        project_concurrent_id: concurrency.project_id,
    }
}

/// The VirtualBox settings of a `[[runners]]` entry.
pub fn virtualbox_settings(
    runner: &RunnerConfig,
    concurrency: Concurrency,
    vboxmanage: &Path,
) -> Result<ExecVirtualBoxConfig, RemoteSettingsError> {
    let vbox = runner
        .virtualbox
        .as_ref()
        .ok_or(RemoteSettingsError::Missing("virtualbox"))?;
    let base = nonempty(&vbox.base_name).ok_or(RemoteSettingsError::BaseName("virtualbox"))?;
    let ssh = ssh_settings(runner, concurrency.project_id)?;
    let mut settings = ExecVirtualBoxConfig::new(base, ssh);
    settings.base_snapshot = nonempty(&vbox.base_snapshot);
    settings.base_folder = nonempty(&vbox.base_folder);
    settings.disable_snapshots = vbox.disable_snapshots.unwrap_or(false);
    settings.start_type = nonempty(&vbox.start_type);
    settings.allowed_images = vbox.allowed_images.clone();
    settings.vboxmanage = vboxmanage.to_path_buf();
    settings.owner = owner(runner, concurrency);
    Ok(settings)
}

/// The Parallels settings of a `[[runners]]` entry.
pub fn parallels_settings(
    runner: &RunnerConfig,
    concurrency: Concurrency,
    prlctl: &Path,
) -> Result<ExecParallelsConfig, RemoteSettingsError> {
    let prl = runner
        .parallels
        .as_ref()
        .ok_or(RemoteSettingsError::Missing("parallels"))?;
    let base = nonempty(&prl.base_name).ok_or(RemoteSettingsError::BaseName("parallels"))?;
    let ssh = ssh_settings(runner, concurrency.project_id)?;
    let mut settings = ExecParallelsConfig::new(base, ssh);
    settings.template_name = nonempty(&prl.template_name);
    settings.disable_snapshots = prl.disable_snapshots.unwrap_or(false);
    settings.time_server = nonempty(&prl.time_server);
    settings.allowed_images = prl.allowed_images.clone();
    settings.prlctl = prlctl.to_path_buf();
    settings.owner = owner(runner, concurrency);
    Ok(settings)
}

/// The SSH, VirtualBox and Parallels executors behind the daemon.
#[derive(Debug, Clone)]
pub struct RemoteJobExecutor {
    /// Resolves the local directories and builds the job context.
    pub dirs: ShellJobExecutor,
    /// The `VBoxManage` program (`vboxmanage` on `PATH`).
    pub vboxmanage: PathBuf,
    /// The `prlctl` program (`prlctl` on `PATH`).
    pub prlctl: PathBuf,
}

impl Default for RemoteJobExecutor {
    fn default() -> Self {
        Self {
            dirs: ShellJobExecutor::default(),
            vboxmanage: PathBuf::from("vboxmanage"),
            prlctl: PathBuf::from("prlctl"),
        }
    }
}

impl RemoteJobExecutor {
    /// The executors with the hypervisor tools on `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    fn executor(
        &self,
        runner: &RunnerConfig,
        concurrency: Concurrency,
    ) -> Result<Box<dyn runnel_exec::Executor>, RemoteSettingsError> {
        Ok(match runner.executor.as_str() {
            "virtualbox" => Box::new(VirtualBoxExecutor::new(virtualbox_settings(
                runner,
                concurrency,
                &self.vboxmanage,
            )?)),
            "parallels" => Box::new(ParallelsExecutor::new(parallels_settings(
                runner,
                concurrency,
                &self.prlctl,
            )?)),
            _ => Box::new(SshExecutor::new(ssh_settings(
                runner,
                concurrency.project_id,
            )?)),
        })
    }
}

impl JobExecutor for RemoteJobExecutor {
    fn supports(&self, name: &str) -> bool {
        matches!(name, "ssh" | "virtualbox" | "parallels")
    }

    fn features(&self, runner: &RunnerConfig) -> FeaturesInfo {
        // gitlab-runner: `Shared` for SSH only (`SharedBuildsDir`); caches and artifacts are
        // runnel's own, on the runner's side.
        FeaturesInfo {
            shared: runner.executor == "ssh",
            ..self.dirs.features(runner)
        }
    }

    fn start_up<'a>(&'a self, runners: &'a [RunnerConfig]) -> StartUp<'a> {
        Box::pin(async move {
            let owners = |executor: &str| -> Vec<VmOwner> {
                runners
                    .iter()
                    .filter(|r| r.executor == executor)
                    .map(|r| owner(r, Concurrency::default()))
                    .collect()
            };
            let vbox = owners("virtualbox");
            if !vbox.is_empty() {
                report_sweep(
                    "virtualbox",
                    sweep_virtualbox(self.vboxmanage.clone(), &vbox).await,
                );
            }
            let prl = owners("parallels");
            if !prl.is_empty() {
                report_sweep(
                    "parallels",
                    sweep_parallels(self.prlctl.clone(), &prl).await,
                );
            }
        })
    }

    fn execute(&self, payload: JobPayload, ctx: JobContext) -> ExecFuture {
        let executor = self.executor(&ctx.runner, ctx.concurrency);
        let mut exec_ctx = self.dirs.exec_context(&ctx);
        // `builds_dir` is the remote one; runnel's copy stays in its local `builds`.
        exec_ctx.builds_dir = self
            .dirs
            .resolve("builds")
            .join(ctx.runner.short_token())
            .join(ctx.concurrency.project_id.to_string());
        let trace = ctx.trace.clone();
        Box::pin(async move {
            let mut executor = match executor {
                Ok(executor) => executor,
                Err(err) => {
                    trace.write(format!("\x1b[31;1mERROR: {err}\x1b[0;m\n").as_bytes());
                    return ExecOutcome {
                        status: ExecStatus::Failed,
                        failure_reason: Some(FailureReason::RunnerConfigurationError),
                        exit_code: None,
                    };
                }
            };
            let (events, _) = tokio::sync::mpsc::unbounded_channel();
            exec_outcome(
                runnel_exec::run_job_with(executor.as_mut(), payload, exec_ctx, events).await,
            )
        })
    }
}

fn report_sweep(executor: &str, result: Result<usize, runnel_exec::vm::ToolError>) {
    match result {
        Ok(0) => {}
        Ok(touched) => tracing::info!(
            executor,
            touched,
            "stopped or removed VMs left by an earlier runnel"
        ),
        Err(err) => tracing::warn!(
            executor,
            error = %crate::trace_patch::error_chain(&err),
            "cannot look for VMs left by an earlier runnel"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{Concurrency, RemoteSettingsError, ssh_settings, virtualbox_settings};
    use crate::config::RunnerConfig;
    use std::path::{Path, PathBuf};

    fn runner(executor: &str, sections: &str) -> RunnerConfig {
        let text = format!(
            "[[runners]]\nname = \"r\"\nurl = \"http://x\"\ntoken = \"glrt-abcdefghijk\"\nexecutor = \"{executor}\"\n{sections}\n"
        );
        let config: crate::config::Config = toml::from_str(&text).expect("config");
        config.runners.into_iter().next().expect("a runner")
    }

    #[test]
    fn ssh_keys_map_to_the_executor_with_gitlab_runner_defaults() {
        let r = runner(
            "ssh",
            "[runners.ssh]\nhost = \"build.example.com\"\nport = \"2222\"\npassword = \"pw\"\nidentity_file = \"/k\"\nknown_hosts_file = \"/kh\"\ndisable_strict_host_key_checking = true\n",
        );
        let s = ssh_settings(&r, 3).expect("settings");
        assert_eq!(
            (s.host.as_str(), s.port, s.user.as_str()),
            ("build.example.com", 2222, "root")
        );
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(s.identity_file, Some(PathBuf::from("/k")));
        assert_eq!(s.known_hosts_file, Some(PathBuf::from("/kh")));
        assert!(s.disable_strict_host_key_checking);
        assert_eq!(s.builds_dir, Path::new("builds/abcdefghi/3"));
        let bad = runner("ssh", "[runners.ssh]\nport = \"ssh\"\n");
        assert!(matches!(
            ssh_settings(&bad, 0),
            Err(RemoteSettingsError::Port(_))
        ));
        assert_eq!(
            ssh_settings(&runner("ssh", ""), 0),
            Err(RemoteSettingsError::Missing("ssh"))
        );
    }

    #[test]
    fn virtualbox_keys_map_to_the_executor() {
        let r = runner(
            "virtualbox",
            "[runners.ssh]\nuser = \"ci\"\n[runners.virtualbox]\nbase_name = \"ubuntu\"\nbase_snapshot = \"clean\"\nbase_folder = \"/vms\"\ndisable_snapshots = true\nstart_type = \"gui\"\nallowed_images = [\"^ubuntu\"]\n",
        );
        let slots = Concurrency {
            id: 1,
            project_id: 0,
        };
        let s = virtualbox_settings(&r, slots, Path::new("vboxmanage")).expect("settings");
        assert_eq!(s.base_name, "ubuntu");
        assert_eq!(s.base_snapshot.as_deref(), Some("clean"));
        assert_eq!(s.base_folder.as_deref(), Some("/vms"));
        assert!(s.disable_snapshots);
        assert_eq!(s.start_type.as_deref(), Some("gui"));
        assert_eq!(s.allowed_images, ["^ubuntu"]);
        assert_eq!(s.ssh.user, "ci");
        assert_eq!(s.owner.concurrent_id, 1);
        assert_eq!(s.owner.project_concurrent_id, 0);
        // The remote builds directory follows the project slot, the VM's name the runner slot.
        assert_eq!(s.ssh.builds_dir, Path::new("builds/abcdefghi/0"));
        let no_base = runner("virtualbox", "[runners.ssh]\n[runners.virtualbox]\n");
        assert_eq!(
            virtualbox_settings(&no_base, Concurrency::default(), Path::new("vboxmanage")).err(),
            Some(RemoteSettingsError::BaseName("virtualbox"))
        );
    }
}
