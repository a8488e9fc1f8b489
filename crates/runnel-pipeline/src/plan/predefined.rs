//! Predefined variables (`CI_*`, `GITLAB_*`) that GitLab sends in a job payload, computed from a
//! [`RunContext`], and GitLab's slug rules.
//!
//! Runner-side variables (`CI_PROJECT_DIR`, `CI_BUILDS_DIR`, `CI_JOB_STATUS`, `CI_SERVER`, ...)
//! are not here: the executor adds them, as gitlab-runner does (`common/build.go`).

use runnel_api::JobVariable;
use sha2::{Digest, Sha256};

use crate::plan::context::RunContext;

/// `Gitlab::Utils.slugify`: lower case, every character outside `[a-z0-9]` becomes `-`, at most
/// 63 bytes, no leading or trailing `-`. Used for `CI_COMMIT_REF_SLUG` and `CI_JOB_NAME_SLUG`.
pub fn slugify(text: &str) -> String {
    let slug: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    slug.trim_matches('-').to_owned()
}

/// `CI_ENVIRONMENT_SLUG`. GitLab: lib/gitlab/slug/environment.rb — at most 24 characters, starts
/// with a letter, and a 6-character suffix from the SHA-256 of the name when the slug differs
/// from the name.
pub fn environment_slug(name: &str) -> String {
    let mut slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !slug.starts_with(|c: char| c.is_ascii_lowercase()) {
        slug.insert_str(0, "env-");
    }
    let mut squeezed = String::with_capacity(slug.len());
    for c in slug.chars() {
        if !(c == '-' && squeezed.ends_with('-')) {
            squeezed.push(c);
        }
    }
    if squeezed.len() > 24 || squeezed != name {
        let mut short: String = squeezed.chars().take(17).collect();
        if !short.ends_with('-') {
            short.push('-');
        }
        short.push_str(&environment_suffix(name));
        short
    } else {
        squeezed.trim_end_matches('-').to_owned()
    }
}

/// The last 6 base-36 digits of the SHA-256 of `name` read as a number.
fn environment_suffix(name: &str) -> String {
    const MODULUS: u64 = 36u64.pow(6);
    let digest = Sha256::digest(name.as_bytes());
    let mut rest = digest
        .iter()
        .fold(0u64, |acc, &byte| (acc * 256 + u64::from(byte)) % MODULUS);
    let mut digits = [b'0'; 6];
    for digit in digits.iter_mut().rev() {
        let d = u8::try_from(rest % 36).unwrap_or(0);
        *digit = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        rest /= 36;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

/// The commit title: the message's first line. GitLab: app/models/commit.rb `title`.
pub fn commit_title(message: &str) -> &str {
    message.lines().next().unwrap_or("").trim_end()
}

/// The message without its title. GitLab: app/models/commit.rb `description`.
pub fn commit_description(message: &str) -> &str {
    let title = commit_title(message);
    if title.len() >= 100 {
        return message;
    }
    message
        .split_once('\n')
        .map_or("", |(_, rest)| rest)
        .trim_end_matches('\n')
}

fn var(key: &str, value: impl Into<String>) -> JobVariable {
    JobVariable::new(key, value)
}

/// Pipeline-level predefined variables (known before jobs run; usable in `rules:`), in the
/// order GitLab adds them (lib/gitlab/ci/variables/builder.rb `predefined_variables`,
/// app/models/project.rb `predefined_variables`, builder/pipeline.rb).
pub fn pipeline_variables(ctx: &RunContext) -> Vec<JobVariable> {
    let git = &ctx.git;
    let project = &ctx.project;
    let mut vars = vec![
        var("CI", "true"),
        var("GITLAB_CI", "true"),
        var("CI_SERVER_URL", project.server_url()),
        var("CI_SERVER_HOST", &project.server_host),
        var("CI_SERVER_PORT", project.server_port.to_string()),
        var("CI_SERVER_PROTOCOL", &project.server_protocol),
        var("CI_SERVER_FQDN", project.server_fqdn()),
        var("CI_SERVER_NAME", "GitLab"),
        var("CI_SERVER_VERSION", "18.6.0"),
        var("CI_SERVER_VERSION_MAJOR", "18"),
        var("CI_SERVER_VERSION_MINOR", "6"),
        var("CI_SERVER_VERSION_PATCH", "0"),
        var("CI_SERVER_REVISION", ""),
        var("CI_API_V4_URL", format!("{}/api/v4", project.server_url())),
        var(
            "CI_API_GRAPHQL_URL",
            format!("{}/api/graphql", project.server_url()),
        ),
        var("CI_PROJECT_ID", project.id.to_string()),
        var("CI_PROJECT_NAME", project.name()),
        var("CI_PROJECT_TITLE", project.name()),
        var("CI_PROJECT_DESCRIPTION", ""),
        var("CI_PROJECT_PATH", &project.path),
        var("CI_PROJECT_PATH_SLUG", slugify(&project.path)),
        var("CI_PROJECT_NAMESPACE", project.namespace()),
        var("CI_PROJECT_NAMESPACE_SLUG", slugify(project.namespace())),
        var("CI_PROJECT_NAMESPACE_ID", "1"),
        var(
            "CI_PROJECT_ROOT_NAMESPACE",
            project.path.split('/').next().unwrap_or(""),
        ),
        var("CI_PROJECT_URL", project.url()),
        var("CI_PROJECT_VISIBILITY", "private"),
        var("CI_PROJECT_REPOSITORY_LANGUAGES", ""),
        var("CI_PROJECT_CLASSIFICATION_LABEL", ""),
        var("CI_DEFAULT_BRANCH", &git.default_branch),
        var("CI_DEFAULT_BRANCH_SLUG", slugify(&git.default_branch)),
        var("CI_CONFIG_PATH", &ctx.config_path),
        var("CI_PIPELINE_IID", ctx.pipeline_iid.to_string()),
        var("CI_PIPELINE_SOURCE", &ctx.pipeline_source),
        var("CI_PIPELINE_CREATED_AT", &git.timestamp),
        var("CI_COMMIT_SHA", &git.sha),
        var("CI_COMMIT_SHORT_SHA", git.sha.get(..8).unwrap_or(&git.sha)),
        var("CI_COMMIT_BEFORE_SHA", &git.before_sha),
        var("CI_COMMIT_REF_NAME", &git.ref_name),
        var("CI_COMMIT_REF_SLUG", slugify(&git.ref_name)),
    ];
    if git.is_tag {
        vars.push(var("CI_COMMIT_TAG", &git.ref_name));
    } else {
        vars.push(var("CI_COMMIT_BRANCH", &git.ref_name));
    }
    vars.extend([
        var("CI_COMMIT_MESSAGE", &git.message),
        var("CI_COMMIT_MESSAGE_IS_TRUNCATED", "false"),
        var("CI_COMMIT_TITLE", commit_title(&git.message)),
        var("CI_COMMIT_DESCRIPTION", commit_description(&git.message)),
        var("CI_COMMIT_REF_PROTECTED", "false"),
        var("CI_COMMIT_TIMESTAMP", &git.timestamp),
        var("CI_COMMIT_AUTHOR", &git.author),
        var("GITLAB_USER_ID", ctx.user.id.to_string()),
        var("GITLAB_USER_EMAIL", &ctx.user.email),
        var("GITLAB_USER_LOGIN", &ctx.user.login),
        var("GITLAB_USER_NAME", &ctx.user.name),
    ]);
    vars
}

/// The deployment tier GitLab guesses from an environment's name (app/models/environment.rb
/// `guess_tier`).
pub fn environment_tier(name: &str) -> &'static str {
    static TIERS: std::sync::LazyLock<[(regex::Regex, &'static str); 4]> =
        std::sync::LazyLock::new(|| {
            let re = |p: &str| regex::Regex::new(p).expect("the tier patterns are valid");
            [
                (re(r"(?i)(dev|review|trunk)"), "development"),
                (
                    re(r"(?i)(test|tst|int|ac(ce|)pt|qa|qc|control|quality)"),
                    "testing",
                ),
                (re(r"(?i)(st(a|)g|mod(e|)l|pre|demo|non)"), "staging"),
                (re(r"(?i)(pr(o|)d|live)"), "production"),
            ]
        });
    TIERS
        .iter()
        .find(|(re, _)| re.is_match(name))
        .map_or("other", |(_, tier)| tier)
}

#[cfg(test)]
mod tests {
    use super::{commit_description, commit_title, environment_slug, slugify};

    #[test]
    fn slugify_follows_gitlab() {
        assert_eq!(slugify("feature/Login-Form"), "feature-login-form");
        assert_eq!(slugify("rspec: [3.3, pg]"), "rspec---3-3--pg");
        assert_eq!(slugify("--x--"), "x");
        assert_eq!(slugify(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn environment_slug_matches_recorded_gitlab_values() {
        // Values from the conformance case `environment-variables` (GitLab's algorithm).
        assert_eq!(environment_slug("Stage Domain"), "stage-domain-ip33nk");
        assert_eq!(
            environment_slug("stage-domain-foobar-long-string"),
            "stage-domain-foob-yafktx"
        );
        assert_eq!(environment_slug("dev-domain"), "dev-domain");
    }

    #[test]
    fn commit_title_and_description_split_the_message() {
        let message = "Commit Title\n\nMore commit text\n";
        assert_eq!(commit_title(message), "Commit Title");
        assert_eq!(commit_description(message), "\nMore commit text");
    }
}
