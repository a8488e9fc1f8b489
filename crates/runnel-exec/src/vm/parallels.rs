//! [`ParallelsExecutor`]: each job in a Parallels Desktop VM created from a template of a base
//! VM, reached over SSH at the address its DHCP lease names (GitLab: gitlab-runner
//! `executors/parallels/parallels.go`).
//!
//! gitlab-runner's flow, call for call: the template `<base>-template` (or `template_name`)
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

use runnel_api::FailureReason;

use super::image::{VmKind, VmOwner, base_name};
use super::prlctl::{Prlctl, dhcp_leases_file, ip_address};
use super::tool::{Tool, ToolError};
use crate::error::ExecError;
use crate::executor::{Executor, PreparedJob, StageRun};
use crate::process::ScriptEnd;
use crate::ssh::{SshConfig, SshExecutor};
use crate::store::BoxFuture;
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
pub struct ParallelsExecutor {
    config: ParallelsConfig,
    prl: Prlctl,
    vm: Option<String>,
    ip: Option<String>,
    verified: bool,
    provisioned: bool,
    ssh: Option<SshExecutor>,
}

impl ParallelsExecutor {
    /// A Parallels executor with `config`.
    pub fn new(config: ParallelsConfig) -> Self {
        let prl = Prlctl {
            tool: Tool {
                program: config.prlctl.clone(),
            },
        };
        Self {
            config,
            prl,
            vm: None,
            ip: None,
            verified: false,
            provisioned: false,
            ssh: None,
        }
    }

    async fn prepare_vm(&mut self, job: &PreparedJob, trace: &mut Trace) -> Result<(), ExecError> {
        if self.config.base_name.is_empty() {
            return Err(ExecError::JobFailed {
                reason: FailureReason::RunnerConfigurationError,
                message: "missing BaseName setting from Parallels configuration".to_owned(),
            });
        }
        let version = self.prl.version().await.map_err(preparing)?;
        trace.println(&format!("Using Parallels {version} executor..."));
        let base = base_name(
            job,
            &self.config.base_name,
            &self.config.allowed_images,
            trace,
        )?;
        let vm = if self.config.disable_snapshots {
            self.config
                .owner
                .job_vm(&base, job.payload.job_info.project_id)
        } else {
            self.config.owner.persistent_vm(&base)
        };
        self.vm = Some(vm.clone());
        self.unregister_invalid(&vm).await;
        if self.config.disable_snapshots && self.prl.exists(&vm).await {
            self.kill_and_unregister(&vm).await;
        }
        if self.prl.exists(&vm).await {
            trace.println("Restoring VM from snapshot...");
            if let Err(err) = self.restore_snapshot(&vm).await {
                trace.println(&format!("Previous VM failed. Deleting, because {err}"));
                self.kill_and_unregister(&vm).await;
            }
        }
        if !self.prl.exists(&vm).await {
            trace.println("Creating new VM...");
            self.create_vm(&base, &vm).await?;
            if !self.config.disable_snapshots {
                trace.println("Creating default snapshot...");
                self.prl
                    .take_snapshot(&vm, "Started")
                    .await
                    .map_err(preparing)?;
            }
        }
        self.ensure_started(&vm, trace).await?;
        let ip = self.wait_for_ip(&vm, 60).await?;
        let mut ssh = SshExecutor::named(self.ssh_config(ip, 3), NAME);
        let connected = ssh.connect().await;
        self.ssh = Some(ssh);
        connected.map_err(|err| err.preparing(NAME))
    }

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

    async fn restore_snapshot(&self, vm: &str) -> Result<(), ToolError> {
        let snapshot = self.prl.default_snapshot(vm).await?;
        self.prl.switch_snapshot(vm, &snapshot).await
    }

    /// gitlab-runner `createVM`: template, VM, start, wait for `prlctl exec`, then SSH.
    async fn create_vm(&mut self, base: &str, vm: &str) -> Result<(), ExecError> {
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
                .map_err(preparing)?;
        }
        self.prl.create_vm(vm, &template).await.map_err(preparing)?;
        self.prl.start(vm).await.map_err(preparing)?;
        self.prl
            .try_exec(vm, 120, &["exit", "0"])
            .await
            .map_err(preparing)?;
        self.verify(vm).await
    }

    /// gitlab-runner `ensureVMStarted`.
    async fn ensure_started(&mut self, vm: &str, trace: &mut Trace) -> Result<(), ExecError> {
        let status = self.prl.status(vm).await.map_err(preparing)?;
        if status.0 == "stopped" || status.0 == "suspended" {
            trace.println("Starting VM...");
            self.prl.start(vm).await.map_err(preparing)?;
        }
        if status.0 != "running" {
            self.prl.wait_for_running(vm, 60).await.map_err(preparing)?;
        }
        trace.println("Waiting for VM to become responsive...");
        self.verify(vm).await?;
        self.provisioned = true;
        self.update_guest_time(vm, trace).await
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
        let mac = self.prl.mac(vm).await.map_err(preparing)?;
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
            preparing(err)
        })
    }

    async fn kill_and_unregister(&self, vm: &str) {
        let _ = self.prl.kill(vm).await;
        let _ = self.prl.delete(vm).await;
        let _ = self.prl.unregister(vm).await;
    }
}

fn preparing(err: ToolError) -> ExecError {
    ExecError::Prepare {
        executor: NAME,
        source: Box::new(err),
    }
}

impl Executor for ParallelsExecutor {
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
                let _ = self.prl.kill(&vm).await;
                if self.config.disable_snapshots || !self.provisioned {
                    let _ = self.prl.delete(&vm).await;
                }
            }
        })
    }
}

/// Stops the runner's VMs a killed runnel left running and deletes its per-job VMs. Returns
/// how many VMs were touched.
pub async fn sweep_parallels(prlctl: PathBuf, owners: &[VmOwner]) -> Result<usize, ToolError> {
    let prl = Prlctl {
        tool: Tool { program: prlctl },
    };
    let mut touched = 0;
    for vm in prl.list().await? {
        let Some(kind) = owners.iter().find_map(|owner| owner.owns(&vm)) else {
            continue;
        };
        match kind {
            VmKind::Persistent => {
                if prl.status(&vm).await.is_ok_and(|s| s.0 == "running") {
                    let _ = prl.kill(&vm).await;
                    touched += 1;
                }
            }
            VmKind::JobClone => {
                let _ = prl.kill(&vm).await;
                let _ = prl.delete(&vm).await;
                touched += 1;
            }
        }
    }
    Ok(touched)
}
