//! `runnel exec --executor virtualbox` with gitlab-runner `register`'s flags
//! (`--virtualbox-base-name`, `--ssh-user`, …) against the stand-in `vboxmanage` of
//! `crates/runnel-exec/tests/standins/` (VirtualBox cannot run on the test machines): it accepts
//! only VirtualBox's argument forms, records every call and "starts" a VM by forwarding its port
//! to the real test sshd, so the job really runs over SSH.

use std::path::Path;
use std::process::{Command, Stdio};

use regex::Regex;
use runnel_exec::ssh::TestSshd;

mod support;

#[test]
fn exec_virtualbox_flags_clone_the_base_vm_with_gitlab_runners_calls() {
    let Some(sshd) = TestSshd::find() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let standins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runnel-exec/tests/standins");
    for file in ["vboxmanage", "forward.py"] {
        std::fs::copy(standins.join(file), bin.join(file)).expect("copy the stand-in");
    }
    std::fs::write(dir.path().join("sshd_port"), sshd.port.to_string()).expect("write");
    let base = dir.path().join("state/runnel-base");
    std::fs::create_dir_all(&base).expect("mkdir");
    std::fs::write(base.join("state"), "poweroff\n").expect("write");
    std::fs::write(base.join("snapshots"), "Base State\n").expect("write");
    std::fs::write(base.join("current"), "Base State").expect("write");

    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).expect("repo dir");
    std::fs::write(
        repo.join(".gitlab-ci.yml"),
        "job:\n  script:\n    - echo \"in-vm dir=$CI_PROJECT_DIR\"\n",
    )
    .expect("write the pipeline");
    support::commit_repo(&repo, "pipeline");
    let remote_builds = dir.path().join("remote-builds");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["exec", "-C"])
            .arg(&repo)
            .args(args)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .expect("runnel runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let key = sshd.identity_file().display().to_string();
    let builds = remote_builds.display().to_string();
    let (code, text) = run(&[
        "--executor",
        "virtualbox",
        "--virtualbox-base-name",
        "runnel-base",
        "--virtualbox-base-snapshot",
        "Base State",
        "--ssh-user",
        "root",
        "--ssh-identity-file",
        &key,
        "--ssh-disable-strict-host-key-checking",
        "--builds-dir",
        &builds,
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("in-vm dir={builds}/0/")),
        "the job ran in the VM's builds directory: {text}"
    );
    let log = std::fs::read_to_string(dir.path().join("calls.log")).expect("the calls");
    let port = Regex::new(r"127\.0\.0\.1,\d+,,").expect("regex");
    let calls: Vec<String> = log
        .lines()
        .map(|l| port.replace_all(l, "127.0.0.1,PORT,,").into_owned())
        .collect();
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
    let (code, text) = run(&["--virtualbox-base-name", "runnel-base"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("need `--executor virtualbox`"), "{text}");
    let (code, text) = run(&["--executor", "virtualbox", "--parallels-base-name", "macos"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("need `--executor parallels`"), "{text}");
}
