//! The typed values of job keywords (`image`, `services`, `artifacts`, `cache`, `needs`, ...), as
//! GitLab normalizes them. Only data: the conversions from YAML live in `job::convert`.

use serde::{Serialize, Serializer};

use crate::matrix::MatrixRow;
use crate::source::Span;

/// `image:` (the string form is `name`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Image {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `always`, `if-not-present`, `never`: empty when not set (the runner's default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pull_policy: Vec<String>,
    /// `docker: {platform, user}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<serde_json::Value>,
    /// `kubernetes: {user}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<serde_json::Value>,
}

/// One entry of `services:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pull_policy: Vec<String>,
    /// Service-only variables, `(name, value)` in the order written.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "pairs_as_map")]
    pub variables: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<serde_json::Value>,
}

/// `artifacts:`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Artifacts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untracked: Option<bool>,
    /// `on_success` (default), `on_failure`, `always`.
    pub when: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose_as: Option<String>,
    /// `all` (default), `developer`, `maintainer`, `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// `report type → paths` (e.g. `junit → [report.xml]`); `coverage_report` keeps its mapping.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "pairs_as_map")]
    pub reports: Vec<(String, serde_json::Value)>,
}

/// `cache:key`. Serialized as written: a string, or `{files, prefix}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CacheKey {
    /// A literal key (variables expanded by the runner).
    Literal(String),
    /// `key: {files: [...], prefix: ...}`: the key is computed from the files' last commits.
    Files {
        files: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
}

/// One cache entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cache {
    /// `default` when not given (GitLab: lib/gitlab/ci/config/entry/cache.rb).
    pub key: CacheKey,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    pub untracked: bool,
    /// `pull-push` (default), `pull`, `push`, or a `$VARIABLE`.
    pub policy: String,
    /// `on_success` (default), `on_failure`, `always`.
    pub when: String,
    pub unprotect: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallback_keys: Vec<String>,
}

/// One entry of `needs:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Need {
    /// A job of this pipeline (a scheduling edge).
    Job {
        /// The needed job's name; after matrix expansion, one concrete instance.
        job: String,
        artifacts: bool,
        optional: bool,
        /// `parallel: matrix:` selector, before expansion.
        #[serde(skip_serializing_if = "Option::is_none")]
        matrix: Option<Vec<MatrixRow>>,
        #[serde(skip)]
        span: Span,
    },
    /// `{pipeline: $ID, job}`: artifacts of another pipeline of the same hierarchy.
    Pipeline {
        pipeline: String,
        job: String,
        artifacts: bool,
    },
    /// `{project, job, ref}`: artifacts of another project's pipeline.
    Project {
        project: String,
        job: String,
        #[serde(rename = "ref")]
        ref_name: String,
        artifacts: bool,
    },
}

/// `retry:` normalized to the mapping form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    /// 0..=2.
    pub max: u8,
    /// Failure reasons that are retried; empty means `always`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exit_codes: Vec<i64>,
}

/// `environment:` (the string form is `name`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_stop: Option<String>,
    /// `start` (default), `prepare`, `stop`, `verify`, `access`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_stop_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<serde_json::Value>,
    #[serde(skip)]
    pub span: Span,
}

/// `trigger:`: the job starts a downstream pipeline instead of running a script. runnel parses
/// it, but cannot run it locally.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// Multi-project: the downstream project path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Child pipeline: the included configuration, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<serde_json::Value>,
    /// `depend` or `mirror`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<serde_json::Value>,
}

/// `release:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Release {
    pub tag_name: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_message: Option<String>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub milestones: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assets: Option<serde_json::Value>,
}

/// `pages:` (a job named `pages`, or `pages: true`/mapping on any job).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pages {
    /// The directory deployed; `public` by default.
    pub publish: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_in: Option<String>,
}

/// `hooks:`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Hooks {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_get_sources_script: Vec<String>,
}

/// One entry of `id_tokens:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdToken {
    pub name: String,
    pub aud: Vec<String>,
}

/// `inherit:default` or `inherit:variables`: everything, nothing, or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum InheritList {
    All(bool),
    Only(Vec<String>),
}

impl InheritList {
    /// Whether the item named `key` is inherited.
    pub fn allows(&self, key: &str) -> bool {
        match self {
            InheritList::All(all) => *all,
            InheritList::Only(list) => list.iter().any(|k| k == key),
        }
    }
}

/// `inherit:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inherit {
    pub default: InheritList,
    pub variables: InheritList,
}

impl Default for Inherit {
    fn default() -> Self {
        Inherit {
            default: InheritList::All(true),
            variables: InheritList::All(true),
        }
    }
}

/// Serializes `(key, value)` pairs as a JSON object, keeping their order.
pub(crate) fn pairs_as_map<S: Serializer, V: Serialize>(
    pairs: &[(String, V)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}
