//! The context a pipeline is created for: ref, source, variables given on the command line and
//! the changed files; and the predefined variables GitLab makes available to `workflow:rules`,
//! `rules:if` and `only/except` in that context.
//!
//! GitLab: lib/gitlab/ci/variables/builder.rb (`predefined_variables`, pipeline variables) and
//! doc/ci/variables/predefined_variables.md (the "Pre-pipeline" and "Pipeline" availability).

use std::path::PathBuf;

use serde::Serialize;

use crate::plan::slugify;

/// A branch or a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefType {
    Branch,
    Tag,
}

/// A merge request, for `merge_request_event` pipelines.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MergeRequest {
    pub iid: u64,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub labels: Vec<String>,
}

/// What a pipeline is created for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipelineContext {
    /// The branch or tag name (`main`, `v1.2.0`).
    pub ref_name: String,
    pub ref_type: RefType,
    /// `CI_PIPELINE_SOURCE`: `push`, `web`, `schedule`, `merge_request_event`, `api`, `trigger`,
    /// `pipeline`, `parent_pipeline`, `chat`, `external`, `external_pull_request_event`,
    /// `ondemand_dast_scan`, `security_orchestration_policy`, `webide`.
    pub source: String,
    /// `CI_DEFAULT_BRANCH`.
    pub default_branch: String,
    /// Variables from the command line (`--var K=V`): the highest precedence.
    pub variables: Vec<(String, String)>,
    /// Files changed by the push (for `rules:changes`); `None` when unknown, in which case
    /// `changes` clauses are true, as GitLab does for pipelines without a push diff.
    pub changed_files: Option<Vec<String>>,
    /// The repository checkout (for `rules:exists`); `None` makes `exists` false.
    pub project_dir: Option<PathBuf>,
    /// The merge request of a `merge_request_event` pipeline.
    pub merge_request: Option<MergeRequest>,
    /// `CI_COMMIT_SHA`, when known.
    pub commit_sha: Option<String>,
    /// `CI_PROJECT_PATH` (`group/project`), when known.
    pub project_path: Option<String>,
}

impl PipelineContext {
    /// A push pipeline on `branch`, whose default branch is `main`.
    pub fn push(branch: impl Into<String>) -> Self {
        PipelineContext {
            ref_name: branch.into(),
            ref_type: RefType::Branch,
            source: "push".to_owned(),
            default_branch: "main".to_owned(),
            variables: Vec::new(),
            changed_files: None,
            project_dir: None,
            merge_request: None,
            commit_sha: None,
            project_path: None,
        }
    }

    /// The predefined variables available to rules in this context (no job-level ones such as
    /// `CI_JOB_NAME`, and none that only the runner knows, such as `CI_PROJECT_DIR`).
    pub fn rules_variables(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, val: &str| v.push((k.to_owned(), val.to_owned()));
        set("CI", "true");
        set("GITLAB_CI", "true");
        set("CI_SERVER", "yes");
        set("CI_PIPELINE_SOURCE", &self.source);
        set("CI_DEFAULT_BRANCH", &self.default_branch);
        set("CI_COMMIT_REF_NAME", &self.ref_name);
        set("CI_COMMIT_REF_SLUG", &slugify(&self.ref_name));
        if let Some(sha) = &self.commit_sha {
            set("CI_COMMIT_SHA", sha);
            set("CI_COMMIT_SHORT_SHA", sha.get(..8).unwrap_or(sha));
        }
        if let Some(path) = &self.project_path {
            set("CI_PROJECT_PATH", path);
            let name = path.rsplit('/').next().unwrap_or(path);
            set("CI_PROJECT_NAME", name);
            let namespace = path.rsplit_once('/').map_or("", |(ns, _)| ns);
            set("CI_PROJECT_NAMESPACE", namespace);
        }
        match (&self.merge_request, self.ref_type) {
            // GitLab: CI_COMMIT_BRANCH is absent in merge request pipelines and tag pipelines.
            (Some(mr), _) if self.source == "merge_request_event" => {
                set("CI_MERGE_REQUEST_IID", &mr.iid.to_string());
                set("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", &mr.source_branch);
                set("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", &mr.target_branch);
                set("CI_MERGE_REQUEST_TITLE", &mr.title);
                set("CI_MERGE_REQUEST_LABELS", &mr.labels.join(","));
                set("CI_MERGE_REQUEST_EVENT_TYPE", "detached");
            }
            (_, RefType::Branch) if self.source != "merge_request_event" => {
                set("CI_COMMIT_BRANCH", &self.ref_name);
            }
            (_, RefType::Tag) => set("CI_COMMIT_TAG", &self.ref_name),
            _ => {}
        }
        v
    }
}
