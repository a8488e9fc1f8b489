//! `prlctl` with gitlab-runner's argument forms and output parsing, and the Parallels DHCP
//! leases file (GitLab: gitlab-runner `helpers/parallels/control.go`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use super::tool::{Tool, ToolError};

/// Where Parallels Desktop records its DHCP leases.
pub const DHCP_LEASES: &str = "/Library/Preferences/Parallels/parallels_dhcp_leases";

/// The environment variable naming another DHCP leases file than [`DHCP_LEASES`] (gitlab-runner
/// has no such setting; runnel's tests point it at the stand-in `prlctl`'s file).
pub const DHCP_LEASES_ENV: &str = "RUNNEL_PARALLELS_DHCP_LEASES";

/// The DHCP leases file: `$RUNNEL_PARALLELS_DHCP_LEASES` when set, else [`DHCP_LEASES`].
pub(crate) fn dhcp_leases_file() -> PathBuf {
    std::env::var_os(DHCP_LEASES_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DHCP_LEASES), PathBuf::from)
}

/// A VM's status (`list <vm> --no-header --output status`): `running`, `stopped`,
/// `suspended`, `invalid`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrlStatus(pub(crate) String);

/// `prlctl`.
#[derive(Debug, Clone)]
pub(crate) struct Prlctl {
    pub(crate) tool: Tool,
}

impl Prlctl {
    /// The version from `--version` (`prlctl version 19.1.0 (54729)`).
    pub(crate) async fn version(&self) -> Result<String, ToolError> {
        let out = self.tool.output(&["--version"]).await?;
        let re = Regex::new(r"prlctl version (\d+\.\d+.\d+)").expect("a valid regex");
        re.captures(&out)
            .map(|c| c[1].to_owned())
            .ok_or_else(|| ToolError::Output {
                command: self.tool.describe(&["--version"]),
                expected: "Parallels Desktop version",
            })
    }

    /// Whether `list <name> --no-header --output status` succeeds.
    pub(crate) async fn exists(&self, name: &str) -> bool {
        self.tool
            .run(&["list", name, "--no-header", "--output", "status"])
            .await
            .is_ok()
    }

    /// `list <name> --no-header --output status`, trimmed.
    pub(crate) async fn status(&self, name: &str) -> Result<PrlStatus, ToolError> {
        let out = self
            .tool
            .output(&["list", name, "--no-header", "--output", "status"])
            .await?;
        Ok(PrlStatus(out.trim().to_owned()))
    }

    /// `clone <vm> --name <template> --template --linked`.
    pub(crate) async fn create_template(&self, vm: &str, template: &str) -> Result<(), ToolError> {
        self.tool
            .run(&["clone", vm, "--name", template, "--template", "--linked"])
            .await
    }

    /// `create <vm> --ostemplate <template>`.
    pub(crate) async fn create_vm(&self, vm: &str, template: &str) -> Result<(), ToolError> {
        self.tool
            .run(&["create", vm, "--ostemplate", template])
            .await
    }

    /// `snapshot <vm> --name <name>`.
    pub(crate) async fn take_snapshot(&self, vm: &str, name: &str) -> Result<(), ToolError> {
        self.tool.run(&["snapshot", vm, "--name", name]).await
    }

    /// The current snapshot's id: the entry marked ` *` in `snapshot-list <vm>`.
    pub(crate) async fn default_snapshot(&self, vm: &str) -> Result<String, ToolError> {
        let out = self.tool.output(&["snapshot-list", vm]).await?;
        parse_default_snapshot(&out).ok_or_else(|| ToolError::Output {
            command: self.tool.describe(&["snapshot-list", vm]),
            expected: "snapshot",
        })
    }

    /// `snapshot-switch <vm> --id <id>`.
    pub(crate) async fn switch_snapshot(&self, vm: &str, id: &str) -> Result<(), ToolError> {
        self.tool.run(&["snapshot-switch", vm, "--id", id]).await
    }

    /// `start <vm>`.
    pub(crate) async fn start(&self, vm: &str) -> Result<(), ToolError> {
        self.tool.run(&["start", vm]).await
    }

    /// `stop <vm> --kill`.
    pub(crate) async fn kill(&self, vm: &str) -> Result<(), ToolError> {
        self.tool.run(&["stop", vm, "--kill"]).await
    }

    /// `delete <vm>`.
    pub(crate) async fn delete(&self, vm: &str) -> Result<(), ToolError> {
        self.tool.run(&["delete", vm]).await
    }

    /// `unregister <vm>`.
    pub(crate) async fn unregister(&self, vm: &str) -> Result<(), ToolError> {
        self.tool.run(&["unregister", vm]).await
    }

    /// `exec <vm> <command…>`.
    pub(crate) async fn exec(&self, vm: &str, command: &[&str]) -> Result<String, ToolError> {
        let mut args = vec!["exec", vm];
        args.extend_from_slice(command);
        self.tool.output(&args).await
    }

    /// `exec` once a second for `seconds` until it succeeds.
    pub(crate) async fn try_exec(
        &self,
        vm: &str,
        seconds: u32,
        command: &[&str],
    ) -> Result<(), ToolError> {
        let mut last = None;
        for _ in 0..seconds.max(1) {
            match self.exec(vm, command).await {
                Ok(_) => return Ok(()),
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(last.unwrap_or_else(|| ToolError::Output {
            command: self.tool.describe(command),
            expected: "answer",
        }))
    }

    /// Polls the status once a second for `seconds` until it is `running`.
    pub(crate) async fn wait_for_running(&self, vm: &str, seconds: u32) -> Result<(), ToolError> {
        let mut status = PrlStatus(String::new());
        for _ in 0..seconds {
            status = self.status(vm).await?;
            if status.0 == "running" {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(ToolError::Failed {
            command: self
                .tool
                .describe(&["list", vm, "--no-header", "--output", "status"]),
            message: format!("VM {vm} is in {} where it should be in running", status.0),
        })
    }

    /// The MAC address of `net0` (`list -i <vm>`).
    pub(crate) async fn mac(&self, vm: &str) -> Result<String, ToolError> {
        let out = self.tool.output(&["list", "-i", vm]).await?;
        parse_mac(&out).ok_or_else(|| ToolError::Output {
            command: self.tool.describe(&["list", "-i", vm]),
            expected: "MAC address for NIC net0",
        })
    }

    /// The names of all VMs (`list --all --no-header --output name`).
    pub(crate) async fn list(&self) -> Result<Vec<String>, ToolError> {
        let out = self
            .tool
            .output(&["list", "--all", "--no-header", "--output", "name"])
            .await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

fn parse_default_snapshot(list: &str) -> Option<String> {
    list.lines().find_map(|line| {
        let pos = line.find(" *")?;
        let snapshot = line[pos + 2..].trim();
        (!snapshot.is_empty()).then(|| snapshot.to_owned())
    })
}

fn parse_mac(info: &str) -> Option<String> {
    let re = Regex::new(r"net0.* mac=([0-9A-F]{12}) card=.*").expect("a valid regex");
    re.captures(info.trim()).map(|c| c[1].to_owned())
}

/// The IP address most recently leased to `mac` in the leases file (lines
/// `10.211.55.181="1418921112,1800,001c42f593fb,ff42f593fb000100011c25b9ff001c42f593fb"`:
/// IP = "lease expiry, lease time, MAC, MAC or DUID").
pub(crate) fn ip_address(leases_file: &Path, mac: &str) -> Result<String, String> {
    if mac.len() != 12 {
        return Err(format!(
            "not a valid MAC address: {mac}. It should be exactly 12 digits"
        ));
    }
    let leases = std::fs::read_to_string(leases_file)
        .map_err(|err| format!("cannot read {}: {err}", leases_file.display()))?;
    let re = Regex::new(&format!(
        r#"(.*)="(.*),(.*),{},.*""#,
        regex::escape(&mac.to_lowercase())
    ))
    .map_err(|err| err.to_string())?;
    let mut best: Option<(u64, String)> = None;
    for caps in re.captures_iter(&leases) {
        let expiry: u64 = caps[2].parse().unwrap_or(0);
        let lease: u64 = caps[3].parse().unwrap_or(0);
        let start = expiry.saturating_sub(lease);
        if best.as_ref().is_none_or(|(at, _)| *at <= start) {
            best = Some((start, caps[1].trim().to_owned()));
        }
    }
    best.map(|(_, ip)| ip).ok_or_else(|| {
        format!(
            "IP lease not found for MAC address {mac} in: {}",
            leases_file.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{ip_address, parse_default_snapshot, parse_mac};

    #[test]
    fn parses_snapshot_list_mac_and_leases() {
        let list = "PARENT_SNAPSHOT_ID                      SNAPSHOT_ID\n                                       *{64a3f1d2-8a38-4a4c-9f3c-2d6b1a0e7c11}\n";
        assert_eq!(
            parse_default_snapshot(list).as_deref(),
            Some("{64a3f1d2-8a38-4a4c-9f3c-2d6b1a0e7c11}")
        );
        let info = "Hardware:\n  net0 (+) type=shared mac=001C42F593FB card=virtio\n";
        assert_eq!(parse_mac(info).as_deref(), Some("001C42F593FB"));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let leases = dir.path().join("leases");
        std::fs::write(
            &leases,
            "[vnic0]\n10.211.55.2=\"1418920000,1800,001c42f593fb,ff\"\n10.211.55.181=\"1418921112,1800,001c42f593fb,ff42\"\n",
        )
        .expect("write");
        assert_eq!(
            ip_address(&leases, "001C42F593FB").as_deref(),
            Ok("10.211.55.181")
        );
        assert!(ip_address(&leases, "001C42000000").is_err());
    }
}
