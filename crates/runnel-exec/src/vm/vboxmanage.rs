//! `VBoxManage` with gitlab-runner's argument forms and output parsing (GitLab: gitlab-runner
//! `helpers/virtualbox/control.go`).

use std::time::Duration;

use regex::Regex;

use super::tool::{Tool, ToolError};

/// A VM's `VMState` (`showvminfo --machinereadable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VmState(pub(crate) String);

impl VmState {
    pub(crate) fn is_running(&self) -> bool {
        self.0 == "running"
    }

    /// gitlab-runner `IsStatusOnlineOrTransient`: states in which `startvm` must not be called.
    pub(crate) fn is_online_or_transient(&self) -> bool {
        matches!(
            self.0.as_str(),
            "running"
                | "paused"
                | "gurumeditation"
                | "teleporting"
                | "livesnapshotting"
                | "starting"
                | "stopping"
                | "saving"
                | "restoring"
                | "teleportingpausedvm"
                | "teleportingin"
                | "faulttolerantsyncing"
                | "deletingsnapshotlive"
                | "deletingsnapshotlivepaused"
                | "onlinesnapshotting"
                | "restoringsnapshot"
                | "deletingsnapshot"
                | "settingup"
                | "snapshotting"
        )
    }
}

/// `VBoxManage` (`vboxmanage` on `PATH` by default, as gitlab-runner calls it).
#[derive(Debug, Clone)]
pub(crate) struct VBoxManage {
    pub(crate) tool: Tool,
}

impl VBoxManage {
    /// `--version`, trimmed.
    pub(crate) async fn version(&self) -> Result<String, ToolError> {
        Ok(self.tool.output(&["--version"]).await?.trim().to_owned())
    }

    /// Whether `showvminfo <vm>` succeeds.
    pub(crate) async fn exists(&self, vm: &str) -> bool {
        self.tool.run(&["showvminfo", vm]).await.is_ok()
    }

    /// The host port of the `guestssh` NAT rule (`showvminfo <vm>`).
    pub(crate) async fn find_ssh_port(&self, vm: &str) -> Result<Option<u16>, ToolError> {
        let info = self.tool.output(&["showvminfo", vm]).await?;
        Ok(parse_ssh_port(&info))
    }

    /// `clonevm <base> --mode machine --name <vm> --register [--snapshot <s> --options link]
    /// [--basefolder <folder>]`.
    pub(crate) async fn clone_vm(
        &self,
        base: &str,
        vm: &str,
        snapshot: Option<&str>,
        base_folder: Option<&str>,
    ) -> Result<(), ToolError> {
        let mut args = vec![
            "clonevm",
            base,
            "--mode",
            "machine",
            "--name",
            vm,
            "--register",
        ];
        if let Some(snapshot) = snapshot {
            args.extend(["--snapshot", snapshot, "--options", "link"]);
        }
        if let Some(folder) = base_folder {
            args.extend(["--basefolder", folder]);
        }
        self.tool.run(&args).await
    }

    /// Host ports of every NAT rule of every VM (`list vms -l`).
    pub(crate) async fn used_ports(&self) -> Result<Vec<u16>, ToolError> {
        let listing = self.tool.output(&["list", "vms", "-l"]).await?;
        Ok(parse_host_ports(&listing))
    }

    /// Forwards a free local port to the guest's `guest_port`:
    /// `modifyvm <vm> --natpf1 guestssh,tcp,127.0.0.1,<port>,,<guest port>`.
    pub(crate) async fn configure_ssh(&self, vm: &str, guest_port: u16) -> Result<u16, ToolError> {
        loop {
            // GitLab: `allocatePort` takes a port the system hands out and that no VM uses yet.
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| ToolError::Spawn {
                    program: "a local port allocation".to_owned(),
                    source,
                })?;
            let port = listener
                .local_addr()
                .map_err(|source| ToolError::Spawn {
                    program: "a local port allocation".to_owned(),
                    source,
                })?
                .port();
            if self.used_ports().await?.contains(&port) {
                continue;
            }
            drop(listener);
            let rule = format!("guestssh,tcp,127.0.0.1,{port},,{guest_port}");
            self.tool.run(&["modifyvm", vm, "--natpf1", &rule]).await?;
            return Ok(port);
        }
    }

    /// `snapshot <vm> take <name>`.
    pub(crate) async fn take_snapshot(&self, vm: &str, name: &str) -> Result<(), ToolError> {
        self.tool.run(&["snapshot", vm, "take", name]).await
    }

    /// `snapshot <vm> restorecurrent`.
    pub(crate) async fn restore_current_snapshot(&self, vm: &str) -> Result<(), ToolError> {
        self.tool.run(&["snapshot", vm, "restorecurrent"]).await
    }

    /// Whether `snapshot <vm> list --machinereadable` names `snapshot`.
    pub(crate) async fn has_snapshot(&self, vm: &str, snapshot: &str) -> bool {
        match self
            .tool
            .output(&["snapshot", vm, "list", "--machinereadable"])
            .await
        {
            Ok(list) => match_snapshot_name(snapshot, &list),
            Err(_) => false,
        }
    }

    /// `CurrentSnapshotName` of `snapshot <vm> list --machinereadable`.
    pub(crate) async fn current_snapshot(&self, vm: &str) -> Result<String, ToolError> {
        let args = ["snapshot", vm, "list", "--machinereadable"];
        let list = self.tool.output(&args).await?;
        parse_current_snapshot(&list).ok_or_else(|| ToolError::Output {
            command: self.tool.describe(&args),
            expected: "CurrentSnapshotName",
        })
    }

    /// `startvm <vm> --type <start type>`.
    pub(crate) async fn start(&self, vm: &str, start_type: &str) -> Result<(), ToolError> {
        self.tool.run(&["startvm", vm, "--type", start_type]).await
    }

    /// `controlvm <vm> poweroff`.
    pub(crate) async fn kill(&self, vm: &str) -> Result<(), ToolError> {
        self.tool.run(&["controlvm", vm, "poweroff"]).await
    }

    /// `unregistervm <vm> --delete`.
    pub(crate) async fn delete(&self, vm: &str) -> Result<(), ToolError> {
        self.tool.run(&["unregistervm", vm, "--delete"]).await
    }

    /// `unregistervm <vm>`.
    pub(crate) async fn unregister(&self, vm: &str) -> Result<(), ToolError> {
        self.tool.run(&["unregistervm", vm]).await
    }

    /// `VMState` of `showvminfo <vm> --machinereadable`.
    pub(crate) async fn status(&self, vm: &str) -> Result<VmState, ToolError> {
        let args = ["showvminfo", vm, "--machinereadable"];
        let info = self.tool.output(&args).await?;
        parse_vm_state(&info).ok_or_else(|| ToolError::Output {
            command: self.tool.describe(&args),
            expected: "VMState",
        })
    }

    /// Polls the state once a second for `seconds` until it is `running`.
    pub(crate) async fn wait_for_running(&self, vm: &str, seconds: u32) -> Result<(), ToolError> {
        let mut state = VmState(String::new());
        for _ in 0..seconds {
            state = self.status(vm).await?;
            if state.is_running() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(ToolError::Failed {
            command: self.tool.describe(&["showvminfo", vm, "--machinereadable"]),
            message: format!("VM {vm} is in {} where it should be in running", state.0),
        })
    }

    /// The names of all registered VMs (`list vms`: `"name" {uuid}` lines).
    pub(crate) async fn list(&self) -> Result<Vec<String>, ToolError> {
        let listing = self.tool.output(&["list", "vms"]).await?;
        Ok(parse_vm_names(&listing))
    }
}

fn parse_ssh_port(info: &str) -> Option<u16> {
    let re = Regex::new(r"guestssh.*host port = (\d+)").expect("a valid regex");
    re.captures(info).and_then(|c| c[1].parse().ok())
}

fn parse_host_ports(listing: &str) -> Vec<u16> {
    let re = Regex::new(r"host port = (\d+)").expect("a valid regex");
    re.captures_iter(listing)
        .filter_map(|c| c[1].parse().ok())
        .collect()
}

fn match_snapshot_name(snapshot: &str, list: &str) -> bool {
    let re = Regex::new(&format!(
        r#"(?m)^Snapshot(Name|UUID)[^=]*="({})"\r?$"#,
        regex::escape(snapshot)
    ))
    .expect("a valid regex");
    re.is_match(list)
}

fn parse_current_snapshot(list: &str) -> Option<String> {
    let re = Regex::new(r#"(?m)^CurrentSnapshotName="([^"]*)"\r?$"#).expect("a valid regex");
    re.captures(list).map(|c| c[1].to_owned())
}

fn parse_vm_state(info: &str) -> Option<VmState> {
    let re = Regex::new(r#"VMState="(\w+)""#).expect("a valid regex");
    re.captures(info).map(|c| VmState(c[1].to_owned()))
}

fn parse_vm_names(listing: &str) -> Vec<String> {
    let re = Regex::new(r#"(?m)^"(.*)" \{[0-9a-fA-F-]+\}\r?$"#).expect("a valid regex");
    re.captures_iter(listing).map(|c| c[1].to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::{
        match_snapshot_name, parse_current_snapshot, parse_host_ports, parse_ssh_port,
        parse_vm_names, parse_vm_state,
    };

    // Output as VirtualBox 7.0 prints it.
    const SHOWVMINFO: &str = "Name:                        runner-base\n\
        NIC 1:                       MAC: 080027C5E1D4, Attachment: NAT, Cable connected: on\n\
        NIC 1 Rule(0):   name = guestssh, protocol = tcp, host ip = 127.0.0.1, host port = 40022, guest ip = , guest port = 22\n";

    #[test]
    fn parses_the_guestssh_port_and_all_host_ports() {
        assert_eq!(parse_ssh_port(SHOWVMINFO), Some(40022));
        assert_eq!(parse_ssh_port("Name: x\n"), None);
        assert_eq!(parse_host_ports(SHOWVMINFO), [40022]);
    }

    #[test]
    fn parses_snapshot_lists_and_states() {
        let list = "SnapshotName=\"Base State\"\nSnapshotUUID=\"5e0f4e6b-1b0e-4c39-9d2f-8f0b5f1d2c3a\"\nCurrentSnapshotName=\"Base State\"\nCurrentSnapshotUUID=\"5e0f4e6b-1b0e-4c39-9d2f-8f0b5f1d2c3a\"\nCurrentSnapshotNode=\"SnapshotName\"\n";
        assert!(match_snapshot_name("Base State", list));
        assert!(!match_snapshot_name("Started", list));
        assert_eq!(parse_current_snapshot(list).as_deref(), Some("Base State"));
        assert_eq!(
            parse_vm_state("name=\"x\"\nVMState=\"poweroff\"\n").map(|s| s.0),
            Some("poweroff".to_owned())
        );
        assert_eq!(
            parse_vm_names("\"base\" {0b7c8f3e-2f1e-4b7a-9d0c-1a2b3c4d5e6f}\n"),
            ["base"]
        );
    }
}
