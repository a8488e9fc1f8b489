//! A fake GitLab with one kubernetes runner registered in `config.toml` and a fake cluster,
//! for the tests of `runnel run` with `executor = "kubernetes"`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use runnel_exec::docker::TEST_BUSYBOX_IMAGE;
use runnel_kube_fake::{FakeCluster, FakeOptions, Kind};
use runnel_runner::test_support::FakeGitLab;
use serde_json::Value;
use tokio::process::Child;

use super::{kube_helper_image, runnel_command as runnel};

/// The namespace of the jobs.
pub(crate) const NAMESPACE: &str = "ci";

/// A fake GitLab with one kubernetes runner registered in `config.toml`, and a fake cluster.
pub(crate) struct Setup {
    pub(crate) fake: FakeGitLab,
    pub(crate) cluster: FakeCluster,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
}

impl Setup {
    /// `section` goes at the end of `[runners.kubernetes]` (keys, then sub-tables).
    pub(crate) async fn new(section: &str) -> Self {
        Self::with_options(section, FakeOptions::default()).await
    }

    /// [`Setup::new`] with a cluster set up as `options` say (namespace `ci` added).
    pub(crate) async fn with_options(section: &str, options: FakeOptions) -> Self {
        Self::with_global_and_options("", section, options).await
    }

    /// [`Setup::new`] with `global` (keys, then tables such as `[session_server]`) before
    /// `[[runners]]`.
    pub(crate) async fn with_global(global: &str, section: &str) -> Self {
        Self::with_global_and_options(global, section, FakeOptions::default()).await
    }

    async fn with_global_and_options(global: &str, section: &str, options: FakeOptions) -> Self {
        let cluster = FakeCluster::start(options.namespace(NAMESPACE))
            .await
            .expect("fake cluster starts");
        let fake = FakeGitLab::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        let text = format!(
            r#"concurrent = 2
check_interval = 1
shutdown_timeout = 10
{global}
[[runners]]
  name = "kube"
  url = "{url}"
  token = "{token}"
  executor = "kubernetes"
  builds_dir = "{builds}"
  cache_dir = "{cache}"
  [runners.kubernetes]
    host = "{host}"
    bearer_token = "{bearer}"
    namespace = "{NAMESPACE}"
    image = "{TEST_BUSYBOX_IMAGE}"
    helper_image = "{helper}"
    poll_interval = 1
{section}"#,
            url = fake.url(),
            token = fake.create_runner(),
            builds = dir.path().join("builds").display(),
            cache = dir.path().join("cache").display(),
            host = cluster.url(),
            bearer = cluster.token().unwrap_or_default(),
            helper = kube_helper_image(),
        );
        std::fs::write(&config, text).expect("config.toml written");
        Self {
            fake,
            cluster,
            dir,
            config,
        }
    }

    /// Starts `runnel run`, its log in `<name>.log`.
    pub(crate) fn start(&self, name: &str) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        runnel()
            .args(["run", "-c"])
            .arg(&self.config)
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("runnel run starts")
    }

    pub(crate) fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The names of the job pods on the fake.
    pub(crate) fn pods(&self) -> Vec<String> {
        self.cluster
            .pods(Some(NAMESPACE))
            .into_iter()
            .filter_map(|pod| pod.metadata.name)
            .collect()
    }

    /// Waits until a pod exists and returns its name.
    pub(crate) async fn wait_for_pod(&self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(name) = self.pods().into_iter().next() {
                return name;
            }
            assert!(tokio::time::Instant::now() < deadline, "no pod was created");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Nothing of the jobs is left: no pod, secret or config map on the fake (deletion is
    /// asynchronous, as on a cluster), no container or volume of its pods on the engine.
    pub(crate) async fn assert_nothing_left(&self) {
        for name in self.pods() {
            let left = self
                .cluster
                .wait_for_pod(NAMESPACE, &name, Duration::from_secs(90), |_| false)
                .await;
            assert!(left.is_none(), "pod {name} was not deleted");
        }
        for kind in [Kind::Pod, Kind::Secret, Kind::ConfigMap] {
            assert_eq!(
                self.cluster.objects(kind, Some(NAMESPACE)),
                Vec::<Value>::new(),
                "{kind:?}"
            );
        }
        let (containers, volumes) = self.cluster.docker_leftovers().await;
        assert_eq!((containers, volumes), (Vec::new(), Vec::new()));
    }

    pub(crate) async fn shutdown(self, mut child: Child) {
        signal(&child, "QUIT");
        let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
        let _ = child.start_kill();
        assert_eq!(self.fake.violations(), Vec::<String>::new());
        self.cluster.shutdown().await;
    }
}

pub(crate) fn signal(child: &Child, name: &str) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status();
    }
}
