//! `runnel exec --executor virtualbox|parallels` with gitlab-runner `register`'s flags
//! (`--virtualbox-base-name`, `--parallels-base-name`, `--ssh-user`, …) against the stand-in
//! `vboxmanage` and `prlctl` of `crates/runnel-exec/tests/standins/` (`runnel_exec::vm::StandIn`;
//! neither hypervisor can run on the test machines): they accept only the real tools' argument
//! forms, record every call and "start" a VM that reaches the real test sshd, so the job really
//! runs over SSH.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use runnel_exec::ssh::TestSshd;
use runnel_exec::vm::{DHCP_LEASES_ENV, StandIn};

mod support;

/// A committed project whose one job prints its directory, a stand-in tool, and where the VM's
/// builds go.
struct VmProject {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    standin: StandIn,
    /// `--builds-dir`: the remote builds directory.
    builds: String,
    /// `--ssh-identity-file`.
    key: String,
    /// `--ssh-port`: the test sshd's (a Parallels VM is reached at its leased address).
    port: String,
}

impl VmProject {
    fn new(tool: &'static str, sshd: &TestSshd) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).expect("repo dir");
        std::fs::write(
            repo.join(".gitlab-ci.yml"),
            "job:\n  script:\n    - echo \"in-vm dir=$CI_PROJECT_DIR\"\n",
        )
        .expect("write the pipeline");
        support::commit_repo(&repo, "pipeline");
        let builds = dir.path().join("remote-builds").display().to_string();
        Self {
            repo,
            standin: StandIn::new(tool, sshd),
            builds,
            key: sshd.identity_file().display().to_string(),
            port: sshd.port.to_string(),
            _dir: dir,
        }
    }

    /// Runs `runnel exec` with `args`: its exit code and output.
    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["exec", "-C"])
            .arg(&self.repo)
            .args(args)
            .env("PATH", self.standin.path_env())
            .env(DHCP_LEASES_ENV, self.standin.root().join("leases"))
            .stdin(Stdio::null())
            .output()
            .expect("runnel runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    /// Runs the job with `executor_flags` and the SSH login flags; asserts that it ran in the
    /// VM's builds directory.
    fn run_job(&self, executor_flags: &[&str]) {
        let login = [
            "--ssh-user",
            "root",
            "--ssh-identity-file",
            &self.key,
            "--ssh-disable-strict-host-key-checking",
            "--builds-dir",
            &self.builds,
        ];
        let (code, text) = self.run(&[executor_flags, &login[..]].concat());
        assert_eq!(code, Some(0), "{text}");
        assert!(
            text.contains(&format!("in-vm dir={}/0/", self.builds)),
            "the job ran in the VM's builds directory: {text}"
        );
    }
}

#[test]
fn exec_virtualbox_flags_clone_the_base_vm_with_gitlab_runners_calls() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = VmProject::new("vboxmanage", &sshd);
    project.standin.vbox_vm("runnel-base", &["Base State"]);
    project.run_job(&[
        "--executor",
        "virtualbox",
        "--virtualbox-base-name",
        "runnel-base",
        "--virtualbox-base-snapshot",
        "Base State",
    ]);
    let calls = project.standin.calls();
    // GitLab: gitlab-runner `executors/virtualbox/executor_virtualbox.go` and
    // `helpers/virtualbox/control.go`: the clone is `<base>-runner-<short token>-concurrent-<id>`.
    let vm = calls
        .get(1)
        .and_then(|c| c.strip_prefix("showvminfo "))
        .unwrap_or_default()
        .to_owned();
    assert!(
        vm.starts_with("runnel-base-runner-") && vm.ends_with("-concurrent-0"),
        "{calls:#?}"
    );
    assert_eq!(
        calls,
        [
            "--version".to_owned(),
            format!("showvminfo {vm}"),
            format!("showvminfo {vm}"),
            format!("showvminfo {vm} --machinereadable"),
            format!("unregistervm {vm}"),
            format!("showvminfo {vm}"),
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

    // A flag of another executor is refused before any job runs.
    let (code, text) = project.run(&["--virtualbox-base-name", "runnel-base"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("need `--executor virtualbox`"), "{text}");
    let (code, text) = project.run(&["--executor", "virtualbox", "--parallels-base-name", "macos"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("need `--executor parallels`"), "{text}");
}

#[test]
fn exec_parallels_flags_make_a_vm_per_job_with_gitlab_runners_calls() {
    let Some(sshd) = TestSshd::find() else { return };
    let project = VmProject::new("prlctl", &sshd);
    project.standin.prl_vm("runnel-base", "vm", "stopped");
    project.run_job(&[
        "--ssh-port",
        &project.port,
        "--executor",
        "parallels",
        "--parallels-base-name",
        "runnel-base",
        "--parallels-template-name",
        "runnel-tpl",
        "--parallels-disable-snapshots",
        "--parallels-time-server",
        "time.example.com",
    ]);
    let calls = project.standin.calls();
    // GitLab: gitlab-runner `executors/parallels/executor_parallels.go` and
    // `helpers/parallels/control.go`: with `disable_snapshots` the VM is
    // `<base>-runner-<short token>-project-<id>-concurrent-<id>`, deleted after the job.
    let vm = calls
        .get(1)
        .and_then(|c| c.strip_prefix("list "))
        .and_then(|c| c.strip_suffix(" --no-header --output status"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        vm.starts_with("runnel-base-runner-") && vm.ends_with("-concurrent-0"),
        "{calls:#?}"
    );
    let status = |name: &str| format!("list {name} --no-header --output status");
    assert_eq!(
        calls,
        [
            "--version".to_owned(),
            status(&vm),
            status(&vm),
            status(&vm),
            status(&vm),
            status("runnel-tpl"),
            status("runnel-tpl"),
            "clone runnel-base --name runnel-tpl --template --linked".to_owned(),
            format!("create {vm} --ostemplate runnel-tpl"),
            format!("start {vm}"),
            format!("exec {vm} exit 0"),
            format!("list -i {vm}"),
            status(&vm),
            format!("exec {vm} which ntpdate"),
            format!("exec {vm} which sntp"),
            format!("stop {vm} --kill"),
            format!("delete {vm}"),
        ]
    );
    assert!(!project.standin.exists(&vm), "the per-job VM is deleted");
}
