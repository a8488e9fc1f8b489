//! The job payload: GitLab's answer to `POST /api/v4/jobs/request` (gitlab-runner
//! `common/spec/spec.go` `Job`; GitLab `lib/api/entities/ci/job_request/response.rb`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::enums::{CachePolicy, FailureReason, RefType, When};
use crate::ids::{JobId, JobToken};
use crate::null::null_as_default;

fn is_false(value: &bool) -> bool {
    !*value
}

/// A job as GitLab sends it to a runner. Field names are GitLab's JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPayload {
    /// The job id (`CI_JOB_ID`).
    pub id: JobId,
    /// The job token, used for every job-scoped call and in `git_info.repo_url`.
    pub token: JobToken,
    /// Project setting: the default `GIT_STRATEGY` is `fetch` when true, else `clone`.
    #[serde(default)]
    pub allow_git_fetch: bool,
    /// Job, project and queue metadata.
    #[serde(default)]
    pub job_info: JobInfo,
    /// What to check out.
    #[serde(default)]
    pub git_info: GitInfo,
    /// Runner-side settings chosen by the server (timeout).
    #[serde(default)]
    pub runner_info: RunnerInfo,
    /// Job variables, ordered; precedence is resolved by whoever planned the job.
    #[serde(default, deserialize_with = "null_as_default")]
    pub variables: Vec<JobVariable>,
    /// `script` (before_script + script), `after_script`, `release`, …
    #[serde(default, deserialize_with = "null_as_default")]
    pub steps: Vec<Step>,
    /// The job image, `null` when the job has none.
    #[serde(default)]
    pub image: Option<Image>,
    /// Service containers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub services: Vec<Image>,
    /// Artifact archives to upload, reports included.
    #[serde(default, deserialize_with = "null_as_default")]
    pub artifacts: Vec<ArtifactSpec>,
    /// Caches to restore and save.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cache: Vec<CacheSpec>,
    /// Registry credentials.
    #[serde(default, deserialize_with = "null_as_default")]
    pub credentials: Vec<Credentials>,
    /// Jobs whose artifacts this job downloads.
    #[serde(default, deserialize_with = "null_as_default")]
    pub dependencies: Vec<Dependency>,
    /// What the server supports.
    #[serde(default)]
    pub features: Features,
    /// External secrets (`secrets:`), kept as GitLab sends them (EE).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub secrets: serde_json::Map<String, serde_json::Value>,
    /// `pre_get_sources_script` / `post_get_sources_script` hooks.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hooks: Vec<Hook>,
    /// Job inputs, kept as GitLab sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<serde_json::Value>,
    /// Step-runner steps as a JSON *string*, mutually exclusive with script steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Security policy information, kept as GitLab sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_options: Option<serde_json::Value>,
    /// Suspendable environment options, kept as GitLab sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_options: Option<serde_json::Value>,
}

impl JobPayload {
    /// The value of the last variable named `key`, as gitlab-runner's `Variables.Get`.
    pub fn variable(&self, key: &str) -> Option<&str> {
        self.variables
            .iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.as_str())
    }

    /// The step named `name` (`script`, `after_script`, …).
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.name == name)
    }
}

/// `job_info`: job, project and queue metadata.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct JobInfo {
    /// The job id, sent by some GitLab versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<JobId>,
    /// The job name (`CI_JOB_NAME`).
    pub name: String,
    /// The stage (`CI_JOB_STAGE`).
    pub stage: String,
    /// The pipeline id.
    pub pipeline_id: u64,
    /// The project id.
    pub project_id: u64,
    /// The project name.
    pub project_name: String,
    /// `group/sub/project`.
    pub project_full_path: String,
    /// The namespace id.
    pub namespace_id: u64,
    /// The root namespace id.
    pub root_namespace_id: u64,
    /// The organization id.
    pub organization_id: u64,
    /// The instance id.
    pub instance_id: String,
    /// The instance UUID.
    pub instance_uuid: String,
    /// The user who started the pipeline.
    pub user_id: u64,
    /// The scoped user, when the job runs for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scoped_user_id: Option<u64>,
    /// How long the job waited in the queue.
    pub time_in_queue_seconds: f64,
    /// A metrics bucket as a string, e.g. `"+Inf"`.
    pub project_jobs_running_on_instance_runners_count: String,
    /// Queue size when the job was picked.
    pub queue_size: u64,
    /// Queue depth when the job was picked.
    pub queue_depth: u64,
}

/// `git_info`: what to check out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GitInfo {
    /// The clone URL; embeds the job token (`https://gitlab-ci-token:<token>@host/group/project.git`).
    pub repo_url: String,
    /// `sha1` or `sha256`.
    pub repo_object_format: String,
    /// The branch or tag name.
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// The commit to check out.
    pub sha: String,
    /// The previous commit of the ref.
    pub before_sha: String,
    /// Branch or tag.
    pub ref_type: RefType,
    /// Refspecs to fetch.
    #[serde(deserialize_with = "null_as_default")]
    pub refspecs: Vec<String>,
    /// Fetch depth; 0 is a full clone.
    pub depth: u32,
    /// Whether the ref is protected.
    pub protected: Option<bool>,
}

/// `runner_info`: runner-side settings chosen by the server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunnerInfo {
    /// The runner's UUID, when the server sends one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The job timeout in seconds; gitlab-runner reads 0 as 7200 (`common/consts.go`).
    pub timeout: u64,
    /// The URL of the runner session, when one was opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner_session_url: Option<String>,
}

/// A job variable.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobVariable {
    /// The name.
    pub key: String,
    /// The value, unexpanded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: String,
    /// Whether the value may be shown.
    #[serde(default)]
    pub public: bool,
    /// Set by the runner for its own variables; never on the wire from GitLab.
    #[serde(default, skip_serializing_if = "is_false")]
    pub internal: bool,
    /// A file variable: the value is written to a file and the variable holds its path.
    #[serde(default, skip_serializing_if = "is_false")]
    pub file: bool,
    /// The value is replaced by `[MASKED]` in the trace.
    #[serde(default)]
    pub masked: bool,
    /// The value is not `$VAR`-expanded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub raw: bool,
}

impl JobVariable {
    /// A public, unmasked variable.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            public: true,
            ..Self::default()
        }
    }
}

impl fmt::Debug for JobVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.masked || !self.public {
            "[MASKED]"
        } else {
            self.value.as_str()
        };
        f.debug_struct("JobVariable")
            .field("key", &self.key)
            .field("value", &value)
            .field("public", &self.public)
            .field("internal", &self.internal)
            .field("file", &self.file)
            .field("masked", &self.masked)
            .field("raw", &self.raw)
            .finish()
    }
}

/// A script step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Step {
    /// `script`, `after_script`, `release`, …; the build stage is `step_<name>` except for
    /// `after_script`.
    pub name: String,
    /// The commands.
    #[serde(default, deserialize_with = "null_as_default")]
    pub script: Vec<String>,
    /// The step timeout in seconds.
    #[serde(default)]
    pub timeout: u64,
    /// When the step runs.
    #[serde(default)]
    pub when: When,
    /// Whether a failure of this step fails the job.
    #[serde(default)]
    pub allow_failure: bool,
}

/// `image` and each entry of `services`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Image {
    /// The image reference.
    pub name: String,
    /// Service aliases, separated by spaces or commas.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub alias: String,
    /// Overrides the image's command.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub command: Vec<String>,
    /// Overrides the image's entrypoint.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub entrypoint: Vec<String>,
    /// Exposed ports.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub ports: Vec<Port>,
    /// Service variables.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub variables: Vec<JobVariable>,
    /// `always`, `if-not-present`, `never`.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub pull_policy: Vec<String>,
    /// Executor-specific options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor_opts: Option<ExecutorOpts>,
}

impl Image {
    /// The aliases, split on spaces and commas as gitlab-runner's `Image.Aliases`.
    pub fn aliases(&self) -> Vec<&str> {
        self.alias
            .split([' ', ','])
            .filter(|alias| !alias.is_empty())
            .collect()
    }
}

/// An exposed port of an image.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Port {
    /// The port number.
    pub number: u16,
    /// `tcp`, `http`, `https`.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub protocol: String,
    /// A name for the port.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub name: String,
}

/// `executor_opts` of an image. Unknown keys are kept in `other`: gitlab-runner fails the job
/// when one is present (`common/spec/spec.go` `executorOptions.validate`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutorOpts {
    /// Docker options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerExecutorOpts>,
    /// Kubernetes options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesExecutorOpts>,
    /// Keys this version does not support.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `executor_opts.docker`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DockerExecutorOpts {
    /// `linux/amd64`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The user to run as; GitLab sends a string or an integer.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "string_or_int"
    )]
    pub user: Option<String>,
    /// Keys this version does not support.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `executor_opts.kubernetes`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KubernetesExecutorOpts {
    /// The user to run as (`uid[:gid]`); GitLab sends a string or an integer.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "string_or_int"
    )]
    pub user: Option<String>,
    /// Keys this version does not support.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// Reads a string or an integer as a string (gitlab-runner `StringOrInt64`).
fn string_or_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StringOrInt {
        String(String),
        Int(i64),
    }
    Ok(
        Option::<StringOrInt>::deserialize(deserializer)?.map(|value| match value {
            StringOrInt::String(s) => s,
            StringOrInt::Int(i) => i.to_string(),
        }),
    )
}

/// An entry of `artifacts`: one archive to upload (reports are entries too).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ArtifactSpec {
    /// The archive name (`artifacts:name`); the server picks one when the job does not.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Add the files git does not track.
    #[serde(default)]
    pub untracked: bool,
    /// Globs relative to the project directory.
    #[serde(default, deserialize_with = "null_as_default")]
    pub paths: Vec<String>,
    /// Globs to leave out.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub exclude: Vec<String>,
    /// When to upload.
    #[serde(default)]
    pub when: When,
    /// How long the server keeps the archive (`1 week`), `None` for its default.
    #[serde(default)]
    pub expire_in: Option<String>,
    /// `archive`, or a report type (`junit`, `dotenv`, `cobertura`, …).
    #[serde(default, deserialize_with = "null_as_default")]
    pub artifact_type: String,
    /// `zip`, `gzip`, `raw`, `zipzstd`, `tarzstd`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub artifact_format: String,
}

/// An entry of `cache`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheSpec {
    /// The key, already computed by the planner (suffixes included).
    #[serde(default, deserialize_with = "null_as_default")]
    pub key: String,
    /// Add the files git does not track.
    #[serde(default)]
    pub untracked: bool,
    /// Globs relative to the project directory.
    #[serde(default, deserialize_with = "null_as_default")]
    pub paths: Vec<String>,
    /// Pull, push or both.
    #[serde(default)]
    pub policy: CachePolicy,
    /// When to save.
    #[serde(default)]
    pub when: When,
    /// Keys to try in order when `key` has no archive.
    #[serde(default, deserialize_with = "null_as_default")]
    pub fallback_keys: Vec<String>,
}

/// Registry credentials. `Debug` does not print the password.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Credentials {
    /// `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The registry host.
    pub url: String,
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"[MASKED]")
            .finish()
    }
}

/// A job whose artifacts this job downloads.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Dependency {
    /// The dependency's job id.
    pub id: JobId,
    /// The token to download with.
    #[serde(default)]
    pub token: JobToken,
    /// The dependency's job name.
    #[serde(default)]
    pub name: String,
    /// The archive, only when that job has a live one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts_file: Option<ArtifactsFile>,
}

/// A dependency's artifacts archive.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ArtifactsFile {
    /// `artifacts.zip`.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
}

/// `features`: what the server supports.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Features {
    /// Emit `section_start`/`section_end` markers.
    pub trace_sections: bool,
    /// Extra token prefixes to mask.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub token_mask_prefixes: Vec<String>,
    /// The failure reasons the server knows.
    #[serde(deserialize_with = "null_as_default")]
    pub failure_reasons: Vec<FailureReason>,
    /// OpenTelemetry settings, kept as GitLab sends them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<serde_json::Value>,
}

/// A hook: `pre_get_sources_script` or `post_get_sources_script`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Hook {
    /// The hook name.
    pub name: String,
    /// The commands.
    #[serde(default, deserialize_with = "null_as_default")]
    pub script: Vec<String>,
}
