//! Artifacts, reports, dependency downloads and caches.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use runnel_api::{CachePolicy, When};
use runnel_exec::test_support::{PayloadBuilder, TestProject};
use runnel_exec::{JobStatus, LocalArtifactStore};
use zip::write::SimpleFileOptions;

use crate::{executors, project_dir, run};

fn zip_names(path: &Path) -> BTreeSet<String> {
    let file = std::fs::File::open(path).expect("the archive exists");
    let mut zip = zip::ZipArchive::new(file).expect("a zip archive");
    (0..zip.len())
        .map(|i| {
            zip.by_index(i)
                .expect("an entry")
                .name()
                .expect("a name")
                .into_owned()
        })
        .collect()
}

#[tokio::test]
async fn artifacts_zip_honours_globs_exclude_and_untracked() {
    for (name, make) in executors() {
        let project = TestProject::new();
        project.write("src/main.txt", "tracked");
        project.commit_all("initial");
        let payload = PayloadBuilder::new(30, "build")
            .script(&[
                "mkdir -p dist/sub logs",
                "echo a > dist/a.js; echo m > dist/a.js.map; echo b > dist/sub/b.js",
                "echo l > logs/build.log; echo r > report.txt",
            ])
            .artifacts(
                &["dist/", "**/*.log", "missing/"],
                &["dist/**/*.map"],
                true,
                When::OnSuccess,
            )
            .build();
        let ran = run(make, &project, payload).await;
        ran.assert_status(JobStatus::Success, name);
        let stored = ran
            .outcome
            .artifacts
            .clone()
            .expect("artifacts were stored");
        assert_eq!(
            stored,
            LocalArtifactStore::new(project.path().join(".runnel/artifacts")).archive_path(1, 30)
        );
        let names = zip_names(&stored);
        for expected in [
            "dist/",
            "dist/a.js",
            "dist/sub/b.js",
            "logs/build.log",
            "report.txt",
        ] {
            assert!(
                names.contains(expected),
                "{name}: {expected} missing from {names:?}"
            );
        }
        assert!(
            !names.contains("dist/a.js.map"),
            "{name}: excluded file archived"
        );
        assert!(
            !names.contains("src/main.txt"),
            "{name}: copied source counted as untracked"
        );
        assert!(
            ran.output.contains(
                "WARNING: missing/: no matching files. Ensure that the artifact path is relative to the working directory"
            ),
            "{name}: {}",
            ran.output
        );
        assert!(
            ran.output
                .contains("dist/: found 5 matching artifact files and directories"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn artifact_paths_outside_the_project_are_refused() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(31, "escape")
            .script(&["true"])
            .artifacts(&["../x"], &[], false, When::OnSuccess)
            .build();
        let ran = run(make, &project, payload).await;
        assert_eq!(ran.outcome.status, JobStatus::Failed, "{name}");
        assert!(
            ran.output
                .contains("path `../x` is outside the project directory"),
            "{name}: {}",
            ran.output
        );
    }
}

#[tokio::test]
async fn artifacts_on_failure_are_uploaded_only_for_failed_jobs() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(32, "onfail")
            .script(&["echo x > fail.log", "exit 2"])
            .artifacts(&["fail.log"], &[], false, When::OnFailure)
            .build();
        let ran = run(make, &project, payload).await;
        assert!(
            ran.trace.contains(":upload_artifacts_on_failure\r"),
            "{name}"
        );
        assert!(
            zip_names(&ran.outcome.artifacts.expect("stored")).contains("fail.log"),
            "{name}"
        );
    }
}

fn write_dependency_archive(project: &TestProject, job_id: u64, entries: &[(&str, Option<&str>)]) {
    let path =
        LocalArtifactStore::new(project.path().join(".runnel/artifacts")).archive_path(1, job_id);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
    for (entry, symlink_target) in entries {
        match symlink_target {
            Some(target) => zip
                .add_symlink(*entry, *target, SimpleFileOptions::default())
                .expect("symlink"),
            None => {
                zip.start_file(*entry, SimpleFileOptions::default())
                    .expect("file");
                zip.write_all(b"payload").expect("write");
            }
        }
    }
    zip.finish().expect("finish");
}

#[tokio::test]
async fn dependency_artifacts_are_extracted() {
    for (name, make) in executors() {
        let project = TestProject::new();
        write_dependency_archive(
            &project,
            40,
            &[
                ("dist/app.bin", None),
                ("dist/link", Some("app.bin")),
                // Recreated as stored, as gitlab-runner does: a venv's interpreter link.
                ("dist/python3", Some("/usr/bin/python3")),
            ],
        );
        let payload = PayloadBuilder::new(41, "deploy")
            .dependency(40, "build")
            .script(&[
                "cat dist/link",
                "echo \"python3 -> $(readlink dist/python3)\"",
            ])
            .build();
        let ran = run(make, &project, payload).await;
        ran.assert_status(JobStatus::Success, name);
        assert!(ran.output.contains("\npayload"), "{name}: {}", ran.output);
        assert!(
            ran.output.contains("python3 -> /usr/bin/python3"),
            "{name}: {}",
            ran.output
        );
    }
}

#[tokio::test]
async fn hostile_archives_are_refused_and_nothing_is_written() {
    let cases: [&[(&str, Option<&str>)]; 3] = [
        &[("good.txt", None), ("../evil.txt", None)],
        &[
            ("good.txt", None),
            ("link", Some("/tmp")),
            ("link/evil.txt", None),
        ],
        &[("good.txt", None), ("link", Some("sub")), ("link/x", None)],
    ];
    for (name, make) in executors() {
        for (index, case) in cases.iter().enumerate() {
            let project = TestProject::new();
            write_dependency_archive(&project, 50, case);
            let payload = PayloadBuilder::new(51, "deploy")
                .dependency(50, "build")
                .script(&["echo ran"])
                .build();
            let ran = run(make, &project, payload).await;
            assert_eq!(ran.outcome.status, JobStatus::Failed, "{name} case {index}");
            assert!(
                ran.output.contains("refusing to extract"),
                "{name} case {index}: {}",
                ran.output
            );
            assert!(!ran.output.contains("\nran"), "{name} case {index}");
            assert!(
                !project_dir(&project).join("good.txt").exists(),
                "{name} case {index}: half-written"
            );
            assert!(
                !project.path().join(".runnel/builds/acme/evil.txt").exists(),
                "{name} case {index}"
            );
            assert!(
                !std::path::Path::new("/tmp/evil.txt").exists(),
                "{name} case {index}"
            );
        }
    }
}

#[tokio::test]
async fn cache_is_saved_and_restored_across_runs() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let first = PayloadBuilder::new(60, "fill")
            .var("CI_JOB_STAGE", "test")
            .script(&["mkdir -p vendor", "echo cached-content > vendor/lib.txt"])
            .cache(
                "deps-$CI_JOB_STAGE",
                &["vendor/"],
                CachePolicy::PullPush,
                When::OnSuccess,
            )
            .build();
        let ran = run(make, &project, first).await;
        ran.assert_status(JobStatus::Success, name);
        ran.assert_output_contains("Created cache", name);
        assert!(
            project
                .path()
                .join(".runnel/cache/deps-test/cache.zip")
                .is_file(),
            "{name}"
        );
        let second = PayloadBuilder::new(61, "use")
            .var("CI_JOB_STAGE", "test")
            .script(&["cat vendor/lib.txt"])
            .cache(
                "deps-$CI_JOB_STAGE",
                &["vendor/"],
                CachePolicy::Pull,
                When::OnSuccess,
            )
            .build();
        let ran = run(make, &project, second).await;
        ran.assert_status(JobStatus::Success, name);
        assert!(
            ran.output.contains("Successfully extracted cache"),
            "{name}"
        );
        ran.assert_output_contains("\ncached-content", name);
        assert!(
            !ran.trace.contains("archive_cache"),
            "{name}: a pull cache is not saved"
        );
    }
}

#[tokio::test]
async fn missing_cache_is_a_warning() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(62, "cold")
            .script(&["true"])
            .cache("nothing", &["vendor/"], CachePolicy::Pull, When::OnSuccess)
            .build();
        let ran = run(make, &project, payload).await;
        assert_eq!(ran.outcome.status, JobStatus::Success, "{name}");
        assert!(ran.output.contains("Failed to extract cache"), "{name}");
    }
}

#[tokio::test]
async fn dotenv_junit_and_coverage_reports_are_read() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(70, "reports")
            .script(&[
                "echo 'BUILD_VERSION=1.2.3' > build.env; echo 'URL = http://x?a=b' >> build.env",
                "echo '<testsuite><testcase name=\"a\"/><testcase name=\"b\"><failure/></testcase></testsuite>' > junit.xml",
                "echo '<coverage line-rate=\"0.5\"></coverage>' > coverage.xml",
            ])
            .report("dotenv", &["build.env"])
            .report("junit", &["*.xml"])
            .report("cobertura", &["coverage.xml"])
            .build();
        let ran = run(make, &project, payload).await;
        ran.assert_status(JobStatus::Success, name);
        assert_eq!(
            ran.outcome.dotenv,
            [
                ("BUILD_VERSION".to_owned(), "1.2.3".to_owned()),
                ("URL".to_owned(), "http://x?a=b".to_owned())
            ],
            "{name}"
        );
        let junit = ran.outcome.junit.expect("junit summary");
        assert_eq!((junit.total, junit.failed), (2, 1), "{name}");
        assert_eq!(ran.outcome.coverage_report, Some(50.0), "{name}");
        let dir = project.path().join(".runnel/artifacts/1/70");
        let gz = std::fs::File::open(dir.join("junit.gz")).expect("the junit report is stored");
        let mut xml = String::new();
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(gz), &mut xml)
            .expect("gzip");
        assert!(
            xml.contains("<testcase name=\"b\"><failure/>"),
            "{name}: {xml}"
        );
        assert!(
            dir.join("dotenv.gz").is_file() && dir.join("cobertura.gz").is_file(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn invalid_dotenv_fails_the_job() {
    for (name, make) in executors() {
        let project = TestProject::new();
        let payload = PayloadBuilder::new(71, "bad-dotenv")
            .script(&["printf 'A=1\\n\\nB=2\\n' > build.env"])
            .report("dotenv", &["build.env"])
            .build();
        let ran = run(make, &project, payload).await;
        assert_eq!(ran.outcome.status, JobStatus::Failed, "{name}");
        ran.assert_output_contains("invalid format on line 2", name);
    }
}

#[tokio::test]
async fn cache_when_on_failure_is_saved_only_for_failed_jobs() {
    let job = |id, name, script: &[&str]| {
        PayloadBuilder::new(id, name)
            .script(script)
            .cache(
                "failures",
                &["out/"],
                CachePolicy::PullPush,
                When::OnFailure,
            )
            .build()
    };
    for (name, make) in executors() {
        let project = TestProject::new();
        let cache = project.path().join(".runnel/cache/failures/cache.zip");
        let ok = job(63, "ok", &["mkdir -p out", "echo x > out/a"]);
        let ran = run(make, &project, ok).await;
        assert!(
            !ran.trace.contains("archive_cache") && !cache.exists(),
            "{name}: saved for a successful job"
        );
        let failed = job(64, "failed", &["mkdir -p out", "echo x > out/a", "exit 1"]);
        let ran = run(make, &project, failed).await;
        assert!(
            ran.trace.contains(":archive_cache_on_failure\r"),
            "{name}: {}",
            ran.trace
        );
        assert!(cache.is_file(), "{name}");
    }
}
