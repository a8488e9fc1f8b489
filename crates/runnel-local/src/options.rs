//! What a local pipeline is made of: the project, its configuration file and the variables
//! from outside the YAML ([`PipelineOptions`]), and which of its jobs to run ([`Selection`]).

use std::path::PathBuf;
use std::sync::Arc;

use runnel_api::{JobPayload, JobVariable};
use runnel_exec::CacheStore;

/// The cache store of one job, from its payload and the local cache directory.
pub type CacheStoreFn = dyn Fn(&JobPayload, PathBuf) -> Arc<dyn CacheStore> + Send + Sync;

/// Makes the cache store of each job (`runnel exec --cache-config`: the remote cache of a
/// runner's `[runners.cache]`).
#[derive(Clone)]
pub struct CacheStores(
    /// The factory.
    pub Arc<CacheStoreFn>,
);

impl std::fmt::Debug for CacheStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheStores(..)")
    }
}

/// The project and the variables a pipeline is created with. Paths are absolute.
#[derive(Debug, Clone, Default)]
pub struct PipelineOptions {
    /// The project's working tree (`CI_PROJECT_DIR` of the sources).
    pub project_dir: PathBuf,
    /// Where runs keep their state: builds, cache, artifacts, logs (`.runnel/`).
    pub state_dir: PathBuf,
    /// Checked-out projects for `include:project`, `include:component` and `include:template`.
    pub projects_dir: Option<PathBuf>,
    /// The pipeline file, relative to `project_dir`.
    pub file: PathBuf,
    /// The project's CI/CD variables (Settings → CI/CD → Variables).
    pub project_variables: Vec<JobVariable>,
    /// Pipeline variables, as in GitLab's "Run pipeline" form: highest precedence.
    pub pipeline_variables: Vec<JobVariable>,
    /// Jobs that are in the pipeline even when `workflow:rules`, their `rules` or
    /// `only`/`except` leave them out (`runnel exec --ignore-rules JOB…`; a parallel job's name
    /// names every instance).
    pub run_excluded: Vec<String>,
    /// Where jobs keep caches; `None`: the local cache under `state_dir`.
    pub cache_stores: Option<CacheStores>,
    /// Where `--executor kubernetes` sends the jobs.
    pub kubernetes: KubeTarget,
}

/// The cluster of `runnel exec --executor kubernetes`: the kubeconfig's current context and its
/// namespace unless given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeTarget {
    /// `--kube-context`: a kubeconfig context instead of the current one.
    pub context: Option<String>,
    /// `--namespace`: the namespace of the job pods instead of the context's.
    pub namespace: Option<String>,
    /// `--kube-helper-image`: the helper image instead of `runnel/helper:latest`.
    pub helper_image: Option<String>,
}

/// Which jobs of the pipeline run. The default runs all of them.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these jobs (a parallel group's name selects every instance). Named manual jobs run
    /// too.
    pub jobs: Vec<String>,
    /// Only the jobs of this stage.
    pub stage: Option<String>,
    /// Also the needs of the named jobs, transitively.
    pub needs: bool,
    /// The needs of the named jobs, transitively, but not the jobs themselves.
    pub only_needs: bool,
    /// Manual jobs to start (and delayed jobs to run now).
    pub manual: Vec<String>,
}
