//! The daemon uploading `artifacts:reports` (junit, dotenv) to the fake GitLab: one gzip file per
//! report with its `artifact_type`, `artifact_format` and `expire_in` in the query string.

mod daemon_shell_support;

use std::collections::BTreeMap;

use daemon_shell_support::start_shell_daemon;
use runnel_runner::test_support::{FakeGitLab, FakeJobState, JobSpec};

const JUNIT: &str = r#"<testsuites><testsuite name="unit" tests="2" failures="0"><testcase classname="math" name="adds"/><testcase classname="math" name="subtracts"/></testsuite></testsuites>"#;

fn report_job() -> JobSpec {
    JobSpec {
        reports: vec![
            ("junit".into(), vec!["report.xml".into()]),
            ("dotenv".into(), vec!["build.env".into()]),
        ],
        ..JobSpec::script(&[
            &format!("echo '{JUNIT}' > report.xml"),
            "printf 'VERSION=1.2.3\\nCOLOR=blue\\n' > build.env",
        ])
    }
}

fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_and_dotenv_reports_are_uploaded_as_one_gzip_file_each() {
    let fake = FakeGitLab::start().await;
    let token = fake.create_runner();
    let id = fake.add_job(report_job());
    let daemon = start_shell_daemon(&fake, &token, "check_interval = 1", "");
    let job = fake.wait_for_final(id).await;
    daemon.stop().await;
    let trace = fake.trace_text(id);
    assert_eq!(job.state, FakeJobState::Success, "{trace}");
    let uploads: Vec<(&BTreeMap<String, String>, &str)> = job
        .artifacts
        .iter()
        .map(|(q, name, _)| (q, name.as_str()))
        .collect();
    assert_eq!(
        uploads,
        vec![
            (
                &query(&[
                    ("artifact_format", "gzip"),
                    ("artifact_type", "junit"),
                    ("expire_in", "1 week"),
                ]),
                "junit.xml.gz"
            ),
            (
                &query(&[
                    ("artifact_format", "gzip"),
                    ("artifact_type", "dotenv"),
                    ("expire_in", "1 week"),
                ]),
                ".env.gz"
            ),
        ]
    );
    assert_eq!(job.report_text("junit"), Some(format!("{JUNIT}\n")));
    assert_eq!(
        job.report_text("dotenv").as_deref(),
        Some("VERSION=1.2.3\nCOLOR=blue\n")
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_report_uploads_keep_the_whole_query_string() {
    let fake = FakeGitLab::start().await;
    fake.redirect_uploads();
    let token = fake.create_runner();
    let id = fake.add_job(report_job());
    let daemon = start_shell_daemon(&fake, &token, "check_interval = 1", "");
    let job = fake.wait_for_final(id).await;
    daemon.stop().await;
    assert_eq!(job.state, FakeJobState::Success);
    let queries: Vec<&BTreeMap<String, String>> = job.artifacts.iter().map(|(q, _, _)| q).collect();
    assert_eq!(
        queries,
        vec![
            &query(&[
                ("artifact_format", "gzip"),
                ("artifact_type", "junit"),
                ("expire_in", "1 week"),
                ("redirected", "1"),
            ]),
            &query(&[
                ("artifact_format", "gzip"),
                ("artifact_type", "dotenv"),
                ("expire_in", "1 week"),
                ("redirected", "1"),
            ]),
        ]
    );
    assert_eq!(
        job.report_text("dotenv").as_deref(),
        Some("VERSION=1.2.3\nCOLOR=blue\n")
    );
}
