//! What a job may choose for its containers within what `[runners.kubernetes]` allows: the
//! pull policy (`image:pull_policy`, `allowed_pull_policies`) and the user
//! (`image:kubernetes:user`, `allowed_users`, `allowed_groups`).
//!
//! GitLab: gitlab-runner `common/config.go` (`GetPullPolicies`, `GetAllowedPullPolicies`),
//! `executors/kubernetes/internal/pull/manager.go` (Kubernetes has one policy per container:
//! the first is used, the next one after a failed pull), `verifyPullPolicies` (at least one of the job's policies must be
//! allowed, else the job fails naming where they came from); merge requests !5469, !5540 and
//! !5724 for `image:kubernetes:user`: `uid[:gid]`, given to the build container (the job's
//! image) and to each service container (the service's), unless the container's configured
//! security context sets the user itself (the administrator wins); a user that does not parse
//! or is not allowed is a warning, and the configured security context applies.

use std::collections::BTreeMap;

use runnel_api::{FailureReason, Image};
use runnel_exec::Trace;

use crate::error::KubeError;
use crate::settings::KubeSettings;

/// A pull policy in Kubernetes' spelling, or the error for one gitlab-runner does not know.
fn to_kubernetes(policy: &str) -> Result<&'static str, String> {
    match policy.trim() {
        "always" => Ok("Always"),
        "if-not-present" => Ok("IfNotPresent"),
        "never" => Ok("Never"),
        other => Err(format!(
            "unsupported pull_policy {other:?} (expected `always`, `if-not-present` or `never`)"
        )),
    }
}

fn list(policies: &[String]) -> String {
    format!("[{}]", policies.join(" "))
}

/// The pull policies of the container of `image` (the job's or a service's), in Kubernetes'
/// spelling and in the order they are tried: its own `pull_policy` when it has one, else the
/// runner's; none leaves it to the cluster.
pub(crate) fn pull_policies(
    image: Option<&Image>,
    name: &str,
    settings: &KubeSettings,
) -> Result<Vec<String>, KubeError> {
    let own: Vec<String> = image.map(|i| i.pull_policy.clone()).unwrap_or_default();
    let (policies, source) = if own.is_empty() {
        (settings.pull_policy.clone(), "Runner config")
    } else {
        (own, "GitLab pipeline config")
    };
    let fail = |message: String| KubeError::Job {
        reason: FailureReason::RunnerSystemFailure,
        message,
    };
    for policy in &policies {
        to_kubernetes(policy).map_err(|err| fail(format!("image {name:?}: {err}")))?;
    }
    let allowed = if settings.allowed_pull_policies.is_empty() {
        &settings.pull_policy
    } else {
        &settings.allowed_pull_policies
    };
    if !allowed.is_empty() && !policies.is_empty() && !policies.iter().any(|p| allowed.contains(p))
    {
        return Err(fail(format!(
            "failed to pull image '{name}': pull_policy {} defined in {source} is not one of the \
             allowed_pull_policies {}",
            list(&policies),
            list(allowed)
        )));
    }
    Ok(policies
        .iter()
        .filter_map(|p| to_kubernetes(p).ok())
        .map(str::to_owned)
        .collect())
}

/// The runner's `pull_policy` for the helper image, in Kubernetes' spelling.
pub(crate) fn helper_pull_policies(settings: &KubeSettings) -> Vec<String> {
    settings
        .pull_policy
        .iter()
        .filter_map(|p| to_kubernetes(p).ok())
        .map(str::to_owned)
        .collect()
}

/// Which pull policy each image gets on the next try of the pod: the first of its list, the
/// next one after each failed pull. GitLab: gitlab-runner
/// `executors/kubernetes/internal/pull/manager.go`; its `Run` deletes the pod and makes it
/// again while an image that failed to pull has another policy left.
#[derive(Debug, Default)]
pub(crate) struct PullManager {
    policies: BTreeMap<String, Vec<String>>,
    failures: BTreeMap<String, usize>,
}

impl PullManager {
    /// Sets the policies of `image` (a later call for the same image keeps the first list).
    pub(crate) fn add(&mut self, image: &str, policies: Vec<String>) {
        self.policies.entry(image.to_owned()).or_insert(policies);
    }

    /// The policy for the next pull of `image`; `None` leaves it to the cluster.
    pub(crate) fn current(&self, image: &str) -> Option<String> {
        let failures = self.failures.get(image).copied().unwrap_or(0);
        self.policies.get(image)?.get(failures).cloned()
    }

    /// Records that `image` failed to pull (`message`: the kubelet's words) and says so in the
    /// trace; returns whether another policy is left to try (attempt `attempt + 1`).
    pub(crate) fn failed(
        &mut self,
        image: &str,
        message: &str,
        attempt: usize,
        trace: &mut Trace,
    ) -> bool {
        let policy = self.current(image).unwrap_or_default();
        *self.failures.entry(image.to_owned()).or_insert(0) += 1;
        trace.warning(&format!(
            "Failed to pull image {image:?} with policy {policy:?}: {message}"
        ));
        let Some(next) = self.current(image) else {
            return false;
        };
        trace.println(&format!(
            "Attempt #{}: Trying {next:?} pull policy for {image:?} image",
            attempt + 1
        ));
        true
    }
}

/// The user and group a container runs as (`image:kubernetes:user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    /// `runAsUser`.
    pub(crate) uid: i64,
    /// `runAsGroup`, when given.
    pub(crate) gid: Option<i64>,
}

/// The user `image` asks for, checked against `allowed_users`/`allowed_groups`; a user that
/// does not parse or is not allowed is a warning pushed to `warnings` and `None`.
pub(crate) fn run_as(
    image: Option<&Image>,
    settings: &KubeSettings,
    warnings: &mut Vec<String>,
) -> Option<RunAs> {
    let user = image?
        .executor_opts
        .as_ref()?
        .kubernetes
        .as_ref()?
        .user
        .as_deref()?
        .trim();
    if user.is_empty() {
        return None;
    }
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user, None),
    };
    let parsed = uid
        .parse::<i64>()
        .map_err(|_| format!("failed to parse UID {uid:?}"))
        .and_then(|uid| match gid {
            Some(gid) => gid
                .parse::<i64>()
                .map(|gid| (uid, Some(gid)))
                .map_err(|_| format!("failed to parse GID {gid:?}")),
            None => Ok((uid, None)),
        });
    let (uid, gid) = match parsed {
        Ok(ids) => ids,
        Err(err) => {
            warnings.push(format!(
                "Error parsing 'uid' or 'gid' from image options, using the configured security \
                 context: {err}"
            ));
            return None;
        }
    };
    let refused = |kind: &str, id: i64, allowed: &[String]| {
        format!(
            "{kind} {id} of image {:?} is not in allowed_{kind}s [{}], using the configured \
             security context",
            image.map(|i| i.name.as_str()).unwrap_or_default(),
            allowed.join(" ")
        )
    };
    if !settings.allowed_users.is_empty() && !settings.allowed_users.contains(&uid.to_string()) {
        warnings.push(refused("user", uid, &settings.allowed_users));
        return None;
    }
    if let Some(gid) = gid
        && !settings.allowed_groups.is_empty()
        && !settings.allowed_groups.contains(&gid.to_string())
    {
        warnings.push(refused("group", gid, &settings.allowed_groups));
        return None;
    }
    Some(RunAs { uid, gid })
}

#[cfg(test)]
mod tests {
    use runnel_api::{ExecutorOpts, Image, KubernetesExecutorOpts};

    use super::{PullManager, RunAs, pull_policies, run_as};
    use crate::settings::KubeSettings;

    fn image(pull_policy: &[&str], user: Option<&str>) -> Image {
        Image {
            name: "alpine:3".to_owned(),
            pull_policy: pull_policy.iter().map(|p| (*p).to_owned()).collect(),
            executor_opts: user.map(|user| ExecutorOpts {
                kubernetes: Some(KubernetesExecutorOpts {
                    user: Some(user.to_owned()),
                    ..KubernetesExecutorOpts::default()
                }),
                ..ExecutorOpts::default()
            }),
            ..Image::default()
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_job_pull_policy_wins_within_the_allowed_ones() {
        let mut settings = KubeSettings::new();
        assert_eq!(
            pull_policies(None, "a", &settings).expect("ok"),
            Vec::<String>::new()
        );
        settings.pull_policy = strings(&["always"]);
        let job = image(&["if-not-present"], None);
        let err = pull_policies(Some(&job), "alpine:3", &settings).expect_err("refused");
        insta::assert_snapshot!(err.to_string(), @"failed to pull image 'alpine:3': pull_policy [if-not-present] defined in GitLab pipeline config is not one of the allowed_pull_policies [always]");
        settings.allowed_pull_policies = strings(&["always", "if-not-present"]);
        assert_eq!(
            pull_policies(Some(&job), "alpine:3", &settings).expect("ok"),
            ["IfNotPresent"]
        );
        assert_eq!(
            pull_policies(None, "alpine:3", &settings).expect("ok"),
            ["Always"]
        );
        settings.allowed_pull_policies = strings(&["never"]);
        let err = pull_policies(None, "alpine:3", &settings).expect_err("refused");
        assert!(
            err.to_string().contains("defined in Runner config"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_pull_moves_the_image_to_its_next_policy() {
        let mut pulls = PullManager::default();
        pulls.add("alpine:3", strings(&["Always", "IfNotPresent"]));
        pulls.add("redis", Vec::new());
        assert_eq!(pulls.current("alpine:3").as_deref(), Some("Always"));
        assert_eq!(pulls.current("redis"), None);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut trace = runnel_exec::test_support::trace(tx);
        assert!(pulls.failed("alpine:3", "no route to registry", 1, &mut trace));
        assert_eq!(pulls.current("alpine:3").as_deref(), Some("IfNotPresent"));
        assert!(!pulls.failed("alpine:3", "not found", 2, &mut trace));
        assert!(!pulls.failed("redis", "not found", 1, &mut trace));
        trace.flush();
        let text = String::from_utf8_lossy(trace.bytes()).into_owned();
        assert!(text.contains("WARNING: Failed to pull image \"alpine:3\" with policy \"Always\": no route to registry"), "{text}");
        assert!(
            text.contains("Attempt #2: Trying \"IfNotPresent\" pull policy for \"alpine:3\" image"),
            "{text}"
        );
        assert!(text.contains("with policy \"\": not found"), "{text}");
    }

    #[test]
    fn the_job_user_applies_when_allowed_and_parsed() {
        let mut settings = KubeSettings::new();
        let mut warnings = Vec::new();
        let job = image(&[], Some("1234:2345"));
        assert_eq!(
            run_as(Some(&job), &settings, &mut warnings),
            Some(RunAs {
                uid: 1234,
                gid: Some(2345)
            })
        );
        settings.allowed_users = strings(&["1000"]);
        assert_eq!(run_as(Some(&job), &settings, &mut warnings), None);
        settings.allowed_users = strings(&["1234"]);
        settings.allowed_groups = strings(&["0"]);
        assert_eq!(run_as(Some(&job), &settings, &mut warnings), None);
        assert_eq!(
            run_as(Some(&image(&[], Some("root"))), &settings, &mut warnings),
            None
        );
        insta::assert_snapshot!(warnings.join("\n"), @r#"
        user 1234 of image "alpine:3" is not in allowed_users [1000], using the configured security context
        group 2345 of image "alpine:3" is not in allowed_groups [0], using the configured security context
        Error parsing 'uid' or 'gid' from image options, using the configured security context: failed to parse UID "root"
        "#);
    }
}
