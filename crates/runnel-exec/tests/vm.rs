//! The VirtualBox and Parallels executors against stand-in `vboxmanage` and `prlctl` programs
//! (`tests/standins/`, set up by `runnel_exec::vm::StandIn`; neither hypervisor can run on the
//! test machines). The tests assert the exact command sequence gitlab-runner issues and the
//! cleanup on failure paths.

use std::path::Path;

use runnel_api::{FailureReason, Image};
use runnel_exec::ssh::TestSshd;
use runnel_exec::test_support::{PayloadBuilder, TestProject, collect_events};
use runnel_exec::vm::{
    ParallelsConfig, ParallelsExecutor, StandIn, VirtualBoxConfig, VirtualBoxExecutor, VmOwner,
    sweep_parallels, sweep_virtualbox,
};
use runnel_exec::{Executor, JobContext, JobEvent, JobOutcome, JobStatus, run_job_with};
use tokio::sync::mpsc;

fn owner() -> VmOwner {
    VmOwner {
        short_token: "tok123456".into(),
        concurrent_id: 0,
        project_concurrent_id: 0,
    }
}

/// Runs a job whose `prepare` may fail; returns the outcome and the trace log.
async fn run_raw(
    executor: &mut dyn Executor,
    payload: runnel_api::JobPayload,
    ctx: JobContext,
) -> (JobOutcome, String) {
    let log = ctx
        .trace_log
        .clone()
        .expect("test contexts have a trace log");
    let (tx, rx) = mpsc::unbounded_channel();
    let result = run_job_with(executor, payload, ctx, tx).await;
    let events = collect_events(rx).await;
    let outcome = match (result, events.last()) {
        (Ok(outcome), _) => outcome,
        (Err(_), Some(JobEvent::Finished { outcome, .. })) => outcome.clone(),
        (Err(err), _) => panic!("no outcome: {err}"),
    };
    let trace = String::from_utf8_lossy(&std::fs::read(&log).expect("the trace log")).into_owned();
    (outcome, trace)
}

fn vbox_config(standin: &StandIn, sshd: &TestSshd, scratch: &Path) -> VirtualBoxConfig {
    let mut ssh = sshd.root_config(scratch);
    // The forwarded port is new for every VM: no known_hosts entry can name it.
    ssh.disable_strict_host_key_checking = true;
    ssh.port = 22;
    let mut config = VirtualBoxConfig::new("runnel-base", ssh);
    config.vboxmanage = standin.program();
    config.owner = owner();
    config
}

const VM: &str = "runnel-base-runner-tok123456-concurrent-0";

#[tokio::test]
async fn virtualbox_first_job_clones_the_base_and_the_next_restores_the_snapshot() {
    let Some(sshd) = TestSshd::find() else { return };
    let standin = StandIn::new("vboxmanage", &sshd);
    standin.vbox_vm("runnel-base", &["Base State"]);
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let project = TestProject::new();
    let payload = PayloadBuilder::new(301, "vbox")
        .script(&["echo in-vm dir=$CI_PROJECT_DIR"])
        .build();
    let mut executor = VirtualBoxExecutor::new(vbox_config(&standin, &sshd, scratch.path()));
    let (outcome, trace) = run_raw(&mut executor, payload.clone(), project.context("301")).await;
    assert_eq!(outcome.status, JobStatus::Success, "{trace}");
    assert!(
        trace.contains("Using VirtualBox version 7.0.14r161095 executor..."),
        "{trace}"
    );
    assert!(trace.contains("Creating new VM..."), "{trace}");
    assert!(
        trace.contains(&format!(
            "in-vm dir={}/remote-builds/acme/app",
            scratch.path().display()
        )),
        "{trace}"
    );
    let vm = VM;
    assert_eq!(
        standin.calls(),
        [
            "--version".to_owned(),
            format!("showvminfo {vm}"),
            format!("showvminfo {vm}"),
            format!("showvminfo {vm} --machinereadable"),
            format!("unregistervm {vm}"),
            format!("showvminfo {vm}"),
            "snapshot runnel-base list --machinereadable".to_owned(),
            "snapshot runnel-base list --machinereadable".to_owned(),
            format!(
                "clonevm runnel-base --mode machine --name {vm} --register --snapshot \"Base State\" --options link"
            ),
            format!("showvminfo {vm}"),
            "list vms -l".to_owned(),
            format!("modifyvm {vm} --natpf1 guestssh,tcp,127.0.0.1,PORT,,22"),
            format!("startvm {vm} --type headless"),
            format!("snapshot {vm} take Started"),
            format!("showvminfo {vm} --machinereadable"),
            format!("showvminfo {vm}"),
            format!("controlvm {vm} poweroff"),
        ]
    );
    assert_eq!(standin.read(vm, "state"), "poweroff", "kept, powered off");

    standin.clear_calls();
    let mut executor = VirtualBoxExecutor::new(vbox_config(&standin, &sshd, scratch.path()));
    let (outcome, trace) = run_raw(&mut executor, payload, project.context("302")).await;
    assert_eq!(outcome.status, JobStatus::Success, "{trace}");
    assert!(trace.contains("Restoring VM from snapshot..."), "{trace}");
    assert_eq!(
        standin.calls(),
        [
            "--version".to_owned(),
            format!("showvminfo {vm}"),
            format!("snapshot {vm} restorecurrent"),
            format!("showvminfo {vm}"),
            format!("showvminfo {vm} --machinereadable"),
            format!("startvm {vm} --type headless"),
            format!("showvminfo {vm} --machinereadable"),
            format!("showvminfo {vm}"),
            format!("controlvm {vm} poweroff"),
        ]
    );
}

#[tokio::test]
async fn virtualbox_disable_snapshots_makes_a_full_clone_and_deletes_it() {
    let Some(sshd) = TestSshd::find() else { return };
    let standin = StandIn::new("vboxmanage", &sshd);
    standin.vbox_vm("runnel-base", &[]);
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let project = TestProject::new();
    let mut config = vbox_config(&standin, &sshd, scratch.path());
    config.disable_snapshots = true;
    config.base_folder = Some("/vms".into());
    config.start_type = Some("gui".into());
    let payload = PayloadBuilder::new(303, "full")
        .script(&["echo in-clone"])
        .build();
    let (outcome, trace) = run_raw(
        &mut VirtualBoxExecutor::new(config),
        payload,
        project.context("303"),
    )
    .await;
    assert_eq!(outcome.status, JobStatus::Success, "{trace}");
    let vm = "runnel-base-runner-tok123456-project-1-concurrent-0";
    let calls = standin.calls();
    assert!(
        calls.contains(&format!(
            "clonevm runnel-base --mode machine --name {vm} --register --basefolder /vms"
        )),
        "{calls:#?}"
    );
    assert!(
        calls.contains(&format!("startvm {vm} --type gui")),
        "{calls:#?}"
    );
    assert!(
        !calls.iter().any(|c| c.contains(" take ")),
        "no snapshot: {calls:#?}"
    );
    assert_eq!(
        calls[calls.len() - 2..],
        [
            format!("controlvm {vm} poweroff"),
            format!("unregistervm {vm} --delete")
        ]
    );
    assert!(!standin.exists(vm), "the clone is gone");
}

#[tokio::test]
async fn virtualbox_failed_start_deletes_the_new_vm() {
    let Some(sshd) = TestSshd::find() else { return };
    let standin = StandIn::new("vboxmanage", &sshd);
    standin.vbox_vm("runnel-base", &["Base State"]);
    standin.fail("startvm");
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let project = TestProject::new();
    let payload = PayloadBuilder::new(304, "broken")
        .script(&["echo never"])
        .build();
    let (outcome, trace) = run_raw(
        &mut VirtualBoxExecutor::new(vbox_config(&standin, &sshd, scratch.path())),
        payload,
        project.context("304"),
    )
    .await;
    assert_eq!(
        outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        trace.contains("failed to prepare the `virtualbox` executor")
            && trace.contains("injected failure of 'startvm'"),
        "{trace}"
    );
    let calls = standin.calls();
    assert_eq!(
        calls[calls.len() - 2..],
        [
            format!("controlvm {VM} poweroff"),
            format!("unregistervm {VM} --delete")
        ],
        "a VM that never ran is deleted"
    );
    assert!(!standin.exists(VM));
}

#[tokio::test]
async fn virtualbox_image_outside_allowed_images_is_refused_before_any_clone() {
    let Some(sshd) = TestSshd::find() else { return };
    let standin = StandIn::new("vboxmanage", &sshd);
    standin.vbox_vm("runnel-base", &["Base State"]);
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let project = TestProject::new();
    let mut config = vbox_config(&standin, &sshd, scratch.path());
    config.allowed_images = vec!["^ubuntu-.*$".into()];
    let mut payload = PayloadBuilder::new(305, "image").script(&["true"]).build();
    payload.image = Some(Image {
        name: "windows-11".into(),
        ..Image::default()
    });
    let (outcome, trace) = run_raw(
        &mut VirtualBoxExecutor::new(config),
        payload,
        project.context("305"),
    )
    .await;
    assert_eq!(
        outcome.failure_reason,
        Some(FailureReason::RunnerConfigurationError),
        "{trace}"
    );
    assert!(
        trace.contains("The \"windows-11\" image is not present on list of allowed images")
            && trace.contains("- ^ubuntu-.*$"),
        "{trace}"
    );
    assert_eq!(standin.calls(), ["--version"]);
}

#[tokio::test]
async fn virtualbox_sweep_powers_off_and_deletes_what_a_killed_runner_left() {
    let Some(sshd) = TestSshd::find() else { return };
    let standin = StandIn::new("vboxmanage", &sshd);
    standin.vbox_vm("runnel-base", &[]);
    standin.vbox_vm(VM, &["Started"]);
    standin.write(VM, "state", "running");
    let clone = "runnel-base-runner-tok123456-project-4-concurrent-1";
    standin.vbox_vm(clone, &[]);
    standin.write(clone, "state", "running");
    let other = "runnel-base-runner-another1-concurrent-0";
    standin.vbox_vm(other, &[]);
    standin.write(other, "state", "running");
    let touched = sweep_virtualbox(standin.program(), &[owner()])
        .await
        .expect("the sweep runs");
    assert_eq!(touched, 2);
    assert_eq!(
        standin.read(VM, "state"),
        "poweroff",
        "kept for the next job"
    );
    assert!(!standin.exists(clone), "the per-job clone is deleted");
    assert_eq!(
        standin.read(other, "state"),
        "running",
        "another runner's VM"
    );
}

fn prl_config(standin: &StandIn, sshd: &TestSshd, scratch: &Path) -> ParallelsConfig {
    let mut config = ParallelsConfig::new("runnel-base", sshd.root_config(scratch));
    config.prlctl = standin.program();
    config.dhcp_leases = standin.root().join("leases");
    config.owner = owner();
    config
}

#[tokio::test]
async fn parallels_job_runs_in_a_vm_made_from_the_template() {
    let Some(sshd) = TestSshd::find() else { return };
    let standin = StandIn::new("prlctl", &sshd);
    standin.prl_vm("runnel-base", "vm", "stopped");
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let project = TestProject::new();
    let payload = PayloadBuilder::new(311, "prl")
        .script(&["echo in-parallels"])
        .build();
    let (outcome, trace) = run_raw(
        &mut ParallelsExecutor::new(prl_config(&standin, &sshd, scratch.path())),
        payload,
        project.context("311"),
    )
    .await;
    assert_eq!(outcome.status, JobStatus::Success, "{trace}");
    assert!(
        trace.contains("Using Parallels 19.1.0 executor..."),
        "{trace}"
    );
    assert!(trace.contains("\nin-parallels"), "{trace}");
    assert!(
        trace.contains("Neither sntp nor ntpdate are available in a guest VM"),
        "{trace}"
    );
    let vm = VM;
    let status = |name: &str| format!("list {name} --no-header --output status");
    assert_eq!(
        standin.calls(),
        [
            "--version".to_owned(),
            status(vm),
            status(vm),
            status(vm),
            status("runnel-base-template"),
            status("runnel-base-template"),
            "clone runnel-base --name runnel-base-template --template --linked".to_owned(),
            format!("create {vm} --ostemplate runnel-base-template"),
            format!("start {vm}"),
            format!("exec {vm} exit 0"),
            format!("list -i {vm}"),
            format!("snapshot {vm} --name Started"),
            status(vm),
            format!("exec {vm} which ntpdate"),
            format!("exec {vm} which sntp"),
            format!("stop {vm} --kill"),
        ]
    );
    assert_eq!(standin.read(vm, "status"), "stopped", "kept, stopped");
}

#[tokio::test]
async fn parallels_failed_start_deletes_the_new_vm() {
    let Some(sshd) = TestSshd::find() else { return };
    let standin = StandIn::new("prlctl", &sshd);
    standin.prl_vm("runnel-base", "vm", "stopped");
    standin.fail("start");
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let project = TestProject::new();
    let mut config = prl_config(&standin, &sshd, scratch.path());
    config.disable_snapshots = true;
    let payload = PayloadBuilder::new(312, "broken")
        .script(&["echo never"])
        .build();
    let (outcome, trace) = run_raw(
        &mut ParallelsExecutor::new(config),
        payload,
        project.context("312"),
    )
    .await;
    assert_eq!(
        outcome.failure_reason,
        Some(FailureReason::RunnerSystemFailure)
    );
    assert!(
        trace.contains("failed to prepare the `parallels` executor"),
        "{trace}"
    );
    let vm = "runnel-base-runner-tok123456-project-1-concurrent-0";
    let calls = standin.calls();
    assert_eq!(
        calls[calls.len() - 2..],
        [format!("stop {vm} --kill"), format!("delete {vm}")]
    );
    assert!(!standin.exists(vm));
}

#[tokio::test]
async fn parallels_sweep_deletes_per_job_vms() {
    let Some(sshd) = TestSshd::find() else { return };
    let standin = StandIn::new("prlctl", &sshd);
    standin.prl_vm(VM, "vm", "running");
    let clone = "runnel-base-runner-tok123456-project-4-concurrent-1";
    standin.prl_vm(clone, "vm", "running");
    standin.prl_vm("runnel-base", "vm", "running");
    let touched = sweep_parallels(standin.program(), &[owner()])
        .await
        .expect("the sweep runs");
    assert_eq!(touched, 2);
    assert_eq!(standin.read(VM, "status"), "stopped");
    assert!(!standin.exists(clone));
    assert_eq!(standin.read("runnel-base", "status"), "running");
}

/// A job picking the base VM `ubuntu-22` through `allowed_images`.
fn ubuntu_job(id: u64) -> runnel_api::JobPayload {
    let mut payload = PayloadBuilder::new(id, "image")
        .script(&["echo in-image"])
        .build();
    payload.image = Some(Image {
        name: "ubuntu-22".into(),
        ..Image::default()
    });
    payload
}

/// GitLab: both clone the job's base VM, but gitlab-runner's `getVMName` names VirtualBox's
/// per-job VM after `base_name` (`executors/virtualbox/virtualbox.go`:
/// `s.Config.VirtualBox.BaseName + "-" + s.Build.ProjectUniqueName()`) and Parallels' after the
/// job's base VM (`executors/parallels/parallels.go`: `baseName + "-" + ...`).
#[tokio::test]
async fn allowed_image_is_cloned_and_per_job_vms_are_named_as_gitlab_runner_names_them() {
    let Some(sshd) = TestSshd::find() else { return };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let project = TestProject::new();

    let vbox = StandIn::new("vboxmanage", &sshd);
    vbox.vbox_vm("ubuntu-22", &[]);
    let mut config = vbox_config(&vbox, &sshd, scratch.path());
    config.disable_snapshots = true;
    config.allowed_images = vec!["^ubuntu-.*$".into()];
    let mut executor = VirtualBoxExecutor::new(config);
    let (outcome, trace) = run_raw(&mut executor, ubuntu_job(321), project.context("321")).await;
    assert_eq!(outcome.status, JobStatus::Success, "{trace}");
    let vm = "runnel-base-runner-tok123456-project-1-concurrent-0";
    let calls = vbox.calls();
    assert!(
        calls.contains(&format!(
            "clonevm ubuntu-22 --mode machine --name {vm} --register"
        )),
        "{calls:#?}"
    );
    assert!(!vbox.exists(vm), "the clone is gone");

    let prl = StandIn::new("prlctl", &sshd);
    prl.prl_vm("ubuntu-22", "vm", "stopped");
    let mut config = prl_config(&prl, &sshd, scratch.path());
    config.disable_snapshots = true;
    config.allowed_images = vec!["^ubuntu-.*$".into()];
    let mut executor = ParallelsExecutor::new(config);
    let (outcome, trace) = run_raw(&mut executor, ubuntu_job(322), project.context("322")).await;
    assert_eq!(outcome.status, JobStatus::Success, "{trace}");
    let vm = "ubuntu-22-runner-tok123456-project-1-concurrent-0";
    let calls = prl.calls();
    assert!(
        calls.contains(&"clone ubuntu-22 --name ubuntu-22-template --template --linked".to_owned())
            && calls.contains(&format!("create {vm} --ostemplate ubuntu-22-template")),
        "{calls:#?}"
    );
    assert!(!prl.exists(vm), "the per-job VM is gone");
}
