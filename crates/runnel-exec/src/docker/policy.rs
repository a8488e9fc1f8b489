//! The runner's limits on what a job may ask for: `allowed_images`, `allowed_services`,
//! `allowed_pull_policies`, `allowed_privileged_images`, `allowed_privileged_services`,
//! `allowed_users` and `services_limit`. Pure decisions only: the executor applies them, and a
//! job that breaks one fails with a [`Violation`] before anything is pulled or started.
//!
//! GitLab: gitlab-runner `common/allowed_images.go` (`VerifyAllowedImage`, doublestar globs),
//! `executors/docker/docker.go` (`isInAllowedPrivilegedImages`, `getBuildContainerUser`),
//! `common/config.go` (`IsUserAllowed`), `executors/docker/services.go`
//! (`getServicesDefinitions`, `tooManyServicesRequestedError`) and
//! `executors/docker/internal/pull/manager.go` (`verifyPullPolicies`). gitlab-runner reports
//! each of these as a plain error, so the job fails as a system failure.

use globset::GlobBuilder;
use runnel_api::FailureReason;

use super::config::{PullPolicy, policy_list};
use super::error::DockerError;
use crate::trace::Trace;

/// Where gitlab-runner's documentation explains `allowed_images` and `allowed_services`.
const ALLOWED_IMAGES_DOCS: &str =
    "https://docs.gitlab.com/runner/configuration/advanced-configuration/";

/// A job asks for something the runner does not allow. The job fails with
/// `runner_system_failure`; `notes` go to the trace first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Lines explaining the refusal, written before the job's final line.
    pub(crate) notes: Vec<Note>,
    /// What the final line says after "Job failed (system failure): ".
    pub(crate) message: String,
}

/// One line of a [`Violation`]'s explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    /// A plain line.
    Line(String),
    /// A line printed as `ERROR: …`.
    Error(String),
}

impl Violation {
    fn new(message: impl Into<String>) -> Self {
        Self {
            notes: Vec::new(),
            message: message.into(),
        }
    }

    /// Writes the notes to `trace` and turns the refusal into the error that fails the job.
    pub(crate) fn report(self, trace: &mut Trace) -> DockerError {
        for note in &self.notes {
            match note {
                Note::Line(line) => trace.println(line),
                Note::Error(line) => trace.error(line),
            }
        }
        DockerError::Job {
            reason: FailureReason::RunnerSystemFailure,
            message: self.message,
        }
    }

    /// The trace text of the refusal without colours, final line included (for tests).
    #[cfg(test)]
    pub(crate) fn to_plain(&self) -> String {
        let mut text = String::new();
        for note in &self.notes {
            match note {
                Note::Line(line) => text.push_str(line),
                Note::Error(line) => {
                    text.push_str("ERROR: ");
                    text.push_str(line);
                }
            }
            text.push('\n');
        }
        text.push_str("ERROR: Job failed (system failure): ");
        text.push_str(&self.message);
        text.push('\n');
        text
    }
}

/// Whether `name` matches the glob `pattern` as gitlab-runner's `doublestar.Match` does: `*`
/// and `?` stop at `/`, a `**` path segment spans any number of segments (none included),
/// `[…]` and `{a,b}` work as in a shell. A pattern that does not parse matches nothing.
pub(crate) fn glob_matches(pattern: &str, name: &str) -> bool {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .is_ok_and(|glob| glob.compile_matcher().is_match(name))
}

/// gitlab-runner `VerifyAllowedImage`: `image` must match one of `allowed` or be one of
/// `internal` (the runner's own image, the configured services); an empty `allowed` allows
/// everything. `option` is `images` or `services`.
pub(crate) fn verify_allowed_image(
    image: &str,
    option: &str,
    allowed: &[String],
    internal: &[String],
) -> Result<(), Violation> {
    if allowed.is_empty()
        || allowed.iter().any(|pattern| glob_matches(pattern, image))
        || internal.iter().any(|name| name == image)
    {
        return Ok(());
    }
    let mut notes = vec![
        Note::Line(String::new()),
        Note::Error(format!(
            "The \"{image}\" image is not present on list of allowed {option}:"
        )),
    ];
    notes.extend(
        allowed
            .iter()
            .map(|pattern| Note::Line(format!("- {pattern}"))),
    );
    notes.push(Note::Line(String::new()));
    notes.push(Note::Line(format!(
        "Please check runner's allowed_images configuration: {ALLOWED_IMAGES_DOCS}"
    )));
    Err(Violation {
        notes,
        message: "disallowed image".to_owned(),
    })
}

/// gitlab-runner `isInAllowedPrivilegedImages`: with `privileged` on, a container runs
/// privileged only when its image matches one of `allowed` (an empty list allows every image).
pub(crate) fn privileged_for(privileged: bool, image: &str, allowed: &[String]) -> bool {
    privileged && (allowed.is_empty() || allowed.iter().any(|p| glob_matches(p, image)))
}

/// gitlab-runner `getBuildContainerUser` and `IsUserAllowed`: the runner's `user` wins over the
/// job's `image:docker:user`; the chosen user must be in `allowed_users`, which defaults to the
/// runner's `user` alone (neither set: any user). `None` keeps the image's user.
pub(crate) fn build_user(
    runner_user: Option<&str>,
    job_user: Option<&str>,
    allowed_users: &[String],
) -> Result<Option<String>, Violation> {
    let runner_user = runner_user.filter(|u| !u.is_empty());
    let Some(user) = runner_user.or(job_user).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let allowed: Vec<&str> = match (allowed_users.is_empty(), runner_user) {
        (true, None) => return Ok(Some(user.to_owned())),
        (true, Some(runner)) => vec![runner],
        (false, _) => allowed_users.iter().map(String::as_str).collect(),
    };
    if allowed.contains(&user) {
        return Ok(Some(user.to_owned()));
    }
    Err(Violation::new(format!(
        "user \"{user}\" is not an allowed user: [{}]",
        allowed_users.join(" ")
    )))
}

/// Where the pull policies of an image came from, as gitlab-runner names it in its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicySource {
    /// The job's `image:pull_policy` (or the service's).
    Job,
    /// The runner's `pull_policy`.
    Runner,
    /// Neither: `always`.
    Default,
}

impl PolicySource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Job => "GitLab pipeline config",
            Self::Runner => "Runner config",
            Self::Default => "Runner config (default)",
        }
    }
}

/// gitlab-runner `verifyPullPolicies`: at least one of `policies` must be in `allowed`.
/// gitlab-runner then tries every one of `policies` in order, allowed or not; so does runnel.
pub(crate) fn verify_pull_policies(
    image: &str,
    policies: &[PullPolicy],
    allowed: &[PullPolicy],
    source: PolicySource,
) -> Result<(), Violation> {
    if policies.iter().any(|p| allowed.contains(p)) {
        return Ok(());
    }
    Err(Violation::new(format!(
        "failed to pull image '{image}': pull_policy ({}) defined in {} is not one of the \
         allowed_pull_policies ({})",
        policy_list(policies),
        source.as_str(),
        policy_list(allowed)
    )))
}

/// gitlab-runner `tooManyServicesRequestedError`: more services (the runner's and the job's
/// together) than `services_limit`; `None` is no limit.
pub(crate) fn verify_services_limit(
    requested: usize,
    limit: Option<usize>,
) -> Result<(), Violation> {
    match limit {
        Some(limit) if requested > limit => Err(Violation::new(format!(
            "too many services requested: {requested}, only {limit} allowed"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{
        PolicySource, build_user, glob_matches, privileged_for, verify_allowed_image,
        verify_pull_policies, verify_services_limit,
    };
    use crate::docker::config::PullPolicy;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// gitlab-runner `common/allowed_images_test.go` `allowedImageTestCases`, case by case.
    #[test]
    fn allowed_images_match_as_gitlab_runners_doublestar_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("alpine", "alpine", true),
            ("alpine", "ubuntu", false),
            ("library/ruby", "*", false),
            ("library/ruby", "**/*", true),
            ("library/ruby", "**/*:*", false),
            ("library/ruby", "*/*", true),
            ("library/ruby", "*/*:*", false),
            ("library/ruby:2.1", "*", false),
            ("library/ruby:2.1", "**/*", true),
            ("library/ruby:2.1", "**/*:*", true),
            ("library/ruby:2.1", "*/*", true),
            ("library/ruby:2.1", "*/*:*", true),
            ("my.registry.tld/group/subgroup/ruby", "*", false),
            (
                "my.registry.tld/group/subgroup/ruby",
                "my.registry.tld/**/*",
                true,
            ),
            (
                "my.registry.tld/group/subgroup/ruby",
                "my.registry.tld/*/*",
                false,
            ),
            (
                "my.registry.tld/group/subgroup/ruby",
                "my.registry.tld/*/*/*",
                true,
            ),
            ("my.registry.tld/group/subgroup/ruby:2.1", "*", false),
            (
                "my.registry.tld/group/subgroup/ruby:2.1",
                "my.registry.tld/**/*:*",
                true,
            ),
            (
                "my.registry.tld/group/subgroup/ruby:2.1",
                "my.registry.tld/*/*/*:*",
                true,
            ),
            (
                "my.registry.tld/group/subgroup/ruby:2.1",
                "my.registry.tld/*/*:*",
                false,
            ),
            ("my.registry.tld/library/ruby", "*", false),
            ("my.registry.tld/library/ruby", "my.registry.tld/**/*", true),
            ("my.registry.tld/library/ruby", "my.registry.tld/*/*", true),
            ("my.registry.tld/library/ruby:2.1", "*", false),
            (
                "my.registry.tld/library/ruby:2.1",
                "my.registry.tld/**/*:*",
                true,
            ),
            (
                "my.registry.tld/library/ruby:2.1",
                "my.registry.tld/*/*:*",
                true,
            ),
            ("my.registry.tld/ruby", "*", false),
            ("my.registry.tld/ruby:2.1", "*", false),
            ("ruby", "*", true),
            ("ruby", "**/*", true),
            ("ruby:2.1", "*", true),
            ("ruby:2.1", "**/*", true),
            ("ruby:latest", "*", true),
            ("ruby:latest", "**/*", true),
        ];
        for (image, pattern, expected) in cases {
            let result = verify_allowed_image(image, "images", &list(&[pattern]), &[]);
            assert_eq!(result.is_ok(), *expected, "{image} against {pattern}");
        }
        // The runner's own images are allowed whatever the list says; no list allows all.
        let internal = list(&["gitlab/gitlab-runner-helper"]);
        let allowed = list(&["alpine"]);
        assert!(
            verify_allowed_image("gitlab/gitlab-runner-helper", "images", &allowed, &internal)
                .is_ok()
        );
        assert!(verify_allowed_image("alpine", "images", &[], &[]).is_ok());
    }

    #[test]
    fn globs_support_classes_alternatives_and_question_marks() {
        assert!(glob_matches("python:3.1[01]-slim", "python:3.11-slim"));
        assert!(glob_matches("{python,ruby}:*", "ruby:3"));
        assert!(glob_matches("redis:?", "redis:7"));
        assert!(!glob_matches("redis:?", "redis:7.2"));
        assert!(!glob_matches("docker:*", "evil/docker:1"));
        assert!(!glob_matches("[unclosed", "[unclosed"));
    }

    #[test]
    fn disallowed_image_explains_itself_as_gitlab_runner_does() {
        let allowed = list(&["runnel-test/*", "python:3.11-*"]);
        let refused =
            verify_allowed_image("evil/python:3", "images", &allowed, &[]).expect_err("refused");
        insta::assert_snapshot!(refused.to_plain());
        let refused = verify_allowed_image("mysql:8", "services", &list(&["redis:*"]), &[])
            .expect_err("refused");
        insta::assert_snapshot!(refused.to_plain());
    }

    #[test]
    fn privileged_needs_privileged_and_an_allowed_image() {
        let allowed = list(&["docker:*-dind"]);
        assert!(privileged_for(true, "docker:27-dind", &allowed));
        assert!(!privileged_for(true, "alpine:3", &allowed));
        assert!(privileged_for(true, "alpine:3", &[]));
        assert!(!privileged_for(false, "docker:27-dind", &allowed));
    }

    #[test]
    fn runner_user_wins_and_job_users_must_be_allowed() {
        // Nothing configured: the job picks any user, or keeps the image's.
        assert_eq!(build_user(None, Some("root"), &[]), Ok(Some("root".into())));
        assert_eq!(build_user(None, None, &[]), Ok(None));
        assert_eq!(build_user(Some(""), Some(""), &[]), Ok(None));
        // The runner's user wins over the job's, and is allowed by default.
        assert_eq!(
            build_user(Some("nobody"), Some("root"), &[]),
            Ok(Some("nobody".into()))
        );
        // With `allowed_users`, the job chooses among them.
        let allowed = list(&["app", "nobody"]);
        assert_eq!(
            build_user(None, Some("app"), &allowed),
            Ok(Some("app".into()))
        );
        let refused = build_user(None, Some("root"), &allowed).expect_err("refused");
        insta::assert_snapshot!(refused.to_plain());
        // The runner's own user is checked too.
        assert!(build_user(Some("root"), None, &allowed).is_err());
    }

    #[test]
    fn a_pull_policy_outside_the_allowed_ones_names_its_source() {
        use PullPolicy::{Always, IfNotPresent, Never};
        assert!(verify_pull_policies("a", &[Always, Never], &[Never], PolicySource::Job).is_ok());
        let refused = verify_pull_policies(
            "python:3.11-slim",
            &[IfNotPresent],
            &[Always],
            PolicySource::Job,
        )
        .expect_err("refused");
        insta::assert_snapshot!(refused.to_plain());
        let refused = verify_pull_policies("a", &[Always], &[Never], PolicySource::Default)
            .expect_err("refused");
        assert!(
            refused
                .message
                .contains("defined in Runner config (default)")
        );
    }

    #[test]
    fn services_beyond_the_limit_are_refused() {
        assert!(verify_services_limit(3, None).is_ok());
        assert!(verify_services_limit(2, Some(2)).is_ok());
        let refused = verify_services_limit(3, Some(2)).expect_err("refused");
        assert_eq!(
            refused.message,
            "too many services requested: 3, only 2 allowed"
        );
        assert!(verify_services_limit(1, Some(0)).is_err());
    }
}
