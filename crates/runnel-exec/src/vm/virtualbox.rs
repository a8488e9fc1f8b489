//! [`VirtualBoxExecutor`]: each job in a VirtualBox VM cloned from a base VM, reached over SSH
//! through a NAT port forward (GitLab: gitlab-runner `executors/virtualbox/virtualbox.go`).
//!
//! The flow is gitlab-runner's, call for call: with snapshots (the default) the runner keeps
//! one VM per concurrency slot, `<base>-runner-<short token>-concurrent-<n>`, restores its
//! current snapshot before each job and powers it off after; it is made once by `clonevm` of
//! the base VM (linked to the base snapshot), gets a `guestssh` NAT rule, is started and gets
//! a `Started` snapshot. With `disable_snapshots` every job gets a full clone
//! `<base_name>-runner-<short>-project-<id>-concurrent-<n>`, deleted after the job. A VM that
//! never became reachable is deleted too. The scripts then run with the SSH executor against
//! `localhost:<forwarded port>`.
//!
//! One difference: gitlab-runner sleeps 10 s after the first start before it connects; runnel
//! goes straight to its 30 connection attempts.

use std::path::PathBuf;

use runnel_api::FailureReason;

use super::image::{VmKind, VmOwner, base_name};
use super::tool::{Tool, ToolError};
use super::vboxmanage::VBoxManage;
use crate::error::ExecError;
use crate::executor::{Executor, PreparedJob, StageRun};
use crate::process::ScriptEnd;
use crate::ssh::{SshConfig, SshExecutor};
use crate::store::BoxFuture;
use crate::trace::Trace;

const NAME: &str = "virtualbox";

/// `[runners.virtualbox]` plus the `[runners.ssh]` login.
#[derive(Debug, Clone)]
pub struct VirtualBoxConfig {
    /// `base_name`: the VM to clone (required).
    pub base_name: String,
    /// `base_snapshot`: the base VM's snapshot to link clones to; `None` is its current one.
    pub base_snapshot: Option<String>,
    /// `base_folder`: where clones are created (`clonevm --basefolder`).
    pub base_folder: Option<String>,
    /// `disable_snapshots`: a full clone per job, deleted after it.
    pub disable_snapshots: bool,
    /// `start_type`: `startvm --type` (`headless` by default, `gui`, `separate`).
    pub start_type: Option<String>,
    /// `allowed_images`: regular expressions of base VMs a job's `image:` may name.
    pub allowed_images: Vec<String>,
    /// The login (`[runners.ssh]`); `port` is the guest's SSH port (22 by default), `host` is
    /// not used (the VM is reached on `localhost`).
    pub ssh: SshConfig,
    /// The `VBoxManage` program (`vboxmanage` on `PATH`, as gitlab-runner).
    pub vboxmanage: PathBuf,
    /// Whose VMs they are.
    pub owner: VmOwner,
}

impl VirtualBoxConfig {
    /// The settings for `base_name` with every other key at its default.
    pub fn new(base_name: impl Into<String>, ssh: SshConfig) -> Self {
        Self {
            base_name: base_name.into(),
            base_snapshot: None,
            base_folder: None,
            disable_snapshots: false,
            start_type: None,
            allowed_images: Vec::new(),
            ssh,
            vboxmanage: PathBuf::from("vboxmanage"),
            owner: VmOwner::default(),
        }
    }
}

/// Runs a job in a VirtualBox VM.
#[derive(Debug)]
pub struct VirtualBoxExecutor {
    config: VirtualBoxConfig,
    vbox: VBoxManage,
    vm: Option<String>,
    provisioned: bool,
    ssh: Option<SshExecutor>,
}

impl VirtualBoxExecutor {
    /// A VirtualBox executor with `config`.
    pub fn new(config: VirtualBoxConfig) -> Self {
        let vbox = VBoxManage {
            tool: Tool {
                program: config.vboxmanage.clone(),
            },
        };
        Self {
            config,
            vbox,
            vm: None,
            provisioned: false,
            ssh: None,
        }
    }

    async fn prepare_vm(&mut self, job: &PreparedJob, trace: &mut Trace) -> Result<(), ExecError> {
        if self.config.base_name.is_empty() {
            return Err(ExecError::JobFailed {
                reason: FailureReason::RunnerConfigurationError,
                message: "missing BaseName setting from VirtualBox configuration".to_owned(),
            });
        }
        let version = self.vbox.version().await.map_err(preparing)?;
        trace.println(&format!("Using VirtualBox version {version} executor..."));
        let base = base_name(
            job,
            &self.config.base_name,
            &self.config.allowed_images,
            trace,
        )?;
        let vm = if self.config.disable_snapshots {
            self.config
                .owner
                .job_vm(&self.config.base_name, job.payload.job_info.project_id)
        } else {
            self.config.owner.persistent_vm(&base)
        };
        self.vm = Some(vm.clone());
        if self.config.disable_snapshots && self.vbox.exists(&vm).await {
            self.kill_and_unregister(&vm).await;
        }
        if self.vbox.exists(&vm).await {
            trace.println("Restoring VM from snapshot...");
            if let Err(err) = self.vbox.restore_current_snapshot(&vm).await {
                trace.println(&format!("Previous VM failed. Deleting, because {err}"));
                self.kill_and_unregister(&vm).await;
            }
        }
        let mut port = None;
        if !self.vbox.exists(&vm).await {
            trace.println("Creating new VM...");
            port = Some(self.create_vm(&base, &vm, trace).await?);
            if !self.config.disable_snapshots {
                trace.println("Creating default snapshot...");
                self.vbox
                    .take_snapshot(&vm, "Started")
                    .await
                    .map_err(preparing)?;
            }
        }
        let port = self.ensure_started(&vm, port, trace).await?;
        trace.println("Starting SSH command...");
        let mut ssh = SshExecutor::named(self.ssh_config(port, 3), NAME);
        let connected = ssh.connect().await;
        self.ssh = Some(ssh);
        connected.map_err(|err| err.preparing(NAME))
    }

    fn ssh_config(&self, port: u16, attempts: u32) -> SshConfig {
        SshConfig {
            host: "localhost".to_owned(),
            port,
            connect_attempts: attempts,
            ..self.config.ssh.clone()
        }
    }

    /// Clones the VM, forwards a port to its SSH, starts it and waits until SSH answers.
    /// Returns the forwarded port.
    async fn create_vm(
        &mut self,
        base: &str,
        vm: &str,
        trace: &mut Trace,
    ) -> Result<u16, ExecError> {
        if self.vbox.status(vm).await.is_err() {
            let _ = self.vbox.unregister(vm).await;
        }
        if !self.vbox.exists(vm).await {
            let snapshot = self.base_snapshot(base, trace).await;
            self.vbox
                .clone_vm(
                    base,
                    vm,
                    snapshot.as_deref(),
                    self.config.base_folder.as_deref(),
                )
                .await
                .map_err(preparing)?;
        }
        let port = match self.vbox.find_ssh_port(vm).await {
            Ok(Some(port)) => port,
            _ => self
                .vbox
                .configure_ssh(vm, self.config.ssh.port)
                .await
                .map_err(preparing)?,
        };
        self.start(vm).await?;
        self.verify(port).await?;
        Ok(port)
    }

    /// gitlab-runner `determineBaseSnapshot`.
    async fn base_snapshot(&self, base: &str, trace: &mut Trace) -> Option<String> {
        let snapshot = match self.config.base_snapshot.clone() {
            Some(snapshot) => snapshot,
            None => match self.vbox.current_snapshot(base).await {
                Ok(snapshot) => snapshot,
                Err(_) if self.config.disable_snapshots => return None,
                Err(_) => "Base State".to_owned(),
            },
        };
        if !self.vbox.has_snapshot(base, &snapshot).await {
            if self.config.disable_snapshots {
                trace.warning(&format!("Snapshot {snapshot} not found in base VM {base}"));
                return None;
            }
            if self.vbox.take_snapshot(base, &snapshot).await.is_err() {
                trace.warning(&format!(
                    "Failed to create snapshot {snapshot} from base VM {base}"
                ));
                return None;
            }
        }
        Some(snapshot)
    }

    async fn start(&self, vm: &str) -> Result<(), ExecError> {
        let start_type = self
            .config
            .start_type
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("headless");
        self.vbox.start(vm, start_type).await.map_err(preparing)
    }

    /// gitlab-runner `ensureVMStarted`.
    async fn ensure_started(
        &mut self,
        vm: &str,
        verified: Option<u16>,
        trace: &mut Trace,
    ) -> Result<u16, ExecError> {
        let state = self.vbox.status(vm).await.map_err(preparing)?;
        if !state.is_online_or_transient() {
            self.start(vm).await?;
        }
        if !state.is_running() {
            self.vbox
                .wait_for_running(vm, 60)
                .await
                .map_err(preparing)?;
        }
        let port = self
            .vbox
            .find_ssh_port(vm)
            .await
            .map_err(preparing)?
            .ok_or_else(|| {
                preparing(ToolError::Output {
                    command: format!("vboxmanage showvminfo {vm}"),
                    expected: "guestssh port",
                })
            })?;
        trace.println("Waiting for VM to become responsive...");
        if verified != Some(port) {
            self.verify(port).await?;
        }
        self.provisioned = true;
        Ok(port)
    }

    /// gitlab-runner `verifyMachine`: up to 30 connection attempts, then `exit`.
    async fn verify(&self, port: u16) -> Result<(), ExecError> {
        crate::ssh::verify(&self.ssh_config(port, 30))
            .await
            .map_err(|err| err.preparing(NAME))
    }

    async fn kill_and_unregister(&self, vm: &str) {
        let _ = self.vbox.kill(vm).await;
        let _ = self.vbox.delete(vm).await;
        let _ = self.vbox.unregister(vm).await;
    }
}

fn preparing(err: ToolError) -> ExecError {
    ExecError::Prepare {
        executor: NAME,
        source: Box::new(err),
    }
}

impl Executor for VirtualBoxExecutor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(self.prepare_vm(job, trace))
    }

    fn run<'a>(
        &'a mut self,
        job: &'a PreparedJob,
        stage: StageRun,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<ScriptEnd, ExecError>> {
        Box::pin(async move {
            match self.ssh.as_mut() {
                Some(ssh) => ssh.run(job, stage, trace).await,
                None => Err(crate::ssh::SshError::NotConnected.running(NAME)),
            }
        })
    }

    fn remote_builds_dir(&self) -> Option<PathBuf> {
        self.ssh.as_ref().and_then(Executor::remote_builds_dir)
    }

    fn fetch_sources_remotely(&mut self) -> bool {
        self.ssh
            .as_mut()
            .is_some_and(Executor::fetch_sources_remotely)
    }

    fn cleanup<'a>(&'a mut self, job: &'a PreparedJob) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(mut ssh) = self.ssh.take() {
                ssh.cleanup(job).await;
            }
            if let Some(vm) = self.vm.take() {
                let _ = self.vbox.kill(&vm).await;
                if self.config.disable_snapshots || !self.provisioned {
                    let _ = self.vbox.delete(&vm).await;
                }
            }
        })
    }
}

/// Powers off the runner's VMs a killed runnel left running and deletes its per-job clones.
/// Returns how many VMs were touched.
pub async fn sweep_virtualbox(vboxmanage: PathBuf, owners: &[VmOwner]) -> Result<usize, ToolError> {
    let vbox = VBoxManage {
        tool: Tool {
            program: vboxmanage,
        },
    };
    let mut touched = 0;
    for vm in vbox.list().await? {
        let Some(kind) = owners.iter().find_map(|owner| owner.owns(&vm)) else {
            continue;
        };
        match kind {
            VmKind::Persistent => {
                if vbox
                    .status(&vm)
                    .await
                    .is_ok_and(|s| s.is_online_or_transient())
                {
                    let _ = vbox.kill(&vm).await;
                    touched += 1;
                }
            }
            VmKind::JobClone => {
                let _ = vbox.kill(&vm).await;
                let _ = vbox.delete(&vm).await;
                touched += 1;
            }
        }
    }
    Ok(touched)
}
