//! What a job may choose for its containers within what `[runners.kubernetes]` allows: the
//! pull policy (`image:pull_policy`, `allowed_pull_policies`) and the user
//! (`image:kubernetes:user`, `allowed_users`, `allowed_groups`).
//!
//! GitLab: gitlab-runner `common/config.go` (`GetPullPolicies`, `GetAllowedPullPolicies`),
//! `executors/kubernetes/internal/pull/manager.go` (the first policy is used; Kubernetes has
//! one per container), `verifyPullPolicies` (at least one of the job's policies must be
//! allowed, else the job fails naming where they came from); merge requests !5469, !5540 and
//! !5724 for `image:kubernetes:user`: `uid[:gid]`, given to the build container (the job's
//! image) and to each service container (the service's), unless the container's configured
//! security context sets the user itself (the administrator wins); a user that does not parse
//! or is not allowed is a warning, and the configured security context applies.

use runnel_api::{FailureReason, Image};

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

/// The pull policy of the container of `image` (the job's or a service's): its own
/// `pull_policy` when it has one, else the runner's; `None` leaves it to the cluster.
pub(crate) fn pull_policy(
    image: Option<&Image>,
    name: &str,
    settings: &KubeSettings,
) -> Result<Option<String>, KubeError> {
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
        .first()
        .and_then(|p| to_kubernetes(p).ok())
        .map(str::to_owned))
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

    use super::{RunAs, pull_policy, run_as};
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
        assert_eq!(pull_policy(None, "a", &settings).expect("ok"), None);
        settings.pull_policy = strings(&["always"]);
        let job = image(&["if-not-present"], None);
        let err = pull_policy(Some(&job), "alpine:3", &settings).expect_err("refused");
        insta::assert_snapshot!(err.to_string(), @"failed to pull image 'alpine:3': pull_policy [if-not-present] defined in GitLab pipeline config is not one of the allowed_pull_policies [always]");
        settings.allowed_pull_policies = strings(&["always", "if-not-present"]);
        assert_eq!(
            pull_policy(Some(&job), "alpine:3", &settings).expect("ok"),
            Some("IfNotPresent".to_owned())
        );
        assert_eq!(
            pull_policy(None, "alpine:3", &settings).expect("ok"),
            Some("Always".to_owned())
        );
        settings.allowed_pull_policies = strings(&["never"]);
        let err = pull_policy(None, "alpine:3", &settings).expect_err("refused");
        assert!(
            err.to_string().contains("defined in Runner config"),
            "{err}"
        );
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
