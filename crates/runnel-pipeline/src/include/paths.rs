//! Paths for includes: listing a project's files, GitLab's wildcards for `include:local`,
//! Ruby `fnmatch` globs for `exists:`, and base64 for `integrity:`.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::rules::rule::relative_slash_path;

/// The directory `<base>/<project path>`, matching each path component without regard to
/// ASCII case, as GitLab finds projects (app/models/concerns/routable.rb `find_by_full_path`
/// compares paths case-insensitively): `gnome/citemplates` finds `GNOME/citemplates`.
pub(super) fn project_dir(base: &Path, project: &str) -> Option<PathBuf> {
    let exact = base.join(project);
    if exact.is_dir() {
        return Some(exact);
    }
    let mut dir = base.to_path_buf();
    for component in project.split('/').filter(|c| !c.is_empty()) {
        let entries = std::fs::read_dir(&dir).ok()?;
        let found = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .eq_ignore_ascii_case(component)
            })?;
        dir = found.path();
    }
    Some(dir)
}

/// Standard base64 with padding (for `integrity: sha256-...`).
pub(super) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// GitLab: file/base.rb `YAML_ALLOWLIST_EXTENSION = /.+\.(yml|yaml)$/i` on the base name.
pub(super) fn has_yaml_extension(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    [".yml", ".yaml"]
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// Files below `root` as `/`-separated relative paths, sorted; `.git` is skipped.
pub(super) fn list_files(root: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| relative_slash_path(root, e.path()))
        .collect();
    files.sort();
    files
}

/// GitLab's wildcard for `include:local`: regex-escape, then `**` → `.*?`, `*` → `[^/]*?`,
/// anchored (lib/gitlab/ci/config/external/file/local.rb via `Gitlab::Git::Repository`'s
/// `search_files_by_wildcard_path`).
pub(super) fn wildcard_regex(path: &str) -> Regex {
    let escaped = regex::escape(path);
    let pattern = escaped
        .replace(r"\*\*", "\u{0}")
        .replace(r"\*", "[^/]*?")
        .replace('\u{0}', ".*?");
    Regex::new(&format!("^{pattern}$")).unwrap_or_else(|_| never_matching())
}

fn never_matching() -> Regex {
    static NEVER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[^\s\S]").expect("valid regex"));
    NEVER.clone()
}

#[cfg(test)]
mod tests {
    use super::{base64, wildcard_regex};

    #[test]
    fn base64_pads_like_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn wildcards_follow_gitlab_semantics() {
        let one = wildcard_regex("configs/*.yml");
        assert!(one.is_match("configs/a.yml"));
        assert!(!one.is_match("configs/sub/a.yml"));
        let any = wildcard_regex("configs/**.yml");
        assert!(any.is_match("configs/a.yml"));
        assert!(any.is_match("configs/sub/a.yml"));
        let sub = wildcard_regex("configs/**/*.yml");
        assert!(!sub.is_match("configs/a.yml"));
        assert!(sub.is_match("configs/sub/a.yml"));
    }
}
