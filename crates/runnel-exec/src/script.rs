//! Generates the bash script of a build stage, as gitlab-runner's bash shell does.
//!
//! GitLab: gitlab-runner `shells/bash.go` and `shells/abstract.go`. The stage body is `eval`'d
//! from one single-quoted string with `errexit` and `pipefail`, so it stops at the first failing
//! command; user commands read `/dev/null`; every command is echoed in bold green first, a
//! multi-line command as its first line plus `# collapsed multi-line command`.

use std::fmt::Write as _;
use std::path::Path;

/// The variables of a stage, ready to export: expanded values, file variables already resolved
/// to the file's path.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exports {
    pub(crate) vars: Vec<(String, String)>,
}

/// Quotes `value` for a POSIX shell as one word in single quotes.
pub(crate) fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Whether `key` can be exported by a shell.
fn is_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The echo line for one command: `$ <first line>` in bold green.
fn echo_line(command: &str) -> String {
    let trimmed = command.trim_end_matches(['\n', '\r']);
    let mut lines = trimmed.lines();
    let first = lines.next().unwrap_or_default().trim_end_matches('\r');
    let shown = if lines.next().is_some() {
        format!("{first} # collapsed multi-line command")
    } else {
        first.to_owned()
    };
    format!(
        "echo {}\n",
        shell_quote(&format!("\x1b[32;1m$ {shown}\x1b[0;m"))
    )
}

/// `export KEY='value'` for each variable whose name a shell can export.
pub(crate) fn export_lines(exports: &Exports) -> String {
    let mut lines = String::new();
    for (key, value) in &exports.vars {
        if is_env_name(key) {
            let _ = writeln!(lines, "export {key}={}", shell_quote(value));
        }
    }
    lines
}

/// The body of a user script stage: exports, `GITLAB_ENV`, `cd`, then each command echoed and run.
pub(crate) fn stage_body(
    exports: &Exports,
    env_file: &Path,
    project_dir: &Path,
    commands: &[String],
) -> String {
    let mut body = export_lines(exports);
    let env_file = shell_quote(&env_file.to_string_lossy());
    // GitLab: gitlab-runner `shells/bash.go` — values a job writes to `$GITLAB_ENV` are exported
    // in every later stage.
    let _ = writeln!(body, "export GITLAB_ENV={env_file}");
    let _ = writeln!(
        body,
        "if [ -f {env_file} ]; then while IFS= read -r line || [ -n \"$line\" ]; do \
         [ -n \"$line\" ] && export \"$line\"; done < {env_file}; fi"
    );
    let _ = writeln!(body, "cd {}", shell_quote(&project_dir.to_string_lossy()));
    for command in commands {
        if command.trim().is_empty() {
            continue;
        }
        body.push_str(&echo_line(command));
        body.push_str(command);
        body.push('\n');
    }
    body
}

/// Wraps a stage body into the script fed to `bash` on stdin.
pub(crate) fn wrap(body: &str, debug_trace: bool) -> String {
    let mut script = String::with_capacity(body.len() + 256);
    script.push_str("trap 'exit 1' TERM\n");
    if debug_trace {
        script.push_str("set -o xtrace\n");
    }
    // gitlab-runner tests `$(set -o)` for pipefail and evals in a `( … )` subshell; both fork.
    // Testing the shell's version variable and a `{ …; }` group do the same without a fork.
    script.push_str("if [ -n \"${BASH_VERSION:-}${ZSH_VERSION:-}\" ]; then set -o pipefail; fi; set -o errexit\n");
    script.push_str("set +o noclobber\n");
    let _ = writeln!(script, "{{ eval {}\n}} < /dev/null", shell_quote(body));
    script.push_str("exit 0\n");
    script
}

#[cfg(test)]
mod tests {
    use super::{echo_line, shell_quote};

    #[test]
    fn quotes_single_quotes() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn multi_line_command_is_echoed_collapsed() {
        assert_eq!(
            echo_line("if true; then\n  echo hi\nfi\n"),
            "echo '\x1b[32;1m$ if true; then # collapsed multi-line command\x1b[0;m'\n"
        );
    }
}
