//! The typed, resolved job: every keyword of a job after `extends`, `!reference`, `default:`,
//! `inherit:`, `parallel:` and the job's matched rule were applied. This is what the scheduler
//! and the planner read; nothing after this step looks at YAML again.
//!
//! The conversion from YAML lives in the submodules: `read` (typed values with diagnostics),
//! `convert` (one function per keyword), `build` (one job definition from its mapping and the
//! defaults).

pub(crate) mod build;
pub(crate) mod convert;
pub(crate) mod read;
pub mod types;

use serde::Serialize;

pub use self::read::parse_duration;
pub use self::types::{
    Artifacts, Cache, CacheKey, Environment, Hooks, IdToken, Image, Inherit, InheritList, Need,
    Pages, Release, Retry, Service, Trigger,
};
use crate::source::Span;
use crate::variables::Variable;
use crate::when::{AllowFailure, When};

/// The position of a job in [`crate::pipeline::Pipeline::jobs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct JobIndex(pub usize);

/// Whether a job runs a script or triggers a downstream pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A job with `script:` (or `run:`).
    Build,
    /// A job with `trigger:` (GitLab's "bridge"). runnel cannot run it locally.
    Trigger,
}

/// Where a parallel job instance sits in its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParallelInstance {
    /// `CI_NODE_INDEX`.
    pub index: u32,
    /// `CI_NODE_TOTAL`.
    pub total: u32,
    /// The matrix variables of this instance (empty for `parallel: N`).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "types::pairs_as_map"
    )]
    pub matrix: Vec<(String, String)>,
}

/// A job of a pipeline, fully resolved. Field names are the YAML keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// The job's name; for parallel jobs the instance name (`rspec 1/3`, `deploy: [aws]`).
    pub name: String,
    /// The name as written in YAML (`CI_JOB_GROUP_NAME` for parallel jobs).
    pub group_name: String,
    /// The job's stage (`test` unless set).
    pub stage: String,
    /// The index of `stage` in the pipeline's stages.
    pub stage_index: usize,
    pub kind: JobKind,
    /// `before_script` (from `default:` unless the job sets it), flattened.
    pub before_script: Vec<String>,
    /// `script`, flattened. Empty for trigger jobs.
    pub script: Vec<String>,
    /// `after_script`, flattened.
    pub after_script: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// The job's YAML variables in precedence order: inherited top-level (and workflow rule)
    /// variables, then job variables, then matrix variables, then the matched rule's variables.
    /// CLI variables and predefined variables are not included (the planner adds them).
    pub variables: Vec<Variable>,
    /// `when:` after the matched rule; `Delayed` carries `start_in`.
    pub when: When,
    /// `allow_failure:` after the matched rule (GitLab's defaults: `true` for a job-level
    /// `when: manual`, else `false`).
    pub allow_failure: AllowFailure,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// `timeout:` as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `timeout:` in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interruptible: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// `coverage:` regex as written (`/\d+%/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Artifacts>,
    /// Zero to four caches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<Cache>,
    /// `None`: stage ordering; `Some(vec![])`: `needs: []`, starts at once. After matrix
    /// expansion each need names one concrete job, and needs on jobs that rules removed with
    /// `optional: true` are dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<Need>>,
    /// `dependencies:` (jobs whose artifacts are downloaded), matrix names expanded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// `needs: {pipeline: other/project}` of a trigger job: the job mirrors the status of that
    /// project's pipeline (GitLab: entry/bridge.rb `bridge_needs`, EE entry/need.rb `BridgeHash`).
    /// runnel sees no other project, so it keeps the path only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<Pages>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
    /// `secrets:` as written (provider specifications are not interpreted locally).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub id_tokens: Vec<IdToken>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel: Option<ParallelInstance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual_confirmation: Option<String>,
    pub inherit: Inherit,
    /// Where the job's name is written.
    #[serde(skip)]
    pub span: Span,
}

impl Job {
    /// Whether the job can run on this machine (trigger jobs cannot).
    pub fn is_runnable_locally(&self) -> bool {
        self.kind == JobKind::Build
    }
}
