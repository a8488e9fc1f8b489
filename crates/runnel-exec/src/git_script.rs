//! The git commands of the `get_sources` stage, shared by the two ways runnel gets sources from
//! a Git remote: on this host, where `git_fetch` runs them one by one, and in an executor's own
//! environment (the SSH, VirtualBox and Parallels executors of the daemon), where they run as
//! one bash script through [`Executor::run`], as gitlab-runner's generated `get_sources` script
//! does on the remote host (GitLab: gitlab-runner `shells/abstract.go` `writeGetSourcesScript`,
//! `writeRefspecFetchCmd`, `writeCheckoutCmd`, `writeSubmoduleUpdateCmd`).
//!
//! The script does what `git_fetch` does, step for step: it removes stale lock files, `git
//! init`s with the same template, sets `origin` to the URL without the job token and fetches
//! with the token only in a private configuration file (mode 0600, in a directory under the
//! job's temporary directory that the script removes when it exits), checks out the commit,
//! cleans, and updates submodules. It prints the same lines into the trace.

use runnel_api::JobPayload;

use crate::build::Run;
use crate::context::JobContext;
use crate::error::ExecError;
use crate::executor::{Executor, PreparedJob, StageRun};
use crate::git_fetch::{RemoteUrl, STALE_FILES, TEMPLATE_CONFIG, config_escape};
use crate::script::{Exports, export_lines, shell_quote, wrap};
use crate::sources::GitStrategy;
use crate::steps::record_end;
use crate::trace::Trace;
use crate::variables::{JobVariables, RUNNER_VERSION};

/// Runs `get_sources` as a git script through `executor` (see the module documentation) and
/// records how it ended in `run`.
pub(crate) async fn get_sources_remotely(
    executor: &mut dyn Executor,
    job: &PreparedJob,
    ctx: &JobContext,
    trace: &mut Trace,
    run: &mut Run,
    exports: &Exports,
) -> Result<(), ExecError> {
    let strategy = GitStrategy::of(&job.payload, &job.variables);
    let stage = StageRun {
        name: "get_sources".into(),
        script: wrap(
            &script_body(job, exports, strategy),
            job.variables.bool("CI_DEBUG_TRACE"),
        ),
        cancel: ctx.cancel.clone(),
        deadline: run.deadline,
    };
    let end = executor.run(job, stage, trace).await?;
    record_end(run, end);
    Ok(())
}

/// `args`, each quoted, separated by spaces.
fn quoted(args: &[String]) -> String {
    args.iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line running `git` with `args`.
fn git(args: &[String]) -> String {
    format!("git {}\n", quoted(args))
}

/// A line running `git` with the credentials' configuration first, then `args`.
fn git_with_credentials(args: &[String]) -> String {
    format!(
        "git -c \"include.path=$runnel_git/credentials.config\" {}\n",
        quoted(args)
    )
}

fn echo(text: &str) -> String {
    format!("echo {}\n", shell_quote(text))
}

/// The body of the `get_sources` script for `job` with `strategy`, in the scripts' directories.
pub(crate) fn script_body(job: &PreparedJob, exports: &Exports, strategy: GitStrategy) -> String {
    let project = shell_quote(&job.script_dirs.project_dir.to_string_lossy());
    let mut body = export_lines(exports);
    body.push_str("export GIT_TERMINAL_PROMPT=0 GCM_INTERACTIVE=Never\n");
    match strategy {
        GitStrategy::None => {
            body.push_str(&echo("Skipping Git repository setup"));
            body.push_str(&format!("mkdir -p -- {project}\n"));
            return body;
        }
        GitStrategy::Empty => {
            body.push_str(&echo(
                "Skipping Git repository setup and creating an empty build directory",
            ));
            body.push_str(&format!("rm -rf -- {project}\nmkdir -p -- {project}\n"));
            return body;
        }
        GitStrategy::Clone => body.push_str(&format!("rm -rf -- {project}\n")),
        GitStrategy::Fetch => {}
    }
    let (payload, variables) = (&job.payload, &job.variables);
    body.push_str(&format!("mkdir -p -- {project}\ncd -- {project}\n"));
    let depth = payload.git_info.depth;
    body.push_str(&echo(&if depth > 0 {
        format!("Fetching changes with git depth set to {depth}...")
    } else {
        "Fetching changes...".to_owned()
    }));
    body.push_str(&stale_files_cleanup(variables));
    body.push_str(&scratch(job, &RemoteUrl::parse(&payload.git_info.repo_url)));
    body.push_str(&tls_config(job));
    body.push_str(&init_and_fetch(payload, variables));
    if matches!(variables.get("GIT_CHECKOUT"), Some("false" | "0")) {
        body.push_str(&echo("Skipping Git checkout"));
        return body;
    }
    body.push_str(&echo(&checkout_line(payload)));
    for args in checkout_steps(payload, variables) {
        body.push_str(&git(&args));
    }
    body.push_str(&submodules(variables, depth));
    body
}

/// GitLab: `writeGitCleanup`, as `git_fetch::remove_stale_files`.
fn stale_files_cleanup(variables: &JobVariables) -> String {
    let mut lines = String::new();
    for name in STALE_FILES {
        lines.push_str(&format!(
            "rm -f -- {}\n",
            shell_quote(&format!(".git/{name}"))
        ));
    }
    lines.push_str(
        "if [ -d .git/refs ]; then find .git/refs -type f -name '*.lock' -exec rm -f -- {} +; fi\n",
    );
    if matches!(
        variables.get("GIT_SUBMODULE_STRATEGY"),
        Some("normal" | "recursive")
    ) {
        let names: Vec<String> = STALE_FILES
            .iter()
            .filter_map(|f| f.rsplit('/').next())
            .map(|name| format!("-name {}", shell_quote(name)))
            .collect();
        lines.push_str(&format!(
            "if [ -d .git/modules ]; then find .git/modules -type f \\( {} \\) -exec rm -f -- {{}} +; fi\n",
            names.join(" -o ")
        ));
    }
    lines
}

/// A private directory under the job's temporary directory, removed when the script exits,
/// with the `git init` template and the credentials (`$runnel_git/credentials.config`).
fn scratch(job: &PreparedJob, remote: &RemoteUrl) -> String {
    let tmp = shell_quote(&job.script_dirs.tmp_dir.to_string_lossy());
    let mut lines = format!(
        "mkdir -p -- {tmp}\n\
         runnel_git=$(mktemp -d {tmp}/git-sources.XXXXXX)\n\
         trap 'rm -rf -- \"$runnel_git\"' EXIT\n\
         mkdir \"$runnel_git/template\"\n\
         printf '%s' {} > \"$runnel_git/template/config\"\n\
         (umask 077; : > \"$runnel_git/credentials.config\")\n",
        shell_quote(TEMPLATE_CONFIG)
    );
    if let Some((with, without)) = &remote.instead_of {
        let text = format!(
            "[url \"{}\"]\n\tinsteadOf = \"{}\"\n",
            config_escape(with),
            config_escape(without)
        );
        lines.push_str(&format!(
            "(umask 077; printf '%s' {} > \"$runnel_git/credentials.config\")\n",
            shell_quote(&text)
        ));
    }
    lines
}

/// The GitLab server's TLS files for git (see [`crate::git_tls`]): into the configuration the
/// server commands include with a shared builds directory, else `--global`.
fn tls_config(job: &PreparedJob) -> String {
    let place = if job.variables.get("CI_SHARED_ENVIRONMENT") == Some("true") {
        "-f \"$runnel_git/credentials.config\""
    } else {
        "--global"
    };
    crate::git_tls::settings(&job.variables, &job.payload.git_info.repo_url)
        .into_iter()
        .map(|(variable, key, _)| {
            format!("git config {place} {} \"${variable}\"\n", shell_quote(&key))
        })
        .collect()
}

/// `git init`, `origin` without credentials, then the fetch with them.
fn init_and_fetch(payload: &JobPayload, variables: &JobVariables) -> String {
    let plain = shell_quote(&RemoteUrl::parse(&payload.git_info.repo_url).plain);
    let format = if payload.git_info.repo_object_format == "sha256" {
        " --object-format=sha256"
    } else {
        ""
    };
    let mut lines = format!(
        "git init . --template \"$runnel_git/template\"{format}\n\
         if git remote add origin {plain} >/dev/null 2>&1; then\n\
         echo 'Created fresh repository.'\n\
         else\n\
         git remote set-url origin {plain}\n\
         fi\n"
    );
    // GitLab: `writeRefspecFetchCmd` deepens a shallow repository to full history at depth 0.
    lines.push_str("set --\n");
    if payload.git_info.depth == 0 {
        lines.push_str("if [ -f .git/shallow ]; then set -- --unshallow; fi\n");
    }
    let fetch = git_with_credentials(&fetch_args(payload, variables));
    lines.push_str(fetch.trim_end());
    lines.push_str(" \"$@\"\n");
    lines
}

/// `GIT_SUBMODULE_STRATEGY`.
fn submodules(variables: &JobVariables, depth: u32) -> String {
    match SubmodulePlan::of(variables, depth) {
        SubmodulePlan::Skip => echo("Skipping Git submodules setup"),
        SubmodulePlan::Invalid(error) => format!(
            "echo {} >&2\nexit 1\n",
            shell_quote(&format!("\x1b[31;1mERROR: {error}\x1b[0;m"))
        ),
        SubmodulePlan::Update {
            message,
            sync,
            update,
        } => format!(
            "{}{}{}",
            echo(message),
            git(&sync),
            git_with_credentials(&update)
        ),
    }
}

/// The arguments of `git fetch` after the credentials, without `--unshallow`: the user agent,
/// `origin`, the refspecs, the depth and `GIT_FETCH_EXTRA_FLAGS`.
pub(crate) fn fetch_args(payload: &JobPayload, variables: &JobVariables) -> Vec<String> {
    let git = &payload.git_info;
    let mut fetch: Vec<String> = [
        "-c",
        &format!("http.userAgent={}", user_agent()),
        // The template sets these for a new repository; an older one gets them here.
        "-c",
        "credential.interactive=never",
        "-c",
        "gc.autoDetach=false",
        "fetch",
        "origin",
        "--no-recurse-submodules",
    ]
    .map(str::to_owned)
    .to_vec();
    if git.refspecs.is_empty() {
        fetch.push("+refs/heads/*:refs/remotes/origin/*".into());
        fetch.push("+refs/tags/*:refs/tags/*".into());
    } else {
        fetch.extend(git.refspecs.iter().cloned());
    }
    if git.depth > 0 {
        fetch.push(format!("--depth={}", git.depth));
    }
    match variables.get("GIT_FETCH_EXTRA_FLAGS") {
        Some("none") => {}
        Some(flags) => fetch.extend(flags.split_whitespace().map(str::to_owned)),
        None => fetch.extend(["--prune".to_owned(), "--quiet".to_owned()]),
    }
    fetch
}

/// `Checking out <short sha> as detached HEAD (ref is <ref>)...`.
pub(crate) fn checkout_line(payload: &JobPayload) -> String {
    let git = &payload.git_info;
    let short = git.sha.get(..8).unwrap_or(&git.sha);
    format!(
        "Checking out {short} as detached HEAD (ref is {})...",
        git.ref_name
    )
}

/// `git checkout -f -q <sha>`, then `git clean` with `GIT_CLEAN_FLAGS` unless `none`.
pub(crate) fn checkout_steps(payload: &JobPayload, variables: &JobVariables) -> Vec<Vec<String>> {
    let mut steps: Vec<Vec<String>> = vec![
        [
            "-c",
            "submodule.recurse=false",
            "checkout",
            "-f",
            "-q",
            &payload.git_info.sha,
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let clean_flags = variables.get("GIT_CLEAN_FLAGS").unwrap_or("-ffdx");
    if clean_flags != "none" {
        let mut clean = vec!["clean".to_owned()];
        clean.extend(clean_flags.split_whitespace().map(str::to_owned));
        steps.push(clean);
    }
    steps
}

/// What `GIT_SUBMODULE_STRATEGY` asks for (GitLab: gitlab-runner `shells/abstract.go`
/// `writeSubmoduleUpdateCmd`).
pub(crate) enum SubmodulePlan {
    /// `none` (the default).
    Skip,
    /// `normal` or `recursive`: the message, `git submodule sync` and `git submodule update`
    /// (to run with the credentials' config arguments first).
    Update {
        message: &'static str,
        sync: Vec<String>,
        update: Vec<String>,
    },
    /// Another value: the error, and the job fails.
    Invalid(String),
}

impl SubmodulePlan {
    pub(crate) fn of(variables: &JobVariables, depth: u32) -> Self {
        let recursive = match variables.get("GIT_SUBMODULE_STRATEGY").unwrap_or("none") {
            "" | "none" => return Self::Skip,
            "normal" => false,
            "recursive" => true,
            other => return Self::Invalid(format!("unknown GIT_SUBMODULE_STRATEGY {other:?}")),
        };
        let recurse = |mut args: Vec<String>| {
            if recursive {
                args.push("--recursive".to_owned());
            }
            args
        };
        let sync = recurse(["submodule", "sync"].map(str::to_owned).to_vec());
        let mut update = recurse(
            ["submodule", "update", "--init"]
                .map(str::to_owned)
                .to_vec(),
        );
        let submodule_depth = variables
            .get("GIT_SUBMODULE_DEPTH")
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(depth);
        if submodule_depth > 0 {
            update.push(format!("--depth={submodule_depth}"));
        }
        let message = if recursive {
            "Updating/initializing submodules recursively..."
        } else {
            "Updating/initializing submodules..."
        };
        Self::Update {
            message,
            sync,
            update,
        }
    }
}

/// `runnel <version> <os>/<arch>`, in the shape of gitlab-runner's `http.userAgent`
/// (`gitlab-runner <version> <GOOS>/<GOARCH>`), with Go's architecture names.
pub(crate) fn user_agent() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        other => other,
    };
    format!("runnel {RUNNER_VERSION} {}/{arch}", std::env::consts::OS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{PayloadBuilder, TestProject, prepared_job};

    #[test]
    fn user_agent_has_gitlab_runners_shape() {
        let agent = user_agent();
        let parts: Vec<&str> = agent.split(' ').collect();
        assert_eq!(parts.len(), 3, "{agent}");
        assert_eq!(parts[0], "runnel");
        assert_eq!(parts[1], RUNNER_VERSION);
        assert!(parts[2].contains('/'), "{agent}");
    }

    /// The job of `repo_url` at `sha` with `GIT_STRATEGY` `strategy`, in `project`.
    fn job(project: &TestProject, repo_url: &str, sha: &str, strategy: &str) -> PreparedJob {
        let mut payload = PayloadBuilder::new(7, "job")
            .var("GIT_STRATEGY", strategy)
            .script(&["true"])
            .build();
        payload.git_info.repo_url = repo_url.to_owned();
        payload.git_info.sha = sha.to_owned();
        payload.git_info.ref_name = "main".to_owned();
        prepared_job(payload, &project.context("7"), "ssh")
    }

    /// Runs the `get_sources` script of `job` in bash; its exit code and output.
    fn run(job: &PreparedJob) -> (Option<i32>, String) {
        use std::io::Write as _;
        let (vars, _) = job.variables.exports();
        let strategy = GitStrategy::of(&job.payload, &job.variables);
        let script = wrap(&script_body(job, &Exports { vars }, strategy), false);
        let mut child = std::process::Command::new("bash")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bash runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write the script");
        let out = child.wait_with_output().expect("bash ends");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    #[test]
    fn script_clones_fetches_into_the_same_checkout_and_leaves_it_alone_with_none() {
        let source = TestProject::new();
        source.write("README", "first");
        source.commit_all("first");
        let first = source.git(&["rev-parse", "HEAD"]);
        let url = source.path().to_string_lossy().into_owned();
        let builds = TestProject::new();
        let cloned = job(&builds, &url, &first, "clone");
        let dir = cloned.script_dirs.project_dir.clone();
        let (code, text) = run(&cloned);
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("Created fresh repository."), "{text}");
        assert!(text.contains(&checkout_line(&cloned.payload)), "{text}");
        let head = |dir: &std::path::Path| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(dir)
                .output()
                .expect("git runs");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(head(&dir), first);
        assert!(
            std::fs::read_dir(&cloned.script_dirs.tmp_dir)
                .map(|d| d.count())
                .unwrap_or(0)
                == 0,
            "the scratch directory is removed"
        );

        std::fs::write(dir.join(".git/runnel-mark"), "kept").expect("mark");
        source.write("README", "second");
        source.commit_all("second");
        let second = source.git(&["rev-parse", "HEAD"]);
        let (code, text) = run(&job(&builds, &url, &second, "fetch"));
        assert_eq!(code, Some(0), "{text}");
        assert!(!text.contains("Created fresh repository."), "{text}");
        assert_eq!(head(&dir), second);
        assert!(
            dir.join(".git/runnel-mark").exists(),
            "fetch reuses the checkout"
        );

        std::fs::write(dir.join("untracked"), "x").expect("write");
        let (code, text) = run(&job(&builds, &url, &first, "none"));
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("Skipping Git repository setup"), "{text}");
        assert_eq!(head(&dir), second, "none leaves the checkout as it was");
        assert!(dir.join("untracked").exists());

        let (code, text) = run(&job(&builds, &url, &first, "clone"));
        assert_eq!(code, Some(0), "{text}");
        assert_eq!(head(&dir), first);
        assert!(
            !dir.join(".git/runnel-mark").exists(),
            "clone starts afresh"
        );
    }

    #[test]
    fn the_job_token_is_only_in_the_private_credentials_file() {
        let builds = TestProject::new();
        let job = job(
            &builds,
            "http://gitlab-ci-token:s3cr3t@gitlab.example/acme/app.git",
            "0123456789abcdef0123456789abcdef01234567",
            "fetch",
        );
        let body = script_body(&job, &Exports::default(), GitStrategy::Fetch);
        let with_token: Vec<&str> = body.lines().filter(|l| l.contains("s3cr3t")).collect();
        assert_eq!(with_token.len(), 1, "{body}");
        assert!(
            with_token[0].starts_with("(umask 077; printf '%s' '[url"),
            "{body}"
        );
        assert!(
            body.contains("git remote add origin 'http://gitlab.example/acme/app.git'"),
            "{body}"
        );
    }
}
