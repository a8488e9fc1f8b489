//! [`ParallelsExecutor`]: each job in a Parallels Desktop VM created from a template of a base
//! VM, reached over SSH at the address its DHCP lease names (GitLab: gitlab-runner
//! `executors/parallels/parallels.go`).
//!
//! gitlab-runner's flow, call for call (the part shared with VirtualBox is in `lifecycle`): the
//! template `<base>-template` (or `template_name`)
//! is made once as a linked clone of the base VM; with snapshots (the default) the runner keeps
//! one VM per concurrency slot, `<base>-runner-<short token>-concurrent-<n>`, switches it back to
//! its snapshot before each job and stops it after; with `disable_snapshots` every job gets
//! `<base>-runner-<short>-project-<id>-concurrent-<n>`, deleted after it. The VM's address is
//! the newest lease of its `net0` MAC address in Parallels' DHCP leases file; SSH goes to that
//! address and the `[runners.ssh]` port. After the VM is up, its clock is set with `ntpdate`
//! or `sntp` from `time_server` when the guest has one of them.
//!
//! Differences: gitlab-runner refuses to run anywhere but macOS; runnel runs `prlctl` wherever
//! it is. gitlab-runner checks for an invalid VM before it has computed the VM's name (an
//! empty name); runnel checks the VM it is about to use.

use std::path::PathBuf;
use std::time::Duration;

use super::image::VmOwner;
use super::lifecycle::{Hypervisor, VmExecutor, VmSettings, VmTool, preparing, sweep, vm_executor};
use super::prlctl::{Prlctl, dhcp_leases_file, ip_address};
use super::tool::{Tool, ToolError};
use crate::error::ExecError;
use crate::ssh::SshConfig;
use crate::trace::Trace;

const NAME: &str = "parallels";

/// `[runners.parallels]` plus the `[runners.ssh]` login.
#[derive(Debug, Clone)]
pub struct ParallelsConfig {
    /// `base_name`: the VM the template is made of (required).
    pub base_name: String,
    /// `template_name`: the template; `<base_name>-template` by default.
    pub template_name: Option<String>,
    /// `disable_snapshots`: a VM per job, deleted after it.
    pub disable_snapshots: bool,
    /// `time_server`: where the guest sets its clock from (`time.apple.com` by default).
    pub time_server: Option<String>,
    /// `allowed_images`: regular expressions of base VMs a job's `image:` may name.
    pub allowed_images: Vec<String>,
    /// The login (`[runners.ssh]`); `host` is not used (the VM's leased address is).
    pub ssh: SshConfig,
    /// The `prlctl` program.
    pub prlctl: PathBuf,
    /// Parallels Desktop's DHCP leases file (`$RUNNEL_PARALLELS_DHCP_LEASES` or `DHCP_LEASES`).
    pub dhcp_leases: PathBuf,
    /// Whose VMs they are.
    pub owner: VmOwner,
}

impl ParallelsConfig {
    /// The settings for `base_name` with every other key at its default.
    pub fn new(base_name: impl Into<String>, ssh: SshConfig) -> Self {
        Self {
            base_name: base_name.into(),
            template_name: None,
            disable_snapshots: false,
            time_server: None,
            allowed_images: Vec::new(),
            ssh,
            prlctl: PathBuf::from("prlctl"),
            dhcp_leases: dhcp_leases_file(),
            owner: VmOwner::default(),
        }
    }
}

/// Runs a job in a Parallels VM.
#[derive(Debug)]
pub struct ParallelsExecutor(VmExecutor<Parallels>);

impl ParallelsExecutor {
    /// A Parallels executor with `config`.
    pub fn new(config: ParallelsConfig) -> Self {
        let prl = Prlctl {
            tool: Tool {
                program: config.prlctl.clone(),
            },
        };
        let settings = VmSettings {
            base_name: config.base_name.clone(),
            disable_snapshots: config.disable_snapshots,
            allowed_images: config.allowed_images.clone(),
            owner: config.owner.clone(),
        };
        Self(VmExecutor::new(Parallels {
            config,
            settings,
            prl,
            ip: None,
            verified: false,
        }))
    }
}

vm_executor!(ParallelsExecutor, Parallels);

/// Parallels' steps of the flow.
#[derive(Debug)]
pub(crate) struct Parallels {
    config: ParallelsConfig,
    settings: VmSettings,
    prl: Prlctl,
    ip: Option<String>,
    verified: bool,
}

impl Parallels {
    fn ssh_config(&self, ip: String, attempts: u32) -> SshConfig {
        SshConfig {
            host: ip,
            connect_attempts: attempts,
            ..self.config.ssh.clone()
        }
    }

    async fn unregister_invalid(&self, vm: &str) {
        if self
            .prl
            .status(vm)
            .await
            .is_ok_and(|status| status.0 == "invalid")
        {
            let _ = self.prl.unregister(vm).await;
        }
    }

    /// gitlab-runner `verifyMachine`: the leased address, 30 connection attempts, `exit`.
    async fn verify(&mut self, vm: &str) -> Result<(), ExecError> {
        if self.verified {
            return Ok(());
        }
        let ip = self.wait_for_ip(vm, 120).await?;
        crate::ssh::verify(&self.ssh_config(ip, 30))
            .await
            .map_err(|err| err.preparing(NAME))?;
        self.verified = true;
        Ok(())
    }

    /// gitlab-runner `waitForIPAddress`: the MAC of `net0`, then its lease, once a second.
    async fn wait_for_ip(&mut self, vm: &str, seconds: u32) -> Result<String, ExecError> {
        if let Some(ip) = &self.ip {
            return Ok(ip.clone());
        }
        let mac = self.prl.mac(vm).await.map_err(preparing(NAME))?;
        let mut last = String::new();
        for _ in 0..seconds.max(1) {
            match ip_address(&self.config.dhcp_leases, &mac) {
                Ok(ip) => {
                    self.ip = Some(ip.clone());
                    return Ok(ip);
                }
                Err(err) => last = err,
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(ExecError::Prepare {
            executor: NAME,
            source: last.into(),
        })
    }

    /// gitlab-runner `updateGuestTime`: `ntpdate`, else `sntp`, else a warning.
    async fn update_guest_time(&self, vm: &str, trace: &mut Trace) -> Result<(), ExecError> {
        let server = self
            .config
            .time_server
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "time.apple.com".to_owned());
        let synced = if self.prl.exec(vm, &["which", "ntpdate"]).await.is_ok() {
            self.prl
                .try_exec(vm, 20, &["sudo", "ntpdate", "-u", &server])
                .await
        } else if self.prl.exec(vm, &["which", "sntp"]).await.is_ok() {
            self.prl
                .try_exec(vm, 20, &["sudo", "sntp", "-sS", &server])
                .await
        } else {
            trace.warning(
                "Neither sntp nor ntpdate are available in a guest VM. Proceeding without time synchronization ...",
            );
            Ok(())
        };
        synced.map_err(|err| {
            trace.println("Could not sync with timeserver!");
            preparing(NAME)(err)
        })
    }
}

impl VmTool for Prlctl {
    async fn exists(&self, vm: &str) -> bool {
        Prlctl::exists(self, vm).await
    }

    async fn is_running(&self, vm: &str) -> bool {
        self.status(vm).await.is_ok_and(|s| s.0 == "running")
    }

    async fn take_snapshot(&self, vm: &str, name: &str) -> Result<(), ToolError> {
        Prlctl::take_snapshot(self, vm, name).await
    }

    async fn kill(&self, vm: &str) -> Result<(), ToolError> {
        Prlctl::kill(self, vm).await
    }

    async fn delete(&self, vm: &str) -> Result<(), ToolError> {
        Prlctl::delete(self, vm).await
    }

    async fn unregister(&self, vm: &str) -> Result<(), ToolError> {
        Prlctl::unregister(self, vm).await
    }

    async fn list(&self) -> Result<Vec<String>, ToolError> {
        Prlctl::list(self).await
    }
}

impl Hypervisor for Parallels {
    type Tool = Prlctl;
    const NAME: &'static str = NAME;
    const PRODUCT: &'static str = "Parallels";
    const JOB_VM_FROM_IMAGE: bool = true;

    fn tool(&self) -> &Prlctl {
        &self.prl
    }

    fn settings(&self) -> &VmSettings {
        &self.settings
    }

    async fn banner(&self) -> Result<String, ToolError> {
        let version = self.prl.version().await?;
        Ok(format!("Using Parallels {version} executor..."))
    }

    async fn check(&self, vm: &str) {
        self.unregister_invalid(vm).await;
    }

    async fn restore(&self, vm: &str) -> Result<(), ToolError> {
        let snapshot = self.prl.default_snapshot(vm).await?;
        self.prl.switch_snapshot(vm, &snapshot).await
    }

    /// gitlab-runner `createVM`: template, VM, start, wait for `prlctl exec`, then SSH.
    async fn create(&mut self, base: &str, vm: &str, _trace: &mut Trace) -> Result<(), ExecError> {
        let template = self
            .config
            .template_name
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("{base}-template"));
        self.unregister_invalid(&template).await;
        if !self.prl.exists(&template).await {
            self.prl
                .create_template(base, &template)
                .await
                .map_err(preparing(NAME))?;
        }
        self.prl
            .create_vm(vm, &template)
            .await
            .map_err(preparing(NAME))?;
        self.prl.start(vm).await.map_err(preparing(NAME))?;
        self.prl
            .try_exec(vm, 120, &["exit", "0"])
            .await
            .map_err(preparing(NAME))?;
        self.verify(vm).await
    }

    /// gitlab-runner `ensureVMStarted`.
    async fn start(&mut self, vm: &str, trace: &mut Trace) -> Result<(), ExecError> {
        let status = self.prl.status(vm).await.map_err(preparing(NAME))?;
        if status.0 == "stopped" || status.0 == "suspended" {
            trace.println("Starting VM...");
            self.prl.start(vm).await.map_err(preparing(NAME))?;
        }
        if status.0 != "running" {
            self.prl
                .wait_for_running(vm, 60)
                .await
                .map_err(preparing(NAME))?;
        }
        trace.println("Waiting for VM to become responsive...");
        self.verify(vm).await
    }

    async fn login(&mut self, vm: &str, trace: &mut Trace) -> Result<SshConfig, ExecError> {
        self.update_guest_time(vm, trace).await?;
        let ip = self.wait_for_ip(vm, 60).await?;
        Ok(self.ssh_config(ip, 3))
    }
}

/// Stops the runner's VMs a killed runnel left running and deletes its per-job VMs. Returns
/// how many VMs were touched.
pub async fn sweep_parallels(prlctl: PathBuf, owners: &[VmOwner]) -> Result<usize, ToolError> {
    let prl = Prlctl {
        tool: Tool { program: prlctl },
    };
    sweep(&prl, owners).await
}
