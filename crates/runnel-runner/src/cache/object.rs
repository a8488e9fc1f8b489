//! Object names of cache archives (gitlab-runner `cache/cache.go` `generateObjectName`):
//! `<Path>/runner/<short token>/project/<project id>/<key>`, or without the `runner/<short
//! token>` part when `Shared = true`. The key may not climb out of the project's prefix.

/// A key that would leave its project's prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("computed cache path outside of project bucket. Please remove `../` from cache key")]
pub struct ObjectNameError;

/// The object name of `key` for project `project_id` under `path`, in the runner's namespace
/// unless `shared`. Segments are joined and cleaned like Go's `path.Join`.
pub fn object_name(
    path: &str,
    shared: bool,
    short_token: &str,
    project_id: u64,
    key: &str,
) -> Result<String, ObjectNameError> {
    let namespace = if shared {
        String::new()
    } else {
        format!("runner/{short_token}")
    };
    let base = join(&[path, &namespace, "project", &project_id.to_string()]);
    let full = join(&[&base, key]);
    // The base never ends in `/`, so a full name inside it starts with `<base>/`.
    match full.strip_prefix(&base) {
        Some(rest) if rest.starts_with('/') && rest.len() > 1 => Ok(full),
        _ => Err(ObjectNameError),
    }
}

/// Go's `path.Join` without the leading `/` (object names are relative): `.` and empty
/// segments dropped, `..` removes the previous segment.
fn join(parts: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in parts {
        for segment in part.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                segment => out.push(segment),
            }
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::{ObjectNameError, object_name};

    #[test]
    fn object_names_follow_gitlab_runner_layout() {
        assert_eq!(
            object_name("", false, "abc123xyz", 7, "venv-protected").as_deref(),
            Ok("runner/abc123xyz/project/7/venv-protected")
        );
        assert_eq!(
            object_name("ci/cache/", true, "abc123xyz", 7, "venv-non_protected").as_deref(),
            Ok("ci/cache/project/7/venv-non_protected")
        );
        assert_eq!(
            object_name("", true, "t", 7, "a/./b").as_deref(),
            Ok("project/7/a/b")
        );
    }

    #[test]
    fn keys_cannot_leave_the_project_prefix() {
        assert_eq!(
            object_name("", true, "t", 7, "../8/venv"),
            Err(ObjectNameError)
        );
        assert_eq!(object_name("", false, "t", 7, ".."), Err(ObjectNameError));
    }
}
