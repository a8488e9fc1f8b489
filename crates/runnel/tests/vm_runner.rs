//! `runnel run` with `executor = "virtualbox"` and `"parallels"` end to end: the binary, the
//! fake GitLab, the stand-in `vboxmanage`/`prlctl` (`runnel_exec::vm::StandIn`; neither
//! hypervisor can run on the test machines) and the real test sshd the stand-in VMs reach. With
//! `disable_snapshots` each job gets its own clone: the job succeeds with gitlab-runner's exact
//! calls, and no clone is left after the job, after a cancel, or after a SIGKILL of the daemon
//! and its restart (the start-up sweep finds the clones by their names,
//! `<base>-runner-<short token>-project-<id>-concurrent-<n>`).

use std::path::PathBuf;

use regex::Regex;
use runnel_exec::ssh::TestSshd;
use runnel_exec::vm::{DHCP_LEASES_ENV, StandIn};
use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec};
use tokio::process::Child;

mod support;

/// A daemon's directory, its stand-in tool and its fake GitLab.
struct VmRunner {
    dir: tempfile::TempDir,
    standin: StandIn,
    fake: FakeGitLab,
    config: PathBuf,
}

impl VmRunner {
    /// A runner of `executor` whose `[runners.<executor>]` section is `section`, with the stand-in
    /// `tool`; `ssh_port` is the `[runners.ssh]` port (Parallels reaches the leased address).
    async fn new(
        tool: &'static str,
        executor: &str,
        section: &str,
        ssh_port: bool,
    ) -> Option<Self> {
        let sshd = TestSshd::find()?;
        let standin = StandIn::new(tool, &sshd);
        let fake = FakeGitLab::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = if ssh_port {
            format!("port = \"{}\"", sshd.port)
        } else {
            String::new()
        };
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"concurrent = 1
check_interval = 1
shutdown_timeout = 10

[[runners]]
  name = "vm"
  url = "{url}"
  token = "{token}"
  executor = "{executor}"
  builds_dir = "{builds}"
  cache_dir = "{cache}"
  [runners.ssh]
    user = "root"
    identity_file = "{key}"
    disable_strict_host_key_checking = true
    {port}
  [runners.{executor}]
{section}
"#,
                url = fake.url(),
                token = fake.create_runner(),
                builds = dir.path().join("remote-builds").display(),
                cache = dir.path().join("cache").display(),
                key = sshd.identity_file().display(),
            ),
        )
        .expect("write config.toml");
        Some(Self {
            dir,
            standin,
            fake,
            config,
        })
    }

    fn start(&self, log: &str) -> Child {
        support::runnel_run(self.dir.path(), &self.config, &self.dir.path().join(log))
            .env("PATH", self.standin.path_env())
            .env(DHCP_LEASES_ENV, self.standin.root().join("leases"))
            .spawn()
            .expect("runnel run starts")
    }

    /// The per-job clone the calls name.
    fn clone_name(&self) -> String {
        let re = Regex::new(r"runnel-base-runner-\S+-project-\d+-concurrent-0").expect("regex");
        let calls = self.standin.calls().join("\n");
        re.find(&calls)
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| panic!("no clone in {calls}"))
    }

    /// A job succeeds in a clone with `expected(clone)` calls, and the clone is gone after it;
    /// a canceled job leaves no clone; a SIGKILLed daemon's clone is removed when it restarts.
    async fn check(&self, banner: &str, expected: impl Fn(&str) -> Vec<String>, kept: &[&str]) {
        let ok = self
            .fake
            .add_job(JobSpec::script(&["echo \"in-vm dir=$CI_PROJECT_DIR\""]));
        let mut daemon = self.start("run1.log");
        let job = self.fake.wait_for_final(ok).await;
        let trace = self.fake.trace_text(ok);
        assert_eq!(job.state, FakeJobState::Success, "{trace}");
        assert!(trace.contains(banner), "{trace}");
        let builds = self.dir.path().join("remote-builds");
        assert!(
            trace.contains(&format!("in-vm dir={}/", builds.display())),
            "{trace}"
        );
        let clone = self.clone_name();
        assert_eq!(self.standin.calls(), expected(&clone));
        assert_eq!(self.standin.vms(), kept, "the clone is removed");

        let canceled = self
            .fake
            .add_job(JobSpec::script(&["echo started", "sleep 1000"]));
        self.fake.wait_for_trace(canceled, "started").await;
        assert!(self.standin.exists(&clone), "{:?}", self.standin.vms());
        self.fake.cancel(canceled, false);
        support::wait_until("the canceled job's clone is removed", || {
            !self.standin.exists(&clone)
        })
        .await;

        let killed = self
            .fake
            .add_job(JobSpec::script(&["echo started", "sleep 1000"]));
        self.fake.wait_for_trace(killed, "started").await;
        daemon.start_kill().expect("SIGKILL");
        let _ = daemon.wait().await;
        assert!(
            self.standin.exists(&clone),
            "the killed daemon left its clone"
        );
        let _restarted = self.start("run2.log");
        support::wait_until("the restarted daemon removes the clone", || {
            !self.standin.exists(&clone)
        })
        .await;
        assert_eq!(self.standin.vms(), kept);
    }
}

fn owned(calls: &[&str]) -> Vec<String> {
    calls.iter().map(|c| (*c).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtualbox_runner_runs_each_job_in_a_clone_it_always_removes() {
    let section = "    base_name = \"runnel-base\"\n    disable_snapshots = true\n";
    let Some(runner) = VmRunner::new("vboxmanage", "virtualbox", section, false).await else {
        return;
    };
    runner.standin.vbox_vm("runnel-base", &[]);
    // GitLab: gitlab-runner `executors/virtualbox/executor_virtualbox.go` with
    // `disable_snapshots`: a full clone, no snapshot, deleted after the job.
    let expected = |vm: &str| {
        // The start-up sweep lists the VMs first.
        let mut calls = owned(&["list vms", "--version"]);
        calls.extend([
            format!("showvminfo {vm}"),
            format!("showvminfo {vm}"),
            format!("showvminfo {vm}"),
            format!("showvminfo {vm} --machinereadable"),
            format!("unregistervm {vm}"),
            format!("showvminfo {vm}"),
            "snapshot runnel-base list --machinereadable".to_owned(),
            format!("clonevm runnel-base --mode machine --name {vm} --register"),
            format!("showvminfo {vm}"),
            "list vms -l".to_owned(),
            format!("modifyvm {vm} --natpf1 guestssh,tcp,127.0.0.1,PORT,,22"),
            format!("startvm {vm} --type headless"),
            format!("showvminfo {vm} --machinereadable"),
            format!("showvminfo {vm}"),
            format!("controlvm {vm} poweroff"),
            format!("unregistervm {vm} --delete"),
        ]);
        calls
    };
    runner
        .check(
            "Using VirtualBox version 7.0.14r161095 executor...",
            expected,
            &["runnel-base"],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallels_runner_runs_each_job_in_a_vm_it_always_removes() {
    let section = "    base_name = \"runnel-base\"\n    disable_snapshots = true\n";
    let Some(runner) = VmRunner::new("prlctl", "parallels", section, true).await else {
        return;
    };
    runner.standin.prl_vm("runnel-base", "vm", "stopped");
    // GitLab: gitlab-runner `executors/parallels/executor_parallels.go` with
    // `disable_snapshots`: a VM from the template, no snapshot, deleted after the job.
    let expected = |vm: &str| {
        let status = |name: &str| format!("list {name} --no-header --output status");
        vec![
            // The start-up sweep lists the VMs first.
            "list --all --no-header --output name".to_owned(),
            "--version".to_owned(),
            status(vm),
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
            status(vm),
            format!("exec {vm} which ntpdate"),
            format!("exec {vm} which sntp"),
            format!("stop {vm} --kill"),
            format!("delete {vm}"),
        ]
    };
    runner
        .check(
            "Using Parallels 19.1.0 executor...",
            expected,
            &["runnel-base", "runnel-base-template"],
        )
        .await;
}
