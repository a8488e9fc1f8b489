//! A coordinator's view of runnel-local: create a pipeline with a child pipeline, a `needs`
//! chain and a manual job, and advance it by hand (no executor, no CLI), as `runnel serve`
//! would when runners report jobs.

use runnel_local::{Change, JobEnd, JobResult, LocalPipeline, PipelineOptions, Selection};

const PIPELINE: &str = "\
stages: [build, test, deploy]
build:
  stage: build
  script: echo build
test:
  stage: test
  needs: [build]
  script: echo test $BUILD_ID
child:
  stage: test
  trigger:
    include: child.yml
    strategy: depend
deploy:
  stage: deploy
  when: manual
  script: echo deploy
";

const CHILD: &str = "\
inner:
  script: echo inner
";

fn create(dir: &std::path::Path, selection: &Selection) -> LocalPipeline {
    std::fs::write(dir.join(".gitlab-ci.yml"), PIPELINE).expect("write pipeline");
    std::fs::write(dir.join("child.yml"), CHILD).expect("write child pipeline");
    let options = PipelineOptions {
        project_dir: dir.to_owned(),
        state_dir: dir.join(".runnel"),
        file: ".gitlab-ci.yml".into(),
        ..PipelineOptions::default()
    };
    let loaded = runnel_local::load(options).expect("the pipeline loads");
    loaded.create(selection).expect("the pipeline is created")
}

fn success(dotenv: &[(&str, &str)]) -> JobEnd {
    JobEnd {
        result: JobResult::Success,
        exit_code: Some(0),
        dotenv: dotenv
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        has_artifacts: false,
        artifacts: Vec::new(),
        junit: None,
    }
}

/// Advances until nothing is ready, running every ready job at once with `end`; the log of
/// what happened, one line per change.
fn drive(pipeline: &mut LocalPipeline, end: impl Fn(&str) -> JobEnd) -> Vec<String> {
    let names: Vec<String> = pipeline.records().into_iter().map(|r| r.name).collect();
    let mut log = Vec::new();
    loop {
        let mut ready = Vec::new();
        for change in pipeline.advance() {
            match change {
                Change::Ready(i) => ready.push(i),
                Change::Status(i) => {
                    log.push(format!("{}: {}", names[i], pipeline.report_status(i)));
                }
                Change::Delayed(i, _) => log.push(format!("{}: delayed", names[i])),
                Change::BridgeStarted { job, note } => {
                    log.push(format!("{}: bridge started {note:?}", names[job]));
                }
                Change::BridgeFinished(i) => {
                    log.push(format!(
                        "{}: bridge {}",
                        names[i],
                        pipeline.report_status(i)
                    ));
                }
            }
        }
        if ready.is_empty() {
            return log;
        }
        for i in ready {
            let (payload, attempt) = pipeline.start(i);
            let variable = |key: &str| {
                payload
                    .variables
                    .iter()
                    .find(|v| v.key == key)
                    .map(|v| v.value.clone())
            };
            log.push(format!(
                "{}: runs (attempt {attempt}, CI_JOB_NAME={}, BUILD_ID={:?})",
                names[i],
                variable("CI_JOB_NAME").unwrap_or_default(),
                variable("BUILD_ID"),
            ));
            pipeline.finish(i, &end(&names[i]));
        }
    }
}

#[test]
fn a_coordinator_advances_a_pipeline_with_its_child_pipeline_step_by_step() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut pipeline = create(dir.path(), &Selection::default());
    let log = drive(&mut pipeline, |name| {
        if name == "build" {
            success(&[("BUILD_ID", "42")])
        } else {
            success(&[])
        }
    });
    insta::assert_snapshot!(log.join("\n"));
    assert_eq!(pipeline.status().as_str(), "success");
    let blocking: Vec<usize> = pipeline.blocking_manual();
    assert!(
        blocking.is_empty(),
        "a manual job allowed to fail blocks nothing"
    );
}

#[test]
fn a_failed_child_job_fails_the_depend_trigger_and_manual_plays_are_taken() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let selection = Selection {
        manual: vec!["deploy".to_owned()],
        ..Selection::default()
    };
    let mut pipeline = create(dir.path(), &selection);
    let log = drive(&mut pipeline, |name| {
        if name.ends_with("inner") {
            JobEnd {
                result: JobResult::Failed {
                    failure_reason: "script_failure".to_owned(),
                    exit_code: Some(1),
                },
                exit_code: Some(1),
                ..success(&[])
            }
        } else {
            success(&[])
        }
    });
    insta::assert_snapshot!(log.join("\n"));
    assert_eq!(pipeline.status().as_str(), "failed");
}
