//! Pins `JobPayload` to GitLab's JSON with captured-shape payloads (GitLab 19.4 / gitlab-runner
//! 19.4.0, from `shared/reference/runner-protocol.md` §2.5).

use runnel_api::{
    CachePolicy, FailureReason, JobId, JobPayload, JobState, RefType, UpdateJobRequest, When,
};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
}

#[test]
fn payload_round_trips_exactly() {
    let text = fixture("job_payload_gitlab_19.4.json");
    let original: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let payload: JobPayload = serde_json::from_str(&text).expect("fixture is a payload");
    let written = serde_json::to_value(&payload).expect("payload serializes");
    assert_eq!(written, original);
}

#[test]
fn payload_fields_are_read() {
    let payload: JobPayload =
        serde_json::from_str(&fixture("job_payload_gitlab_19.4.json")).expect("payload");
    assert_eq!(payload.id, JobId(8_123_456));
    assert_eq!(payload.token.expose(), "glcbt-64_xYzAbC123dEf456gHi");
    assert_eq!(payload.git_info.ref_type, RefType::Branch);
    assert_eq!(payload.variable("GIT_DEPTH"), Some("20"));
    assert!(
        payload
            .variables
            .iter()
            .any(|v| v.key == "DEPLOY_KEY" && v.file)
    );
    assert_eq!(
        payload.step("after_script").map(|s| &s.when),
        Some(&When::Always)
    );
    assert_eq!(payload.cache[0].policy, CachePolicy::PullPush);
    assert_eq!(payload.services[0].aliases(), ["db"]);
    assert!(
        payload
            .features
            .failure_reasons
            .contains(&FailureReason::ImagePullFailure)
    );
    let opts = payload
        .image
        .as_ref()
        .and_then(|i| i.executor_opts.as_ref())
        .expect("opts");
    assert_eq!(
        opts.docker.as_ref().and_then(|d| d.user.as_deref()),
        Some("1000")
    );
}

#[test]
fn nulls_and_unknown_keys_are_read_leniently() {
    let payload: JobPayload =
        serde_json::from_str(&fixture("job_payload_nulls_gitlab_19.4.json")).expect("payload");
    assert!(payload.services.is_empty() && payload.artifacts.is_empty());
    assert!(payload.credentials.is_empty() && payload.git_info.refspecs.is_empty());
    assert_eq!(payload.variables[0].value, "");
    assert_eq!(payload.git_info.ref_type, RefType::Tag);
    assert_eq!(payload.git_info.protected, None);
    assert_eq!(payload.steps[0].when, When::OnSuccess);
    assert_eq!(payload.cache[0].policy, CachePolicy::PullPush);
    assert!(payload.dependencies[0].artifacts_file.is_none());
    let image = payload.image.as_ref().expect("image");
    assert!(image.entrypoint.is_empty());
    let opts = image.executor_opts.as_ref().expect("executor_opts");
    assert_eq!(
        opts.docker.as_ref().and_then(|d| d.user.as_deref()),
        Some("1000")
    );
    assert!(
        opts.other.contains_key("podman"),
        "unknown executor_opts keys are kept"
    );
}

#[test]
fn update_job_request_omits_empty_fields() {
    let update = UpdateJobRequest {
        token: runnel_api::JobToken::new("glcbt-x"),
        state: JobState::Failed,
        failure_reason: Some(FailureReason::ScriptFailure),
        exit_code: Some(2),
        checksum: None,
        output: Some(runnel_api::JobTraceOutput {
            checksum: "crc32:0badf00d".into(),
            bytesize: 12,
        }),
        info: None,
    };
    let json = serde_json::to_value(&update).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "token": "glcbt-x", "state": "failed", "failure_reason": "script_failure",
            "exit_code": 2, "output": {"checksum": "crc32:0badf00d", "bytesize": 12}
        })
    );
}
