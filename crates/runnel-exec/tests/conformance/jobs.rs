//! Scripts, exit codes, after_script, variables, masking and sections.

use runnel_api::{FailureReason, When};
use runnel_exec::test_support::{PayloadBuilder, TestProject};
use runnel_exec::{JobEvent, JobStatus};

use crate::{executors, run};

#[tokio::test]
async fn successful_job_echoes_commands_and_succeeds() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(1, "ok")
            .script(&["echo hello", "echo world"])
            .build();
        let ran = run(make, &project, payload).await;
        ran.assert_status(JobStatus::Success, name);
        assert!(
            ran.output
                .contains("\x1b[32;1m$ echo hello\x1b[0;m\nhello\n"),
            "{name}: {}",
            ran.output
        );
        assert!(ran.trace.contains("Job succeeded"), "{name}");
        assert!(
            matches!(ran.events.last(), Some(JobEvent::Finished { .. })),
            "{name}"
        );
    }
}

#[tokio::test]
async fn exit_code_is_reported_as_script_failure() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(2, "fail").script(&["exit 3"]).build();
        let ran = run(make, &project, payload).await;
        assert_eq!(ran.outcome.status, JobStatus::Failed, "{name}");
        assert_eq!(
            ran.outcome.failure_reason,
            Some(FailureReason::ScriptFailure),
            "{name}"
        );
        assert_eq!(ran.outcome.exit_code, Some(3), "{name}");
        assert!(
            ran.trace.contains("ERROR: Job failed: exit status 3"),
            "{name}: {}",
            ran.trace
        );
    }
}

#[tokio::test]
async fn script_stops_at_the_first_failing_command() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(3, "stop")
            .script(&["echo one", "false", "echo two"])
            .build();
        let ran = run(make, &project, payload).await;
        assert_eq!(ran.outcome.exit_code, Some(1), "{name}");
        assert!(ran.output.contains("one"), "{name}");
        assert!(!ran.output.contains("two"), "{name}: {}", ran.output);
    }
}

#[tokio::test]
async fn pipelines_fail_when_any_command_fails() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(4, "pipefail")
            .script(&["false | cat", "echo after"])
            .build();
        let ran = run(make, &project, payload).await;
        assert_eq!(ran.outcome.status, JobStatus::Failed, "{name}");
        assert!(!ran.output.contains("\nafter"), "{name}");
    }
}

#[tokio::test]
async fn after_script_runs_after_a_failure_with_the_job_status() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(5, "after")
            .script(&["echo \"FROM_ENV=kept\" >> \"$GITLAB_ENV\"", "exit 1"])
            .after_script(&["echo status=$CI_JOB_STATUS env=$FROM_ENV", "exit 7"])
            .build();
        let ran = run(make, &project, payload).await;
        assert_eq!(
            ran.outcome.exit_code,
            Some(1),
            "{name}: after_script does not change the result"
        );
        ran.assert_output_contains("status=failed env=kept", name);
        assert!(
            ran.output
                .contains("after_script failed, but job will continue unaffected"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn after_script_sees_success() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(6, "after-ok")
            .script(&["true"])
            .after_script(&["echo status=$CI_JOB_STATUS"])
            .build();
        let ran = run(make, &project, payload).await;
        ran.assert_output_contains("status=success", name);
    }
}

#[tokio::test]
async fn multi_line_commands_are_echoed_collapsed_and_run_whole() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(7, "multi")
            .script(&["if true; then\n  echo inside\nfi"])
            .build();
        let ran = run(make, &project, payload).await;
        assert!(
            ran.output
                .contains("$ if true; then # collapsed multi-line command"),
            "{name}: {}",
            ran.output
        );
        assert!(ran.output.contains("\ninside"), "{name}");
    }
}

#[tokio::test]
async fn variables_are_expanded_and_file_variables_are_paths() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(8, "vars")
            .var("BASE", "x")
            .var("DERIVED", "$BASE-y ${BASE} $$BASE")
            .var("QUOTED", "it's \"quoted\"")
            .file_var("CONFIG_FILE", "file-content")
            .script(&[
                "echo derived=$DERIVED",
                "echo \"quoted=$QUOTED\"",
                "echo config=$(cat \"$CONFIG_FILE\")",
                "echo dir=$CI_PROJECT_DIR pwd=$(pwd)",
            ])
            .build();
        let ran = run(make, &project, payload).await;
        ran.assert_output_contains("derived=x-y x $BASE", name);
        assert!(ran.output.contains("quoted=it's \"quoted\""), "{name}");
        assert!(ran.output.contains("config=file-content"), "{name}");
        let dir = crate::script_project_dir(&project);
        assert!(
            ran.output
                .contains(&format!("dir={0} pwd={0}", dir.display())),
            "{name}: {}",
            ran.output
        );
        assert!(
            !dir.with_file_name("app.tmp").exists(),
            "{name}: file variables are cleaned up"
        );
    }
}

#[tokio::test]
async fn masked_values_are_hidden_even_across_chunks() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(9, "mask")
            .masked_var("SECRET", "s3cr3t-v@lue")
            .script(&[
                "printf 's3cr3t'; sleep 0.2; printf -- '-v@lue\\n'",
                "echo \"$SECRET\" url=s3cr3t-v%40lue",
                "echo glpat-abcdefgh123",
            ])
            .build();
        let ran = run(make, &project, payload).await;
        assert!(!ran.trace.contains("s3cr3t-v"), "{name}: {}", ran.trace);
        assert!(ran.output.contains("[MASKED]\n"), "{name}");
        ran.assert_output_contains("[MASKED] url=[MASKED]", name);
        assert!(ran.output.contains("glpat-[MASKED]"), "{name}");
    }
}

#[tokio::test]
async fn sections_are_present_ordered_and_closed() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(10, "sections")
            .script(&["echo built > out.txt"])
            .after_script(&["true"])
            .artifacts(&["out.txt"], &[], false, When::OnSuccess)
            .build();
        let ran = run(make, &project, payload).await;
        let starts: Vec<&str> = ran
            .trace
            .split("section_start:")
            .skip(1)
            .filter_map(|rest| rest.split('\r').next()?.split(':').nth(1))
            .collect();
        assert_eq!(
            starts,
            [
                "prepare_executor",
                "prepare_script",
                "get_sources",
                "step_script",
                "after_script",
                "upload_artifacts_on_success",
                "cleanup_file_variables"
            ],
            "{name}"
        );
        assert_eq!(
            ran.trace.matches("section_end:").count(),
            starts.len(),
            "{name}"
        );
        assert!(
            ran.trace
                .contains("Executing \"step_script\" stage of the job script"),
            "{name}"
        );
        let ends = ran
            .events
            .iter()
            .filter(|e| matches!(e, JobEvent::SectionEnd { .. }))
            .count();
        assert_eq!(ends, starts.len(), "{name}");
    }
}

#[tokio::test]
async fn working_tree_copy_includes_uncommitted_files_but_not_ignored_ones() {
    for (name, make) in executors() {
        let project = TestProject::new();
        project.write(".gitignore", "ignored.txt\n");
        project.write("edited.txt", "uncommitted edit");
        project.write("ignored.txt", "ignored");
        let payload = PayloadBuilder::new(11, "tree")
            .script(&[
                "cat edited.txt",
                "test ! -e ignored.txt",
                "echo leftover > leftover.txt",
            ])
            .build();
        let ran = run(make, &project, payload.clone()).await;
        ran.assert_status(JobStatus::Success, name);
        assert!(ran.output.contains("uncommitted edit"), "{name}");
        let ran = run(make, &project, payload).await;
        ran.assert_status(JobStatus::Success, name);
        assert!(
            !crate::project_dir(&project).join("ignored.txt").exists(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn get_sources_hooks_run_around_the_sources() {
    for (name, make) in executors() {
        let project = TestProject::new();
        project.write("src.txt", "source");
        let payload = PayloadBuilder::new(12, "hooks")
            .hook("pre_get_sources_script", &["echo pre-hook"])
            .hook(
                "post_get_sources_script",
                &["echo post-hook sees $(cat src.txt)"],
            )
            .script(&["true"])
            .build();
        let ran = run(make, &project, payload).await;
        ran.assert_status(JobStatus::Success, name);
        let pre = ran.output.find("\npre-hook").expect("pre hook output");
        let post = ran
            .output
            .find("\npost-hook sees source")
            .expect("post hook output");
        assert!(pre < post, "{name}");
    }
}

#[tokio::test]
async fn failing_hook_fails_the_job_before_the_script() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(13, "hook-fail")
            .hook("pre_get_sources_script", &["exit 4"])
            .script(&["echo script-ran"])
            .build();
        let ran = run(make, &project, payload).await;
        assert_eq!(ran.outcome.exit_code, Some(4), "{name}");
        assert!(!ran.output.contains("\nscript-ran"), "{name}");
    }
}

#[tokio::test]
async fn output_limit_truncates_the_trace_but_the_job_continues() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(14, "limit")
            .script(&[
                "head -c 200000 /dev/zero | tr '\\0' 'x'",
                "echo still-running > marker.txt",
            ])
            .build();
        let mut ctx = project.context("14");
        ctx.output_limit = 10_000;
        let ran = crate::run_with(make, payload, ctx).await;
        assert_eq!(ran.outcome.status, JobStatus::Success, "{name}");
        assert!(
            ran.trace
                .contains("Job's log exceeded limit of 10000 bytes."),
            "{name}"
        );
        assert!(ran.trace.len() < 11_000, "{name}: {}", ran.trace.len());
        assert!(
            crate::project_dir(&project).join("marker.txt").exists(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn working_tree_copy_is_a_git_repository_at_the_users_head() {
    for (name, make) in executors() {
        let project = TestProject::new();
        project.write("tracked.txt", "committed");
        project.commit_all("first");
        project.git(&["tag", "v1.2.0"]);
        let head = project.git(&["rev-parse", "HEAD"]);
        project.write("tracked.txt", "edited");
        let payload = PayloadBuilder::new(15, "git")
            .script(&[
                "echo head=$(git rev-parse HEAD)",
                "git describe --tags",
                "git status --porcelain",
            ])
            .build();
        let ran = run(make, &project, payload.clone()).await;
        ran.assert_status(JobStatus::Success, name);
        ran.assert_output_contains(&format!("head={head}"), name);
        assert!(ran.output.contains("\nv1.2.0"), "{name}: {}", ran.output);
        ran.assert_output_contains("\n M tracked.txt", name);
        let ran = run(make, &project, payload).await;
        assert!(
            ran.output.contains(&format!("head={head}")),
            "{name}: the second job reuses the .git"
        );
    }
}
