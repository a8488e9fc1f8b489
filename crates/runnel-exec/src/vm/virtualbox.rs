//! [`VirtualBoxExecutor`]: each job in a VirtualBox VM cloned from a base VM, reached over SSH
//! through a NAT port forward (GitLab: gitlab-runner `executors/virtualbox/virtualbox.go`).
//!
//! The flow is gitlab-runner's, call for call (the part shared with Parallels is in
//! `lifecycle`): with snapshots (the default) the runner keeps one VM per concurrency slot,
//! `<base>-runner-<short token>-concurrent-<n>`, restores its current snapshot before each job
//! and powers it off after; it is made once by `clonevm` of the base VM (linked to the base
//! snapshot), gets a `guestssh` NAT rule, is started and gets a `Started` snapshot. With
//! `disable_snapshots` every job gets a full clone
//! `<base_name>-runner-<short>-project-<id>-concurrent-<n>`, deleted after the job. A VM that
//! never became reachable is deleted too. The scripts then run with the SSH executor against
//! `localhost:<forwarded port>`.
//!
//! One difference: gitlab-runner sleeps 10 s after the first start before it connects; runnel
//! goes straight to its 30 connection attempts.

use std::path::PathBuf;

use super::image::VmOwner;
use super::lifecycle::{Hypervisor, VmExecutor, VmSettings, VmTool, preparing, sweep, vm_executor};
use super::tool::{Tool, ToolError};
use super::vboxmanage::VBoxManage;
use crate::error::ExecError;
use crate::ssh::SshConfig;
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
pub struct VirtualBoxExecutor(VmExecutor<VirtualBox>);

impl VirtualBoxExecutor {
    /// A VirtualBox executor with `config`.
    pub fn new(config: VirtualBoxConfig) -> Self {
        let vbox = VBoxManage {
            tool: Tool {
                program: config.vboxmanage.clone(),
            },
        };
        let settings = VmSettings {
            base_name: config.base_name.clone(),
            disable_snapshots: config.disable_snapshots,
            allowed_images: config.allowed_images.clone(),
            owner: config.owner.clone(),
        };
        Self(VmExecutor::new(VirtualBox {
            config,
            settings,
            vbox,
            verified: None,
            port: None,
        }))
    }
}

vm_executor!(VirtualBoxExecutor, VirtualBox);

/// VirtualBox's steps of the flow.
#[derive(Debug)]
pub(crate) struct VirtualBox {
    config: VirtualBoxConfig,
    settings: VmSettings,
    vbox: VBoxManage,
    /// The forwarded port a new VM answered SSH on.
    verified: Option<u16>,
    /// The forwarded port of the started VM.
    port: Option<u16>,
}

impl VirtualBox {
    fn ssh_config(&self, port: u16, attempts: u32) -> SshConfig {
        SshConfig {
            host: "localhost".to_owned(),
            port,
            connect_attempts: attempts,
            ..self.config.ssh.clone()
        }
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

    async fn start_vm(&self, vm: &str) -> Result<(), ExecError> {
        let start_type = self
            .config
            .start_type
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("headless");
        self.vbox
            .start(vm, start_type)
            .await
            .map_err(preparing(NAME))
    }

    /// gitlab-runner `verifyMachine`: up to 30 connection attempts, then `exit`.
    async fn verify(&self, port: u16) -> Result<(), ExecError> {
        crate::ssh::verify(&self.ssh_config(port, 30))
            .await
            .map_err(|err| err.preparing(NAME))
    }

    async fn ssh_port(&self, vm: &str) -> Result<u16, ExecError> {
        self.vbox
            .find_ssh_port(vm)
            .await
            .map_err(preparing(NAME))?
            .ok_or_else(|| {
                preparing(NAME)(ToolError::Output {
                    command: format!("vboxmanage showvminfo {vm}"),
                    expected: "guestssh port",
                })
            })
    }
}

impl VmTool for VBoxManage {
    async fn exists(&self, vm: &str) -> bool {
        VBoxManage::exists(self, vm).await
    }

    async fn is_running(&self, vm: &str) -> bool {
        self.status(vm)
            .await
            .is_ok_and(|s| s.is_online_or_transient())
    }

    async fn take_snapshot(&self, vm: &str, name: &str) -> Result<(), ToolError> {
        VBoxManage::take_snapshot(self, vm, name).await
    }

    async fn kill(&self, vm: &str) -> Result<(), ToolError> {
        VBoxManage::kill(self, vm).await
    }

    async fn delete(&self, vm: &str) -> Result<(), ToolError> {
        VBoxManage::delete(self, vm).await
    }

    async fn unregister(&self, vm: &str) -> Result<(), ToolError> {
        VBoxManage::unregister(self, vm).await
    }

    async fn list(&self) -> Result<Vec<String>, ToolError> {
        VBoxManage::list(self).await
    }
}

impl Hypervisor for VirtualBox {
    type Tool = VBoxManage;
    const NAME: &'static str = NAME;
    const PRODUCT: &'static str = "VirtualBox";
    const JOB_VM_FROM_IMAGE: bool = false;

    fn tool(&self) -> &VBoxManage {
        &self.vbox
    }

    fn settings(&self) -> &VmSettings {
        &self.settings
    }

    async fn banner(&self) -> Result<String, ToolError> {
        let version = self.vbox.version().await?;
        Ok(format!("Using VirtualBox version {version} executor..."))
    }

    async fn restore(&self, vm: &str) -> Result<(), ToolError> {
        self.vbox.restore_current_snapshot(vm).await
    }

    /// Clones the VM, forwards a port to its SSH, starts it and waits until SSH answers.
    async fn create(&mut self, base: &str, vm: &str, trace: &mut Trace) -> Result<(), ExecError> {
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
                .map_err(preparing(NAME))?;
        }
        let port = match self.vbox.find_ssh_port(vm).await {
            Ok(Some(port)) => port,
            _ => self
                .vbox
                .configure_ssh(vm, self.config.ssh.port)
                .await
                .map_err(preparing(NAME))?,
        };
        self.start_vm(vm).await?;
        self.verify(port).await?;
        self.verified = Some(port);
        Ok(())
    }

    /// gitlab-runner `ensureVMStarted`.
    async fn start(&mut self, vm: &str, trace: &mut Trace) -> Result<(), ExecError> {
        let state = self.vbox.status(vm).await.map_err(preparing(NAME))?;
        if !state.is_online_or_transient() {
            self.start_vm(vm).await?;
        }
        if !state.is_running() {
            self.vbox
                .wait_for_running(vm, 60)
                .await
                .map_err(preparing(NAME))?;
        }
        let port = self.ssh_port(vm).await?;
        trace.println("Waiting for VM to become responsive...");
        if self.verified != Some(port) {
            self.verify(port).await?;
        }
        self.port = Some(port);
        Ok(())
    }

    async fn login(&mut self, vm: &str, trace: &mut Trace) -> Result<SshConfig, ExecError> {
        let port = match self.port {
            Some(port) => port,
            None => self.ssh_port(vm).await?,
        };
        trace.println("Starting SSH command...");
        Ok(self.ssh_config(port, 3))
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
    sweep(&vbox, owners).await
}
