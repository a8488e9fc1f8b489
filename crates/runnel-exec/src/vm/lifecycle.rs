//! The VM lifecycle the VirtualBox and Parallels executors share: gitlab-runner's flow in
//! `executors/virtualbox` and `executors/parallels`, with what differs between the two
//! hypervisors behind [`Hypervisor`] (the flow's tool-specific steps) and [`VmTool`] (the calls
//! the flow and the start-up sweep make of the tool itself).
//!
//! The flow: the VM is `<base>-runner-<short token>-concurrent-<n>`, kept between jobs, or with
//! `disable_snapshots` `<base>-runner-<short>-project-<id>-concurrent-<n>`, made for the job
//! (an old one of that name is removed first). A kept VM is restored from its snapshot (a VM
//! that cannot be is removed); a missing VM is created, started and waited for, and a kept one
//! gets its `Started` snapshot. The VM is then started if needed, waited for, and the scripts
//! run with the SSH executor. Cleanup stops the VM and removes it when it is a per-job VM or
//! never became reachable.

use std::future::Future;
use std::path::PathBuf;

use runnel_api::FailureReason;

use super::image::{VmKind, VmOwner, base_name};
use super::tool::ToolError;
use crate::error::ExecError;
use crate::executor::{PreparedJob, StageRun};
use crate::process::ScriptEnd;
use crate::ssh::{SshConfig, SshExecutor};
use crate::trace::Trace;

/// The calls of a hypervisor's tool that the shared flow and the sweep make.
pub(crate) trait VmTool: Send + Sync {
    /// Whether the VM `vm` exists.
    fn exists(&self, vm: &str) -> impl Future<Output = bool> + Send;
    /// Whether a kept VM runs (the sweep stops it).
    fn is_running(&self, vm: &str) -> impl Future<Output = bool> + Send;
    /// Takes the snapshot `name` of `vm`.
    fn take_snapshot(
        &self,
        vm: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), ToolError>> + Send;
    /// Stops `vm` at once.
    fn kill(&self, vm: &str) -> impl Future<Output = Result<(), ToolError>> + Send;
    /// Deletes `vm` and its files.
    fn delete(&self, vm: &str) -> impl Future<Output = Result<(), ToolError>> + Send;
    /// Unregisters `vm`.
    fn unregister(&self, vm: &str) -> impl Future<Output = Result<(), ToolError>> + Send;
    /// The names of all VMs.
    fn list(&self) -> impl Future<Output = Result<Vec<String>, ToolError>> + Send;
}

/// The settings of the shared flow.
#[derive(Debug, Clone)]
pub(crate) struct VmSettings {
    /// `base_name`.
    pub(crate) base_name: String,
    /// `disable_snapshots`.
    pub(crate) disable_snapshots: bool,
    /// `allowed_images`.
    pub(crate) allowed_images: Vec<String>,
    /// Whose VMs they are.
    pub(crate) owner: VmOwner,
}

/// A hypervisor's steps of the flow.
pub(crate) trait Hypervisor: Send {
    /// Its tool.
    type Tool: VmTool;
    /// The executor's name: `virtualbox`, `parallels`.
    const NAME: &'static str;
    /// The product in gitlab-runner's messages: `VirtualBox`, `Parallels`.
    const PRODUCT: &'static str;
    /// Whether a per-job VM is named after the job's base VM (its allowed `image:`, Parallels)
    /// rather than `base_name` (VirtualBox). Both clone the job's base VM; only the name differs.
    /// GitLab: `executors/parallels/parallels.go` `getVMName` (`baseName + "-" +
    /// ProjectUniqueName()`) against `executors/virtualbox/virtualbox.go` `getVMName`
    /// (`Config.VirtualBox.BaseName + "-" + ProjectUniqueName()`); kept VMs are
    /// `<base VM>-runner-<short>-concurrent-<n>` in both.
    const JOB_VM_FROM_IMAGE: bool;

    /// The tool.
    fn tool(&self) -> &Self::Tool;
    /// The settings of the shared flow.
    fn settings(&self) -> &VmSettings;
    /// The trace line naming the tool's version (`Using VirtualBox version … executor...`).
    fn banner(&self) -> impl Future<Output = Result<String, ToolError>> + Send;
    /// Before the flow uses `vm` (Parallels unregisters an invalid VM). Default: nothing.
    fn check(&self, vm: &str) -> impl Future<Output = ()> + Send {
        let _ = vm;
        std::future::ready(())
    }
    /// Restores a kept VM from its snapshot.
    fn restore(&self, vm: &str) -> impl Future<Output = Result<(), ToolError>> + Send;
    /// Creates `vm` from `base`, starts it and waits until SSH answers.
    fn create(
        &mut self,
        base: &str,
        vm: &str,
        trace: &mut Trace,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;
    /// Starts `vm` unless it runs, and waits until SSH answers (gitlab-runner `ensureVMStarted`).
    fn start(
        &mut self,
        vm: &str,
        trace: &mut Trace,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;
    /// After a successful start: the rest of the preparation, and the login of the job.
    fn login(
        &mut self,
        vm: &str,
        trace: &mut Trace,
    ) -> impl Future<Output = Result<SshConfig, ExecError>> + Send;
}

/// The executor of the shared flow for the hypervisor `H`.
#[derive(Debug)]
pub(crate) struct VmExecutor<H> {
    hv: H,
    vm: Option<String>,
    provisioned: bool,
    ssh: Option<SshExecutor>,
}

/// A tool's failure while preparing the executor `name`.
pub(crate) fn preparing(name: &'static str) -> impl Fn(ToolError) -> ExecError {
    move |err| ExecError::Prepare {
        executor: name,
        source: Box::new(err),
    }
}

impl<H: Hypervisor> VmExecutor<H> {
    pub(crate) fn new(hv: H) -> Self {
        Self {
            hv,
            vm: None,
            provisioned: false,
            ssh: None,
        }
    }

    pub(crate) async fn prepare(
        &mut self,
        job: &PreparedJob,
        trace: &mut Trace,
    ) -> Result<(), ExecError> {
        let settings = self.hv.settings().clone();
        if settings.base_name.is_empty() {
            return Err(ExecError::JobFailed {
                reason: FailureReason::RunnerConfigurationError,
                message: format!("missing BaseName setting from {} configuration", H::PRODUCT),
            });
        }
        let banner = self.hv.banner().await.map_err(preparing(H::NAME))?;
        trace.println(&banner);
        let base = base_name(job, &settings.base_name, &settings.allowed_images, trace)?;
        let vm = if settings.disable_snapshots {
            let named = if H::JOB_VM_FROM_IMAGE {
                &base
            } else {
                &settings.base_name
            };
            settings
                .owner
                .job_vm(named, job.payload.job_info.project_id)
        } else {
            settings.owner.persistent_vm(&base)
        };
        self.vm = Some(vm.clone());
        self.hv.check(&vm).await;
        self.provide(&base, &vm, settings.disable_snapshots, trace)
            .await?;
        self.hv.start(&vm, trace).await?;
        self.provisioned = true;
        let login = self.hv.login(&vm, trace).await?;
        let mut ssh = SshExecutor::named(login, H::NAME);
        let connected = ssh.connect().await;
        self.ssh = Some(ssh);
        connected.map_err(|err| err.preparing(H::NAME))
    }

    /// Restores the kept VM, or creates the VM (and its `Started` snapshot).
    async fn provide(
        &mut self,
        base: &str,
        vm: &str,
        disable_snapshots: bool,
        trace: &mut Trace,
    ) -> Result<(), ExecError> {
        if disable_snapshots && self.hv.tool().exists(vm).await {
            kill_and_unregister(self.hv.tool(), vm).await;
        }
        if self.hv.tool().exists(vm).await {
            trace.println("Restoring VM from snapshot...");
            if let Err(err) = self.hv.restore(vm).await {
                trace.println(&format!("Previous VM failed. Deleting, because {err}"));
                kill_and_unregister(self.hv.tool(), vm).await;
            }
        }
        if !self.hv.tool().exists(vm).await {
            trace.println("Creating new VM...");
            self.hv.create(base, vm, trace).await?;
            if !disable_snapshots {
                trace.println("Creating default snapshot...");
                self.hv
                    .tool()
                    .take_snapshot(vm, "Started")
                    .await
                    .map_err(preparing(H::NAME))?;
            }
        }
        Ok(())
    }

    pub(crate) async fn run(
        &mut self,
        job: &PreparedJob,
        stage: StageRun,
        trace: &mut Trace,
    ) -> Result<ScriptEnd, ExecError> {
        use crate::executor::Executor as _;
        match self.ssh.as_mut() {
            Some(ssh) => ssh.run(job, stage, trace).await,
            None => Err(crate::ssh::SshError::NotConnected.running(H::NAME)),
        }
    }

    pub(crate) fn remote_builds_dir(&self) -> Option<PathBuf> {
        use crate::executor::Executor as _;
        self.ssh.as_ref().and_then(|ssh| ssh.remote_builds_dir())
    }

    pub(crate) fn fetch_sources_remotely(&mut self) -> bool {
        use crate::executor::Executor as _;
        self.ssh
            .as_mut()
            .is_some_and(|ssh| ssh.fetch_sources_remotely())
    }

    pub(crate) async fn cleanup(&mut self, job: &PreparedJob) {
        use crate::executor::Executor as _;
        if let Some(mut ssh) = self.ssh.take() {
            ssh.cleanup(job).await;
        }
        if let Some(vm) = self.vm.take() {
            let tool = self.hv.tool();
            let _ = tool.kill(&vm).await;
            if self.hv.settings().disable_snapshots || !self.provisioned {
                let _ = tool.delete(&vm).await;
            }
        }
    }
}

async fn kill_and_unregister(tool: &impl VmTool, vm: &str) {
    let _ = tool.kill(vm).await;
    let _ = tool.delete(vm).await;
    let _ = tool.unregister(vm).await;
}

/// Stops the owners' kept VMs a killed runnel left running and deletes their per-job VMs.
/// Returns how many VMs were touched.
pub(crate) async fn sweep(tool: &impl VmTool, owners: &[VmOwner]) -> Result<usize, ToolError> {
    let mut touched = 0;
    for vm in tool.list().await? {
        let Some(kind) = owners.iter().find_map(|owner| owner.owns(&vm)) else {
            continue;
        };
        match kind {
            VmKind::Persistent => {
                if tool.is_running(&vm).await {
                    let _ = tool.kill(&vm).await;
                    touched += 1;
                }
            }
            VmKind::JobClone => {
                let _ = tool.kill(&vm).await;
                let _ = tool.delete(&vm).await;
                touched += 1;
            }
        }
    }
    Ok(touched)
}

/// Implements [`Executor`](crate::executor::Executor) for a newtype over a [`VmExecutor`].
macro_rules! vm_executor {
    ($executor:ty, $hypervisor:ty) => {
        impl $crate::executor::Executor for $executor {
            fn name(&self) -> &'static str {
                <$hypervisor as $crate::vm::lifecycle::Hypervisor>::NAME
            }

            fn prepare<'a>(
                &'a mut self,
                job: &'a $crate::executor::PreparedJob,
                trace: &'a mut $crate::trace::Trace,
            ) -> $crate::store::BoxFuture<'a, Result<(), $crate::error::ExecError>> {
                Box::pin(self.0.prepare(job, trace))
            }

            fn run<'a>(
                &'a mut self,
                job: &'a $crate::executor::PreparedJob,
                stage: $crate::executor::StageRun,
                trace: &'a mut $crate::trace::Trace,
            ) -> $crate::store::BoxFuture<
                'a,
                Result<$crate::process::ScriptEnd, $crate::error::ExecError>,
            > {
                Box::pin(self.0.run(job, stage, trace))
            }

            fn remote_builds_dir(&self) -> Option<std::path::PathBuf> {
                self.0.remote_builds_dir()
            }

            fn fetch_sources_remotely(&mut self) -> bool {
                self.0.fetch_sources_remotely()
            }

            fn cleanup<'a>(
                &'a mut self,
                job: &'a $crate::executor::PreparedJob,
            ) -> $crate::store::BoxFuture<'a, ()> {
                Box::pin(self.0.cleanup(job))
            }
        }
    };
}
pub(crate) use vm_executor;
