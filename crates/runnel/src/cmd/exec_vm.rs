//! The `--virtualbox-*` and `--parallels-*` flags of `runnel exec`: gitlab-runner `register`'s
//! names for the keys of `[runners.virtualbox]` and `[runners.parallels]` (GitLab:
//! gitlab-runner `common/config.go` `VirtualBoxConfig`, `ParallelsConfig`, namespaced by
//! `register`), winning over `--runner-config`.

use runnel_runner::config::{ParallelsConfig, RunnerConfig, VirtualBoxConfig};

/// The VM executors' flags.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "VirtualBox and Parallels executors")]
pub(crate) struct VmArgs {
    /// VirtualBox: the VM to clone (`base_name`).
    #[arg(long, value_name = "NAME")]
    virtualbox_base_name: Option<String>,
    /// VirtualBox: the snapshot of the base VM to clone (`base_snapshot`).
    #[arg(long, value_name = "SNAPSHOT")]
    virtualbox_base_snapshot: Option<String>,
    /// VirtualBox: where the clones are made (`base_folder`).
    #[arg(long, value_name = "DIR")]
    virtualbox_base_folder: Option<String>,
    /// VirtualBox: a full clone per job, deleted after it (`disable_snapshots`).
    #[arg(long)]
    virtualbox_disable_snapshots: bool,
    /// VirtualBox: `headless` (default), `gui`, `separate` (`start_type`).
    #[arg(long, value_name = "TYPE")]
    virtualbox_start_type: Option<String>,
    /// VirtualBox: a regular expression a job's `image:` must match to pick its base VM
    /// (`allowed_images`, repeatable).
    #[arg(long, value_name = "REGEX")]
    virtualbox_allowed_images: Vec<String>,
    /// Parallels: the VM to clone (`base_name`).
    #[arg(long, value_name = "NAME")]
    parallels_base_name: Option<String>,
    /// Parallels: the template made from the base VM (`template_name`).
    #[arg(long, value_name = "NAME")]
    parallels_template_name: Option<String>,
    /// Parallels: a full clone per job, deleted after it (`disable_snapshots`).
    #[arg(long)]
    parallels_disable_snapshots: bool,
    /// Parallels: the time server the VM syncs with (`time_server`).
    #[arg(long, value_name = "HOST")]
    parallels_time_server: Option<String>,
    /// Parallels: a regular expression a job's `image:` must match to pick its base VM
    /// (`allowed_images`, repeatable).
    #[arg(long, value_name = "REGEX")]
    parallels_allowed_images: Vec<String>,
}

impl VmArgs {
    /// Whether a `--virtualbox-*` flag was given.
    pub(crate) fn any_virtualbox(&self) -> bool {
        self.virtualbox_base_name.is_some()
            || self.virtualbox_base_snapshot.is_some()
            || self.virtualbox_base_folder.is_some()
            || self.virtualbox_disable_snapshots
            || self.virtualbox_start_type.is_some()
            || !self.virtualbox_allowed_images.is_empty()
    }

    /// Whether a `--parallels-*` flag was given.
    pub(crate) fn any_parallels(&self) -> bool {
        self.parallels_base_name.is_some()
            || self.parallels_template_name.is_some()
            || self.parallels_disable_snapshots
            || self.parallels_time_server.is_some()
            || !self.parallels_allowed_images.is_empty()
    }

    /// Sets the keys the flags give on `runner`'s sections.
    pub(crate) fn apply(&self, runner: &mut RunnerConfig) {
        fn set(to: &mut Option<String>, from: &Option<String>) {
            if from.is_some() {
                to.clone_from(from);
            }
        }
        if self.any_virtualbox() {
            let vbox = runner
                .virtualbox
                .get_or_insert_with(VirtualBoxConfig::default);
            set(&mut vbox.base_name, &self.virtualbox_base_name);
            set(&mut vbox.base_snapshot, &self.virtualbox_base_snapshot);
            set(&mut vbox.base_folder, &self.virtualbox_base_folder);
            set(&mut vbox.start_type, &self.virtualbox_start_type);
            if self.virtualbox_disable_snapshots {
                vbox.disable_snapshots = Some(true);
            }
            if !self.virtualbox_allowed_images.is_empty() {
                vbox.allowed_images
                    .clone_from(&self.virtualbox_allowed_images);
            }
        }
        if self.any_parallels() {
            let prl = runner
                .parallels
                .get_or_insert_with(ParallelsConfig::default);
            set(&mut prl.base_name, &self.parallels_base_name);
            set(&mut prl.template_name, &self.parallels_template_name);
            set(&mut prl.time_server, &self.parallels_time_server);
            if self.parallels_disable_snapshots {
                prl.disable_snapshots = Some(true);
            }
            if !self.parallels_allowed_images.is_empty() {
                prl.allowed_images
                    .clone_from(&self.parallels_allowed_images);
            }
        }
    }
}
