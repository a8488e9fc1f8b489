//! What the planner knows about one pipeline run besides the YAML: the commit, the project, the
//! user, the variables from outside the YAML and the results of finished jobs.
//!
//! The caller (`runnel exec`, `runnel serve`) fills it in; this module does no I/O.

use std::collections::HashMap;
use std::time::Duration;

use runnel_api::JobVariable;

/// The checked-out commit. For a local run, read from the local git repository once per run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitMeta {
    /// `CI_COMMIT_SHA`.
    pub sha: String,
    /// `CI_COMMIT_BEFORE_SHA`: all zeros when unknown, as GitLab sends for new branches.
    pub before_sha: String,
    /// The branch or tag name (`CI_COMMIT_REF_NAME`).
    pub ref_name: String,
    /// Whether `ref_name` is a tag (`CI_COMMIT_TAG`) rather than a branch (`CI_COMMIT_BRANCH`).
    pub is_tag: bool,
    /// The full commit message.
    pub message: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// The commit time, ISO 8601.
    pub timestamp: String,
    /// `CI_DEFAULT_BRANCH`.
    pub default_branch: String,
}

/// The project, as GitLab would know it. Locally derived from the `origin` remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectMeta {
    /// `CI_PROJECT_ID`.
    pub id: u64,
    /// `CI_PROJECT_PATH`: `group/sub/project`.
    pub path: String,
    /// `CI_SERVER_PROTOCOL`: `https` or `http`.
    pub server_protocol: String,
    /// `CI_SERVER_HOST`.
    pub server_host: String,
    /// `CI_SERVER_PORT`.
    pub server_port: u16,
}

impl Default for ProjectMeta {
    fn default() -> Self {
        ProjectMeta {
            id: 1,
            path: "local/project".to_owned(),
            server_protocol: "https".to_owned(),
            server_host: "gitlab.com".to_owned(),
            server_port: 443,
        }
    }
}

impl ProjectMeta {
    /// `CI_PROJECT_NAME`: the last path component.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// `CI_PROJECT_NAMESPACE`: the path without its last component.
    pub fn namespace(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(ns, _)| ns)
    }

    /// `CI_SERVER_URL`: protocol, host and a non-default port.
    pub fn server_url(&self) -> String {
        format!("{}://{}", self.server_protocol, self.server_fqdn())
    }

    /// `CI_SERVER_FQDN`: the host, with the port when it is not the protocol's default.
    pub fn server_fqdn(&self) -> String {
        let default_port = if self.server_protocol == "http" {
            80
        } else {
            443
        };
        if self.server_port == default_port {
            self.server_host.clone()
        } else {
            format!("{}:{}", self.server_host, self.server_port)
        }
    }

    /// `CI_PROJECT_URL`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server_url(), self.path)
    }
}

/// The person who runs the pipeline (`GITLAB_USER_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserMeta {
    /// `GITLAB_USER_ID`.
    pub id: u64,
    /// `GITLAB_USER_LOGIN`.
    pub login: String,
    /// `GITLAB_USER_NAME`.
    pub name: String,
    /// `GITLAB_USER_EMAIL`.
    pub email: String,
}

/// Everything [`crate::plan::plan`] needs besides the pipeline.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// `CI_PIPELINE_ID`.
    pub pipeline_id: u64,
    /// `CI_PIPELINE_IID`.
    pub pipeline_iid: u64,
    /// `CI_PIPELINE_SOURCE` (`push` for a local run).
    pub pipeline_source: String,
    /// `CI_CONFIG_PATH`.
    pub config_path: String,
    /// The commit.
    pub git: GitMeta,
    /// The project.
    pub project: ProjectMeta,
    /// The user.
    pub user: UserMeta,
    /// The URL jobs fetch the repository from (`git_info.repo_url`).
    pub repo_url: String,
    /// Project-level CI/CD variables (`runnel exec --variables-file`).
    pub project_variables: Vec<JobVariable>,
    /// Pipeline variables (`runnel exec --var`, the "Run pipeline" form): the highest precedence.
    pub pipeline_variables: Vec<JobVariable>,
    /// Variables from the `dotenv` reports of finished jobs, by job name.
    pub dotenv: HashMap<String, Vec<(String, String)>>,
    /// Names of jobs that finished with artifacts, with the id their artifacts are stored under.
    pub finished: HashMap<String, u64>,
    /// Jobs a person started (`CI_JOB_MANUAL`).
    pub played: Vec<String>,
    /// The timeout of jobs without `timeout:` (GitLab's project default: 1 hour).
    pub default_timeout: Option<Duration>,
    /// `cache:key:files` digests, by the files' names joined with newlines (see
    /// [`RunContext::files_key`]).
    pub files_keys: HashMap<String, String>,
}

impl RunContext {
    /// The digest the caller computed for `cache:key:files`, or GitLab's `default` when none of
    /// the files exists.
    pub fn files_key(&self, files: &[String]) -> String {
        self.files_keys
            .get(&files.join("\n"))
            .cloned()
            .unwrap_or_else(|| "default".to_owned())
    }

    /// The id of job `index` of this pipeline: unique within the run and across runs of one
    /// project, as long as `pipeline_id` grows.
    pub fn job_id(&self, index: usize) -> u64 {
        self.pipeline_id
            .saturating_mul(10_000)
            .saturating_add(index as u64 + 1)
    }
}
