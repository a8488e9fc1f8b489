//! The stand-in `vboxmanage` and `prlctl` of the tests (`crates/runnel-exec/tests/standins/`;
//! neither hypervisor can run on the test machines), set up in a temporary directory: they
//! validate the argument forms, answer in the real tools' formats, record every call, and
//! "start" a VM by pointing it at the real test sshd, so each job really runs over SSH.

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::ssh::TestSshd;

/// A stand-in tool in a temporary directory: `bin/<tool>`, its state and its call log.
#[derive(Debug)]
pub struct StandIn {
    dir: tempfile::TempDir,
    tool: &'static str,
}

impl StandIn {
    /// `tool` (`vboxmanage` or `prlctl`) whose VMs reach `sshd`.
    pub fn new(tool: &'static str, sshd: &TestSshd) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins");
        for file in [tool, "forward.py"] {
            std::fs::copy(source.join(file), bin.join(file)).expect("copy the stand-in");
        }
        std::fs::write(dir.path().join("sshd_port"), sshd.port.to_string()).expect("write");
        Self { dir, tool }
    }

    /// The program.
    pub fn program(&self) -> PathBuf {
        self.bin().join(self.tool)
    }

    /// `PATH` with the stand-in's directory first, for a `runnel` that finds the tool on it.
    pub fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.bin().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The directory of the state, the call log and the DHCP leases (`leases`, Parallels).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The recorded calls, with allocated port numbers replaced by `PORT`.
    pub fn calls(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.root().join("calls.log")).unwrap_or_default();
        let port = Regex::new(r"127\.0\.0\.1,\d+,,").expect("regex");
        log.lines()
            .map(|l| port.replace_all(l, "127.0.0.1,PORT,,").into_owned())
            .collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.root().join("calls.log"));
    }

    /// Makes every call of the tool's `command` fail.
    pub fn fail(&self, command: &str) {
        std::fs::write(self.root().join("fail"), command).expect("write");
    }

    fn vm_dir(&self, name: &str) -> PathBuf {
        self.root().join("state").join(name)
    }

    /// Whether the VM `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.vm_dir(name).is_dir()
    }

    /// The VMs (and Parallels templates) that exist.
    pub fn vms(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root().join("state"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The trimmed content of the VM's state file `file`.
    pub fn read(&self, name: &str, file: &str) -> String {
        std::fs::read_to_string(self.vm_dir(name).join(file))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Writes the VM's state file `file`.
    pub fn write(&self, name: &str, file: &str, content: &str) {
        std::fs::create_dir_all(self.vm_dir(name)).expect("mkdir");
        std::fs::write(self.vm_dir(name).join(file), content).expect("write");
    }

    /// A registered VirtualBox VM with snapshots, powered off.
    pub fn vbox_vm(&self, name: &str, snapshots: &[&str]) {
        self.write(name, "state", "poweroff\n");
        let list: String = snapshots.iter().map(|s| format!("{s}\n")).collect();
        self.write(name, "snapshots", &list);
        if let Some(last) = snapshots.last() {
            self.write(name, "current", last);
        }
    }

    /// A Parallels VM (`kind` `vm` or `template`) in `status`.
    pub fn prl_vm(&self, name: &str, kind: &str, status: &str) {
        self.write(name, "kind", kind);
        self.write(name, "status", status);
        self.write(name, "snapshots", "");
        self.write(name, "mac", "001C42F593FB");
    }
}
