//! The settings of `runnel exec --executor ssh|virtualbox|parallels|custom`: gitlab-runner's
//! `register` flags (`--ssh-host`, `--ssh-port`, …, `--custom-run-exec`, …) and/or a runner's
//! `config.toml` entry (`--runner-config`, `--runner`), read with the daemon's own loader and
//! mapping.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use runnel_local::{ExecutorKind, LocalExecutor};
use runnel_runner::config::{RunnerConfig, SshConfig};
use runnel_runner::ssh_adapter::{parallels_settings, ssh_settings, virtualbox_settings};

use crate::user_error::ResultExt as _;

/// Flags of the remote executors.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct RemoteArgs {
    /// A gitlab-runner `config.toml` whose `[[runners]]` entry for the executor gives its
    /// settings (`[runners.ssh]`, `[runners.virtualbox]`, `[runners.parallels]`,
    /// `[runners.custom]` with driver paths relative to the file, `builds_dir`).
    #[arg(long, value_name = "FILE")]
    runner_config: Option<PathBuf>,
    /// The `[[runners]]` entry of `--runner-config` to use (by `name`); default: the only one
    /// with the executor.
    #[arg(long, value_name = "NAME", requires = "runner_config")]
    runner: Option<String>,
    /// SSH: the remote host (gitlab-runner's default: `localhost`).
    #[arg(long, value_name = "HOST")]
    ssh_host: Option<String>,
    /// SSH: the port (22).
    #[arg(long, value_name = "PORT")]
    ssh_port: Option<String>,
    /// SSH: the user (`root`).
    #[arg(long, value_name = "USER")]
    ssh_user: Option<String>,
    /// SSH: the password.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "SSH_PASSWORD",
        hide_env_values = true
    )]
    ssh_password: Option<String>,
    /// SSH: a private key file.
    #[arg(long, value_name = "FILE")]
    ssh_identity_file: Option<PathBuf>,
    /// SSH: the known hosts file (`~/.ssh/known_hosts`).
    #[arg(long, value_name = "FILE")]
    ssh_known_hosts_file: Option<PathBuf>,
    /// SSH: accept any host key.
    #[arg(long)]
    ssh_disable_strict_host_key_checking: bool,
    /// SSH: the builds directory on the remote host (`builds`, under the remote home).
    #[arg(long, value_name = "DIR")]
    builds_dir: Option<String>,
    #[command(flatten)]
    custom: super::exec_custom::CustomArgs,
    #[command(flatten)]
    vm: super::exec_vm::VmArgs,
}

impl RemoteArgs {
    fn any_ssh_flag(&self) -> bool {
        self.ssh_host.is_some()
            || self.ssh_port.is_some()
            || self.ssh_user.is_some()
            || self.ssh_password.is_some()
            || self.ssh_identity_file.is_some()
            || self.ssh_known_hosts_file.is_some()
            || self.ssh_disable_strict_host_key_checking
            || self.builds_dir.is_some()
    }

    /// The executor `kind` with its settings; paths are relative to `project_dir`.
    pub(crate) fn executor(
        &self,
        kind: ExecutorKind,
        project_dir: &Path,
    ) -> anyhow::Result<LocalExecutor> {
        if self.custom.given() && kind != ExecutorKind::Custom {
            return Err(anyhow!("the `--custom-*` flags need `--executor custom`")).user_error();
        }
        if self.vm.any_virtualbox() && kind != ExecutorKind::Virtualbox {
            return Err(anyhow!(
                "the `--virtualbox-*` flags need `--executor virtualbox`"
            ))
            .user_error();
        }
        if self.vm.any_parallels() && kind != ExecutorKind::Parallels {
            return Err(anyhow!(
                "the `--parallels-*` flags need `--executor parallels`"
            ))
            .user_error();
        }
        let name = match kind {
            ExecutorKind::Ssh => "ssh",
            ExecutorKind::Virtualbox => "virtualbox",
            ExecutorKind::Parallels => "parallels",
            ExecutorKind::Custom => return self.custom_executor(project_dir),
            _ => {
                if self.any_ssh_flag() || self.runner_config.is_some() {
                    return Err(anyhow!(
                        "--ssh-*, --builds-dir and --runner-config need --executor ssh, virtualbox, parallels or custom"
                    ))
                    .user_error();
                }
                return Ok(kind.into());
            }
        };
        let mut runner = match &self.runner_config {
            Some(file) => self.runner_entry(&absolute(project_dir, file), name)?,
            None => RunnerConfig {
                executor: name.to_owned(),
                ..RunnerConfig::default()
            },
        };
        self.apply_flags(&mut runner, project_dir);
        self.vm.apply(&mut runner);
        if kind == ExecutorKind::Ssh && runner.ssh.is_none() {
            return Err(anyhow!(
                "--executor ssh needs the SSH login: --ssh-host (and --ssh-user, --ssh-identity-file or --ssh-password), or --runner-config"
            ))
            .user_error();
        }
        let mut executor = LocalExecutor::from(kind);
        // The runner's short token and slot only name its VMs; `runnel exec` is slot 0.
        let prefix_builds = |mut ssh: runnel_exec::ssh::SshConfig| {
            ssh.builds_dir = PathBuf::from(
                runner
                    .builds_dir
                    .clone()
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "builds".to_owned()),
            );
            ssh
        };
        match kind {
            ExecutorKind::Ssh => {
                executor.ssh = Some(prefix_builds(ssh_settings(&runner, 0).user_error()?));
            }
            ExecutorKind::Virtualbox => {
                let mut settings =
                    virtualbox_settings(&runner, Default::default(), Path::new("vboxmanage"))
                        .user_error()?;
                settings.ssh = prefix_builds(settings.ssh);
                executor.virtualbox = Some(settings);
            }
            _ => {
                let mut settings =
                    parallels_settings(&runner, Default::default(), Path::new("prlctl"))
                        .user_error()?;
                settings.ssh = prefix_builds(settings.ssh);
                executor.parallels = Some(settings);
            }
        }
        Ok(executor)
    }

    /// `--executor custom`: `[runners.custom]` of `--runner-config` with the `--custom-*` flags
    /// over it. Leftovers of a killed run are swept from `.runnel/custom` before the first job.
    fn custom_executor(&self, project_dir: &Path) -> anyhow::Result<LocalExecutor> {
        if self.any_ssh_flag() {
            return Err(anyhow!(
                "--ssh-* and --builds-dir need --executor ssh, virtualbox or parallels"
            ))
            .user_error();
        }
        let file = self
            .runner_config
            .as_deref()
            .map(|file| absolute(project_dir, file));
        let runner = match &file {
            Some(file) => self.runner_entry(file, "custom")?,
            None => RunnerConfig {
                executor: "custom".to_owned(),
                ..RunnerConfig::default()
            },
        };
        if runner.executor != "custom" {
            return Err(anyhow!(
                "runner `{}` has `executor = \"{}\"`, expected `custom`",
                runner.name,
                runner.executor
            ))
            .user_error();
        }
        let settings = self
            .custom
            .settings(
                runner,
                file.as_deref(),
                project_dir,
                &project_dir.join(".runnel"),
            )
            .user_error()?;
        let mut executor = LocalExecutor::from(ExecutorKind::Custom);
        executor.custom = Some(settings);
        Ok(executor)
    }

    /// The `[[runners]]` entry of `file` for `executor`.
    fn runner_entry(&self, file: &Path, executor: &str) -> anyhow::Result<RunnerConfig> {
        let loaded = runnel_runner::config::load(file)
            .with_context(|| format!("failed to load `{}`", file.display()))
            .user_error()?;
        for warning in &loaded.unknown_keys {
            eprintln!("warning: {warning}");
        }
        let mut candidates = loaded
            .config
            .runners
            .into_iter()
            .filter(|r| match &self.runner {
                Some(name) => &r.name == name,
                None => r.executor == executor,
            });
        let first = candidates.next();
        let ambiguous = candidates.next().is_some();
        match (first, ambiguous) {
            (Some(runner), false) => Ok(runner),
            (Some(_), true) => Err(anyhow!(
                "`{}` has several runners with executor `{executor}`: choose one with --runner",
                file.display()
            ))
            .user_error(),
            (None, _) => Err(anyhow!(
                "`{}` has no runner {}",
                file.display(),
                match &self.runner {
                    Some(name) => format!("named `{name}`"),
                    None => format!("with executor `{executor}`"),
                }
            ))
            .user_error(),
        }
    }

    /// Flags win over the file.
    fn apply_flags(&self, runner: &mut RunnerConfig, project_dir: &Path) {
        if !self.any_ssh_flag() {
            return;
        }
        let ssh = runner.ssh.get_or_insert_with(SshConfig::default);
        let path = |p: &PathBuf| absolute(project_dir, p).display().to_string();
        if let Some(host) = &self.ssh_host {
            ssh.host = Some(host.clone());
        }
        if let Some(port) = &self.ssh_port {
            ssh.port = Some(port.clone());
        }
        if let Some(user) = &self.ssh_user {
            ssh.user = Some(user.clone());
        }
        if let Some(password) = &self.ssh_password {
            ssh.password = Some(password.clone());
        }
        if let Some(file) = &self.ssh_identity_file {
            ssh.identity_file = Some(path(file));
        }
        if let Some(file) = &self.ssh_known_hosts_file {
            ssh.known_hosts_file = Some(path(file));
        }
        if self.ssh_disable_strict_host_key_checking {
            ssh.disable_strict_host_key_checking = Some(true);
        }
        if let Some(dir) = &self.builds_dir {
            runner.builds_dir = Some(dir.clone());
        }
    }
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}
