//! The keyword tables: which keys GitLab accepts at each place of `.gitlab-ci.yml`, and the check
//! that reports every other key with a suggestion.
//!
//! The lists follow GitLab's entries (lib/gitlab/ci/config/entry/*.rb) where the JSON schema
//! (app/assets/javascripts/editor/schema/ci.json) is looser. This module only knows names; the
//! typed conversions live in `job::convert`.

use crate::diag::{Diagnostic, Diagnostics};
use crate::yaml::Node;

/// Top-level keys that are not jobs. GitLab: entry/root.rb (`ALLOWED_KEYS`) plus `spec`, which
/// only the header document may hold, and `pages`, which the schema lists for the Pages job.
pub const TOP_LEVEL: &[&str] = &[
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
];

/// Top-level keys GitLab reserves: they can never be job names. GitLab: entry/root.rb
/// (`reserved: true`).
pub const RESERVED: &[&str] = &[
    "include",
    "before_script",
    "image",
    "services",
    "after_script",
    "variables",
    "stages",
    "cache",
];

/// Deprecated globals that act as `default:` keys. GitLab: entry/root.rb and
/// doc/ci/yaml/deprecated_keywords.md.
pub const DEPRECATED_GLOBALS: &[&str] = &[
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
];

/// Keys of `default:`. GitLab: entry/default.rb (`ALLOWED_KEYS`).
pub const DEFAULT: &[&str] = &[
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "hooks",
    "id_tokens",
    "identity",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
];

/// Keys that `inherit:default` may list. GitLab: entry/inherit/default.rb (the `default:` keys).
pub const INHERIT_DEFAULT: &[&str] = DEFAULT;

/// Keys every processable (job and trigger job) accepts.
/// GitLab: entry/processable.rb (`PROCESSABLE_ALLOWED_KEYS`).
pub const PROCESSABLE: &[&str] = &[
    "extends",
    "stage",
    "only",
    "except",
    "rules",
    "variables",
    "inherit",
    "allow_failure",
    "when",
    "needs",
    "resource_group",
    "environment",
    "interruptible",
];

/// Keys only a build job accepts. GitLab: entry/job.rb (`ALLOWED_KEYS`) and the EE additions
/// (`secrets`, `id_tokens`, `identity`, `dast_configuration`).
pub const BUILD_JOB: &[&str] = &[
    "tags",
    "script",
    "run",
    "image",
    "services",
    "start_in",
    "artifacts",
    "cache",
    "dependencies",
    "before_script",
    "after_script",
    "hooks",
    "environment",
    "coverage",
    "retry",
    "parallel",
    "interruptible",
    "timeout",
    "release",
    "secrets",
    "id_tokens",
    "identity",
    "dast_configuration",
    "pages",
    "publish",
    "manual_confirmation",
    "inputs",
];

/// Keys a trigger job accepts besides [`PROCESSABLE`]. GitLab: entry/bridge.rb (`ALLOWED_KEYS`).
pub const TRIGGER_JOB: &[&str] = &["trigger", "parallel", "manual_confirmation", "inputs"];

/// Every key a job may have, for suggestions.
pub fn job_keywords() -> impl Iterator<Item = &'static str> {
    PROCESSABLE
        .iter()
        .chain(BUILD_JOB)
        .chain(TRIGGER_JOB)
        .copied()
}

/// Keys of a `rules:` entry. GitLab: entry/rules/rule.rb (`ALLOWED_KEYS`).
pub const RULE: &[&str] = &[
    "if",
    "changes",
    "exists",
    "when",
    "start_in",
    "allow_failure",
    "variables",
    "needs",
    "interruptible",
];
/// Keys of a `workflow:rules` entry. GitLab: entry/workflow.rb and rules/rule.rb.
pub const WORKFLOW_RULE: &[&str] = &[
    "if",
    "changes",
    "exists",
    "when",
    "variables",
    "auto_cancel",
];
/// Keys of `workflow:`. GitLab: entry/workflow.rb.
pub const WORKFLOW: &[&str] = &["rules", "name", "auto_cancel"];
/// Keys of `auto_cancel:`. GitLab: entry/auto_cancel.rb.
pub const AUTO_CANCEL: &[&str] = &["on_new_commit", "on_job_failure"];
/// Keys of `artifacts:`. GitLab: entry/artifacts.rb (`ALLOWED_KEYS`).
pub const ARTIFACTS: &[&str] = &[
    "name",
    "untracked",
    "paths",
    "reports",
    "when",
    "expire_in",
    "expose_as",
    "exclude",
    "public",
    "access",
];
/// Keys of `artifacts:reports`. GitLab: entry/reports.rb (`ALLOWED_KEYS`).
pub const REPORTS: &[&str] = &[
    "junit",
    "codequality",
    "sast",
    "secret_detection",
    "dependency_scanning",
    "container_scanning",
    "dast",
    "performance",
    "browser_performance",
    "load_performance",
    "license_scanning",
    "metrics",
    "requirements",
    "requirements_v2",
    "coverage_report",
    "cyclonedx",
    "annotations",
    "repository_xray",
    "terraform",
    "accessibility",
    "api_fuzzing",
    "coverage_fuzzing",
    "cluster_image_scanning",
    "lsif",
    "dotenv",
    "license_management",
    "sarif",
];
/// Keys of `artifacts:reports:coverage_report`.
pub const COVERAGE_REPORT: &[&str] = &["coverage_format", "path"];
/// Keys of one `cache:` entry. GitLab: entry/cache.rb (`ALLOWED_KEYS`).
pub const CACHE: &[&str] = &[
    "key",
    "untracked",
    "paths",
    "when",
    "policy",
    "unprotect",
    "fallback_keys",
];
/// Keys of `cache:key` in its mapping form. GitLab: entry/cache/key.rb and entry/files.rb.
pub const CACHE_KEY: &[&str] = &["files", "prefix", "files_commits"];
/// Keys of `image:`. GitLab: entry/image.rb and entry/imageable.rb.
pub const IMAGE: &[&str] = &["name", "entrypoint", "docker", "kubernetes", "pull_policy"];
/// Keys of a `services:` entry. GitLab: entry/service.rb.
pub const SERVICE: &[&str] = &[
    "name",
    "entrypoint",
    "command",
    "alias",
    "variables",
    "pull_policy",
    "docker",
    "kubernetes",
];
/// Keys of `image:docker` / `services:docker`.
pub const DOCKER: &[&str] = &["platform", "user"];
/// Keys of `image:kubernetes` / `services:kubernetes`.
pub const KUBERNETES_EXECUTOR: &[&str] = &["user"];
/// Keys of a `needs:` mapping. GitLab: entry/need.rb (`Job`, `Pipeline`, `CrossDependency`).
pub const NEED: &[&str] = &[
    "job",
    "artifacts",
    "optional",
    "parallel",
    "pipeline",
    "project",
    "ref",
];
/// Keys of `environment:`. GitLab: entry/environment.rb (`ALLOWED_KEYS`).
pub const ENVIRONMENT: &[&str] = &[
    "name",
    "url",
    "action",
    "on_stop",
    "auto_stop_in",
    "kubernetes",
    "deployment_tier",
];
/// Keys of `environment:kubernetes`.
pub const ENVIRONMENT_KUBERNETES: &[&str] = &[
    "agent",
    "namespace",
    "flux_resource_path",
    "managed_resources",
    "dashboard",
];
/// Keys of `release:`. GitLab: entry/release.rb (`ALLOWED_KEYS`).
pub const RELEASE: &[&str] = &[
    "tag_name",
    "tag_message",
    "name",
    "description",
    "milestones",
    "released_at",
    "assets",
    "ref",
];
/// Keys of `release:assets`.
pub const RELEASE_ASSETS: &[&str] = &["links"];
/// Keys of one `release:assets:links` entry.
pub const RELEASE_LINK: &[&str] = &["name", "url", "filepath", "link_type"];
/// Keys of `trigger:` (multi-project and child pipeline forms). GitLab: entry/trigger.rb.
pub const TRIGGER: &[&str] = &[
    "project", "branch", "strategy", "include", "forward", "inputs",
];
/// Keys of `trigger:forward`.
pub const TRIGGER_FORWARD: &[&str] = &["yaml_variables", "pipeline_variables"];
/// Keys of `retry:`. GitLab: entry/retry.rb.
pub const RETRY: &[&str] = &["max", "when", "exit_codes"];
/// `retry:when` values. GitLab: entry/retry.rb (`ALLOWED_WHEN`) and `Ci::Build.failure_reasons`.
pub const RETRY_WHEN: &[&str] = &[
    "always",
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
];
/// Keys of `parallel:`. GitLab: entry/product/parallel.rb.
pub const PARALLEL: &[&str] = &["matrix"];
/// Keys of `inherit:`. GitLab: entry/inherit.rb.
pub const INHERIT: &[&str] = &["default", "variables"];
/// Keys of `hooks:`. GitLab: entry/hooks.rb.
pub const HOOKS: &[&str] = &["pre_get_sources_script"];
/// Keys of one `id_tokens:` entry. GitLab: entry/id_token.rb.
pub const ID_TOKEN: &[&str] = &["aud"];
/// Keys of one `secrets:` entry. GitLab: ee/lib/ee/gitlab/ci/config/entry/secret.rb.
pub const SECRET: &[&str] = &[
    "vault",
    "gcp_secret_manager",
    "azure_key_vault",
    "aws_secrets_manager",
    "gitlab_secrets_manager",
    "akeyless",
    "file",
    "token",
];
/// Keys of `pages:` in its mapping form. GitLab: entry/pages.rb.
pub const PAGES: &[&str] = &["publish", "path_prefix", "expire_in"];
/// Keys of `only:`/`except:` in the mapping form. GitLab: entry/policy.rb.
pub const POLICY: &[&str] = &["refs", "kubernetes", "variables", "changes"];
/// Keys of a top-level variable written as a mapping. GitLab: entry/variable.rb (`ComplexVariable`).
pub const VARIABLE_TOP: &[&str] = &["value", "description", "expand", "options"];
/// Keys of a job variable written as a mapping.
pub const VARIABLE_JOB: &[&str] = &["value", "expand"];
/// Keys of `rules:changes` in its mapping form. GitLab: entry/rules/rule/changes.rb.
pub const CHANGES: &[&str] = &["paths", "compare_to"];
/// Keys of `rules:exists` in its mapping form. GitLab: entry/rules/rule/exists.rb.
pub const EXISTS: &[&str] = &["paths", "project", "ref"];

/// `when:` values of a job. GitLab: entry/job.rb (`ALLOWED_WHEN`).
pub const JOB_WHEN: &[&str] = &["on_success", "on_failure", "always", "manual", "delayed"];
/// `when:` values of a trigger job. GitLab: entry/bridge.rb (`ALLOWED_WHEN`).
pub const TRIGGER_WHEN: &[&str] = &["on_success", "on_failure", "always", "manual"];
/// `when:` values of a rule. GitLab: entry/rules/rule.rb (`ALLOWED_WHEN`).
pub const RULE_WHEN: &[&str] = &[
    "on_success",
    "on_failure",
    "always",
    "never",
    "manual",
    "delayed",
];
/// `when:` values of a workflow rule. GitLab: entry/workflow.rb (`ALLOWED_WHEN`).
pub const WORKFLOW_WHEN: &[&str] = &["always", "never"];

/// Reports every key of `map` that is not in `allowed`, naming `place` ("job `build`",
/// "`artifacts` of job `build`") and suggesting the closest allowed key. Returns whether every
/// key was allowed. A `!reference` or non-mapping node is left to the caller.
pub fn check_keys(map: &Node, allowed: &[&str], place: &str, diags: &mut Diagnostics) -> bool {
    let Some(entries) = map.as_map() else {
        return true;
    };
    let mut ok = true;
    for (key, _) in entries {
        let name = key.as_str();
        if allowed.contains(&name) {
            continue;
        }
        ok = false;
        diags.push(unknown_key(name, key.span, allowed.iter().copied(), place));
    }
    ok
}

/// The diagnostic for a key that is not allowed at `place`.
pub fn unknown_key<'a>(
    name: &str,
    span: crate::source::Span,
    allowed: impl IntoIterator<Item = &'a str>,
    place: &str,
) -> Diagnostic {
    Diagnostic::error(span, format!("unknown key `{name}` in {place}"))
        .with_code("unknown-key")
        .with_suggestion(name, allowed)
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT, INHERIT_DEFAULT, job_keywords};

    #[test]
    fn job_keywords_include_script_and_trigger() {
        let all: Vec<_> = job_keywords().collect();
        for k in [
            "script", "trigger", "rules", "needs", "parallel", "pages", "hooks",
        ] {
            assert!(all.contains(&k), "{k}");
        }
        assert!(!all.contains(&"type"), "`type` was removed in GitLab 16.0");
    }

    /// Every keyword of GitLab's JSON schema (app/assets/javascripts/editor/schema/ci.json, copied
    /// to /work/shared/reference) is known at its place.
    #[test]
    fn schema_keywords_are_known() {
        // GitLab's own schema (app/assets/javascripts/editor/schema/ci.json), kept in the
        // project so that the check never depends on a file outside it.
        let text = include_str!("../tests/data/gitlab-ci-schema.json");
        let schema: serde_json::Value = serde_json::from_str(text).expect("the schema is JSON");
        let defs = &schema["definitions"];
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v["properties"]
                .as_object()
                .map(|o| o.keys().filter(|k| *k != "!reference").cloned().collect())
                .unwrap_or_default()
        };
        let job: Vec<&str> = job_keywords().collect();
        for key in keys(&defs["job_template"]) {
            assert!(job.contains(&key.as_str()), "job keyword `{key}`");
        }
        let places: [(&serde_json::Value, &[&str]); 9] = [
            (&schema["properties"]["default"], super::DEFAULT),
            (&defs["artifacts"], super::ARTIFACTS),
            (&defs["artifacts"]["properties"]["reports"], super::REPORTS),
            (&defs["cache_item"], super::CACHE),
            (&defs["image"]["oneOf"][1], super::IMAGE),
            (&defs["services"]["items"]["oneOf"][1], super::SERVICE),
            (&defs["rules"]["items"]["anyOf"][0], super::RULE),
            (
                &defs["job_template"]["properties"]["release"],
                super::RELEASE,
            ),
            (
                &defs["job_template"]["properties"]["inherit"],
                super::INHERIT,
            ),
        ];
        for (place, allowed) in places {
            for key in keys(place) {
                assert!(
                    allowed.contains(&key.as_str()),
                    "keyword `{key}` in {allowed:?}"
                );
            }
        }
        for key in keys(&schema) {
            let top = super::TOP_LEVEL.contains(&key.as_str());
            assert!(
                top || ["$schema", "spec", "pages"].contains(&key.as_str()),
                "top-level `{key}`"
            );
        }
    }

    #[test]
    fn inherit_default_lists_the_default_keys() {
        assert_eq!(INHERIT_DEFAULT, DEFAULT);
    }
}
