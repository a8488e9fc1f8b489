//! A fake of GitLab's runner API for tests (nothing real can run here: GitLab itself).
//!
//! It checks every request as GitLab would (paths, headers, JSON bodies, tokens, `system_id`,
//! `Content-Range` arithmetic, the final checksum) and answers as GitLab does, including its
//! errors (403 for bad tokens, 416 with `Range` for a wrong trace offset, `Job-Status` headers).
//! Every deviation from the protocol is recorded in [`FakeGitLab::violations`], which tests
//! assert to be empty. GitLab sources: `lib/api/ci/runner.rb`, `lib/api/ci/helpers/runner.rb`,
//! `app/services/ci/append_build_trace_service.rb`, `app/services/ci/update_build_state_service.rb`.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, patch, post, put};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::git_http;
use super::proxy::Proxy;

/// The path of the project repository the fake serves (the project is `acme/app`).
const REPO_PATH: &str = "/acme/app.git";

/// A job's state in the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeJobState {
    /// Waiting for a runner.
    Pending,
    /// Assigned and running.
    Running,
    /// User cancel with `cancel_gracefully`: after_script may still run.
    Canceling,
    /// Canceled.
    Canceled,
    /// Succeeded.
    Success,
    /// Failed.
    Failed,
}

impl FakeJobState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Canceling => "canceling",
            Self::Canceled => "canceled",
            Self::Success => "success",
            Self::Failed => "failed",
        }
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Canceled | Self::Success | Self::Failed)
    }
}

/// One job in the fake.
#[derive(Debug, Clone)]
pub struct FakeJob {
    /// The payload sent to the runner.
    pub payload: Value,
    /// The state.
    pub state: FakeJobState,
    /// The trace as received.
    pub trace: Vec<u8>,
    /// How many times the job was handed to a runner.
    pub assignments: usize,
    /// The final `PUT` body.
    pub final_update: Option<Value>,
    /// Uploaded artifacts: (query string pairs, file name, bytes).
    pub artifacts: Vec<(BTreeMap<String, String>, String, Vec<u8>)>,
    /// The `session` of the job request the job was handed out on.
    pub session: Option<Value>,
    token: String,
    git_token_rejected: bool,
}

impl FakeJob {
    /// The decompressed content of the uploaded artifact of `artifact_type` (a `gzip` report:
    /// its members concatenated); `None` without such an upload or when it is not gzip.
    pub fn report_text(&self, artifact_type: &str) -> Option<String> {
        let (_, _, data) = self
            .artifacts
            .iter()
            .find(|(q, _, _)| q.get("artifact_type").map(String::as_str) == Some(artifact_type))?;
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(data.as_slice())
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }
}

/// One request for the served git repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRequest {
    /// The path below the repository (`info/refs`, `git-upload-pack`).
    pub path: String,
    /// The job whose token the basic auth credentials carried; `None` without credentials or
    /// with a token of no job.
    pub job: Option<u64>,
    /// Whether the credentials were accepted (else the answer was 401).
    pub authorized: bool,
}

/// Job requests of one runner token as the fake saw them.
#[derive(Debug, Default)]
struct RequestLoad {
    in_flight: usize,
    peak: usize,
    /// When each request answered "no job" (204) arrived.
    empty_arrivals: Vec<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    registration_tokens: Vec<String>,
    runners: HashMap<String, u64>,
    managers: Vec<(String, String)>,
    next_id: u64,
    jobs: BTreeMap<u64, FakeJob>,
    queue_version: u64,
    violations: Vec<String>,
    requests: Vec<String>,
    trace_interval: u64,
    redirect_uploads: bool,
    pending_final_answers: u32,
    /// Per runner token: (job requests, requests carrying `last_update`).
    last_updates: HashMap<String, (usize, usize)>,
    rotated_tokens: Vec<(String, String)>,
    git_repo: Option<PathBuf>,
    git_requests: Vec<GitRequest>,
    /// How long a job request without a job is held open (Workhorse long polling).
    long_poll: Duration,
    load: HashMap<String, RequestLoad>,
}

/// The shared state of the fake.
#[derive(Debug, Clone, Default)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The fake GitLab, listening on 127.0.0.1 behind a proxy that can be taken down.
#[derive(Debug)]
pub struct FakeGitLab {
    shared: Shared,
    proxy: Proxy,
}

impl FakeGitLab {
    /// Starts the fake on a free port.
    pub async fn start() -> Self {
        let shared = Shared::default();
        shared.lock().next_id = 1000;
        shared.lock().trace_interval = 1;
        let app = router(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake GitLab");
        let backend = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let proxy = Proxy::start(backend).await;
        Self { shared, proxy }
    }

    /// The GitLab root URL (`http://127.0.0.1:<port>/`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.proxy.address())
    }

    /// Makes the coordinator unreachable: open connections are cut and new ones refused.
    pub async fn go_away(&self) {
        self.proxy.down().await;
    }

    /// Makes the coordinator reachable again on the same address.
    pub async fn come_back(&self) {
        self.proxy.up().await;
    }

    /// Accepts `token` as a legacy registration token.
    pub fn add_registration_token(&self, token: &str) {
        self.shared
            .lock()
            .registration_tokens
            .push(token.to_owned());
    }

    /// Creates a runner as the UI does and returns its `glrt-` authentication token.
    pub fn create_runner(&self) -> String {
        let mut inner = self.shared.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let token = format!("glrt-t1_{id:0>20}");
        inner.runners.insert(token.clone(), id);
        token
    }

    /// Whether `token` is a registered runner token.
    pub fn runner_exists(&self, token: &str) -> bool {
        self.shared.lock().runners.contains_key(token)
    }

    /// Forgets a runner, as deleting it in the UI does.
    pub fn delete_runner(&self, token: &str) {
        self.shared.lock().runners.remove(token);
    }

    /// The (token, system id) pairs of runner managers seen.
    pub fn managers(&self) -> Vec<(String, String)> {
        self.shared.lock().managers.clone()
    }

    /// The server-sent trace update interval in seconds (default 1).
    pub fn set_trace_interval(&self, seconds: u64) {
        self.shared.lock().trace_interval = seconds;
    }

    /// Answers the first artifact upload of each job with a 307 to another URL.
    pub fn redirect_uploads(&self) {
        self.shared.lock().redirect_uploads = true;
    }

    /// Answers the next `count` final updates with 202 (trace still being persisted), as
    /// GitLab does while live trace chunks are migrated.
    pub fn answer_final_updates_with_202(&self, count: u32) {
        self.shared.lock().pending_final_answers = count;
    }

    /// Drops the end of a job's stored trace, keeping `keep` bytes, as if GitLab lost them; the
    /// next PATCH then gets a 416 with the shorter `Range`.
    pub fn lose_trace(&self, id: u64, keep: usize) {
        if let Some(job) = self.shared.lock().jobs.get_mut(&id) {
            job.trace.truncate(keep);
        }
    }

    /// Serves the git repository at `repo` (a work tree or a bare repository) as the project's
    /// repository, `<url>acme/app.git`, over smart HTTP; clients authenticate with
    /// `gitlab-ci-token:<job token>` of a running job.
    pub fn serve_git(&self, repo: impl Into<PathBuf>) {
        self.shared.lock().git_repo = Some(repo.into());
    }

    /// Every request for the served repository, in order.
    pub fn git_requests(&self) -> Vec<GitRequest> {
        self.shared.lock().git_requests.clone()
    }

    /// Holds a job request that finds no job open for up to `hold`, answering as soon as a job
    /// is queued, as Workhorse's long polling does (`apiCiLongPollingDuration`).
    pub fn hold_job_requests(&self, hold: Duration) {
        self.shared.lock().long_poll = hold;
    }

    /// The most job requests of runner `token` the fake had open at once.
    pub fn peak_job_requests(&self, token: &str) -> usize {
        self.shared
            .lock()
            .load
            .get(token)
            .map_or(0, |load| load.peak)
    }

    /// The gaps between the arrivals of successive job requests of runner `token` that found
    /// no job.
    pub fn empty_request_gaps(&self, token: &str) -> Vec<Duration> {
        let inner = self.shared.lock();
        let Some(load) = inner.load.get(token) else {
            return Vec::new();
        };
        load.empty_arrivals
            .windows(2)
            .map(|pair| pair[1].duration_since(pair[0]))
            .collect()
    }

    /// (old, new) token pairs of `reset_authentication_token` calls.
    pub fn rotated_tokens(&self) -> Vec<(String, String)> {
        self.shared.lock().rotated_tokens.clone()
    }

    /// Queues a job with `script` as its script step; returns the job id.
    pub fn add_job(&self, spec: JobSpec) -> u64 {
        let mut inner = self.shared.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let token = format!("glcbt-64_job{id}secret");
        let payload = spec.payload(id, &token, &self.proxy.address().to_string());
        inner.jobs.insert(
            id,
            FakeJob {
                payload,
                state: FakeJobState::Pending,
                trace: Vec::new(),
                assignments: 0,
                final_update: None,
                artifacts: Vec::new(),
                session: None,
                token,
                git_token_rejected: spec.git.as_ref().is_some_and(|git| git.reject_token),
            },
        );
        inner.queue_version += 1;
        drop(inner);
        self.shared.changed.notify_waiters();
        id
    }

    /// Cancels a job as a user does: `canceling` when graceful, else `canceled`.
    pub fn cancel(&self, id: u64, graceful: bool) {
        if let Some(job) = self.shared.lock().jobs.get_mut(&id) {
            job.state = if graceful {
                FakeJobState::Canceling
            } else {
                FakeJobState::Canceled
            };
        }
        self.shared.changed.notify_waiters();
    }

    /// A job's current record.
    pub fn job(&self, id: u64) -> Option<FakeJob> {
        self.shared.lock().jobs.get(&id).cloned()
    }

    /// Whether job `id` exists and satisfies `check`, without copying it (its trace can be
    /// large, and waits check after every request).
    pub fn job_is(&self, id: u64, check: impl FnOnce(&FakeJob) -> bool) -> bool {
        self.shared.lock().jobs.get(&id).is_some_and(check)
    }

    /// Job `id`'s trace as text (lossy UTF-8).
    ///
    /// # Panics
    /// If there is no such job.
    pub fn trace_text(&self, id: u64) -> String {
        String::from_utf8_lossy(&self.job(id).expect("job").trace).into_owned()
    }

    /// `field` of job `id`'s final status update; `Null` when missing.
    pub fn final_field(&self, id: u64, field: &str) -> Value {
        self.job(id)
            .and_then(|job| job.final_update)
            .and_then(|u| u.get(field).cloned())
            .unwrap_or_default()
    }

    /// Every protocol deviation seen so far.
    pub fn violations(&self) -> Vec<String> {
        let inner = self.shared.lock();
        let mut violations = inner.violations.clone();
        for (token, (requests, carried)) in &inner.last_updates {
            if *requests >= 3 && *carried == 0 {
                let token = crate::config::short_token(token);
                violations.push(format!(
                    "runner {token}: last_update never re-sent in {requests} job requests"
                ));
            }
        }
        violations
    }

    /// `METHOD path` of every request, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// Waits until `done` holds for the fake's state (checked after every change).
    pub async fn wait_for(&self, mut done: impl FnMut(&FakeGitLab) -> bool) {
        loop {
            let changed = self.shared.changed.notified();
            if done(self) {
                return;
            }
            // Not every request changes state (a refused one only logs itself), so look again
            // now and then too.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), changed).await;
        }
    }

    /// Waits until job `id` has a final update and returns it.
    pub async fn wait_for_final(&self, id: u64) -> FakeJob {
        self.wait_for(|fake| fake.job_is(id, |job| job.final_update.is_some()))
            .await;
        self.job(id).expect("the job exists")
    }

    /// Waits until the trace of job `id` contains `needle`.
    pub async fn wait_for_trace(&self, id: u64, needle: &str) {
        self.wait_for(|fake| {
            fake.job_is(id, |job| {
                String::from_utf8_lossy(&job.trace).contains(needle)
            })
        })
        .await;
    }
}

/// What a queued job does.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    /// `script` lines.
    pub script: Vec<String>,
    /// `after_script` lines.
    pub after_script: Vec<String>,
    /// Extra variables: (key, value, masked).
    pub variables: Vec<(String, String, bool)>,
    /// `runner_info.timeout` in seconds (default 3600).
    pub timeout: Option<u64>,
    /// `artifacts:paths` of an `archive` artifact.
    pub artifact_paths: Vec<String>,
    /// Jobs whose artifacts this job downloads.
    pub dependencies: Vec<u64>,
    /// `image:name`, with its `pull_policy` list (empty: none given).
    pub image: Option<(String, Vec<String>)>,
    /// Sources from the fake's repository (see [`FakeGitLab::serve_git`]); `None`:
    /// `GIT_STRATEGY=none`.
    pub git: Option<GitSource>,
    /// `artifacts:reports`: (report type, paths), each sent as GitLab does, `gzip` format.
    pub reports: Vec<(String, Vec<String>)>,
    /// `cache` entries as GitLab sends them (keys already carry `-protected` or
    /// `-non_protected`).
    pub cache: Vec<Value>,
    /// `git_info.protected`: the job runs for a protected ref.
    pub protected: bool,
    /// `image:executor_opts` (`{"kubernetes": {"user": "1000"}}`), with `image`.
    pub image_executor_opts: Option<Value>,
    /// `services` as GitLab sends them (`name`, `alias`, `command`, `variables`, …); empty
    /// sends `null`.
    pub services: Vec<Value>,
    /// `credentials` as GitLab sends them (`{"type": "registry", "url", "username",
    /// "password"}`: the project's container registry with the job token).
    pub credentials: Vec<Value>,
}

/// The job's `git_info` and `GIT_STRATEGY`.
#[derive(Debug, Clone)]
pub struct GitSource {
    /// `GIT_STRATEGY`: `clone` or `fetch`.
    pub strategy: String,
    /// The commit to check out.
    pub sha: String,
    /// `before_sha` (all zeros for a new branch).
    pub before_sha: String,
    /// The branch.
    pub ref_name: String,
    /// `depth` (0: full history).
    pub depth: u32,
    /// `refspecs` to fetch.
    pub refspecs: Vec<String>,
    /// Whether the fake refuses this job's token for git (a 401).
    pub reject_token: bool,
}

impl GitSource {
    /// `strategy` at commit `sha` of branch `main`, fetched with depth 20 as GitLab's default
    /// project setting (`ci_default_git_depth`) gives.
    pub fn new(strategy: &str, sha: &str) -> Self {
        Self {
            strategy: strategy.to_owned(),
            sha: sha.to_owned(),
            before_sha: "0".repeat(40),
            ref_name: "main".into(),
            depth: 20,
            refspecs: vec!["+refs/heads/main:refs/remotes/origin/main".into()],
            reject_token: false,
        }
    }
}

/// GitLab's default name of a report artifact (`Ci::JobArtifact::DEFAULT_FILE_NAMES`).
fn report_name(artifact_type: &str) -> String {
    match artifact_type {
        "junit" => "junit.xml.gz".into(),
        "dotenv" => ".env.gz".into(),
        other => format!("gl-{other}-report.json"),
    }
}

impl JobSpec {
    /// A job running `script`.
    pub fn script(lines: &[&str]) -> Self {
        Self {
            script: lines.iter().map(|l| (*l).to_owned()).collect(),
            ..Self::default()
        }
    }

    fn payload(&self, id: u64, token: &str, address: &str) -> Value {
        let strategy = self
            .git
            .as_ref()
            .map_or("none", |git| git.strategy.as_str());
        let mut variables = vec![
            json!({"key": "CI_JOB_ID", "value": id.to_string(), "public": true, "masked": false}),
            json!({"key": "CI_JOB_TOKEN", "value": token, "public": false, "masked": true}),
            json!({"key": "CI_PROJECT_PATH", "value": "acme/app", "public": true, "masked": false}),
            json!({"key": "GIT_STRATEGY", "value": strategy, "public": true, "masked": false}),
        ];
        for (key, value, masked) in &self.variables {
            variables
                .push(json!({"key": key, "value": value, "public": !masked, "masked": masked}));
        }
        let timeout = self.timeout.unwrap_or(3600);
        let mut steps = vec![
            json!({"name": "script", "script": self.script, "timeout": timeout, "when": "on_success", "allow_failure": false}),
        ];
        if !self.after_script.is_empty() {
            steps.push(json!({"name": "after_script", "script": self.after_script, "timeout": timeout, "when": "always", "allow_failure": true}));
        }
        let mut artifacts: Vec<Value> = if self.artifact_paths.is_empty() {
            Vec::new()
        } else {
            vec![
                json!({"name": "build", "untracked": false, "paths": self.artifact_paths, "when": "on_success", "expire_in": "1 week", "artifact_type": "archive", "artifact_format": "zip"}),
            ]
        };
        // GitLab: app/presenters/ci/build_runner_presenter.rb `create_reports` — one entry per
        // report, `when: always`, with the type's default name and format.
        for (artifact_type, paths) in &self.reports {
            artifacts.push(json!({"name": report_name(artifact_type), "untracked": false, "paths": paths, "when": "always", "expire_in": "1 week", "artifact_type": artifact_type, "artifact_format": "gzip"}));
        }
        let git_info = match &self.git {
            Some(git) => {
                json!({"repo_url": format!("http://gitlab-ci-token:{token}@{address}{REPO_PATH}"), "ref": git.ref_name, "sha": git.sha, "before_sha": git.before_sha, "ref_type": "branch", "refspecs": git.refspecs, "depth": git.depth, "repo_object_format": "sha1", "protected": self.protected})
            }
            None => {
                json!({"repo_url": format!("http://gitlab-ci-token:{token}@{address}{REPO_PATH}"), "ref": "main", "sha": "0123456789abcdef0123456789abcdef01234567", "before_sha": "0000000000000000000000000000000000000000", "ref_type": "branch", "refspecs": ["+refs/heads/main:refs/remotes/origin/main"], "depth": 20, "repo_object_format": "sha1", "protected": self.protected})
            }
        };
        let dependencies: Vec<Value> = self
            .dependencies
            .iter()
            .map(|dep| json!({"id": dep, "name": format!("job{dep}"), "token": token, "artifacts_file": {"filename": "artifacts.zip", "size": 1}}))
            .collect();
        json!({
            "id": id,
            "token": token,
            "allow_git_fetch": false,
            "job_info": {"id": id, "name": format!("job{id}"), "stage": "test", "pipeline_id": 1, "project_id": 7, "project_name": "app", "project_full_path": "acme/app", "namespace_id": 1, "root_namespace_id": 1, "organization_id": 1, "instance_id": "", "instance_uuid": "", "user_id": 1, "time_in_queue_seconds": 0.5, "project_jobs_running_on_instance_runners_count": "+Inf", "queue_size": 0, "queue_depth": 0},
            "git_info": git_info,
            "runner_info": {"uuid": "", "timeout": timeout},
            "variables": variables,
            "steps": steps,
            "image": self.image.as_ref().map(|(name, pull_policy)| {
                let mut image = json!({"name": name, "pull_policy": pull_policy});
                if let Some(options) = &self.image_executor_opts {
                    image["executor_opts"] = options.clone();
                }
                image
            }),
            "services": (!self.services.is_empty()).then(|| self.services.clone()),
            "artifacts": artifacts,
            "cache": self.cache,
            "credentials": self.credentials,
            "dependencies": dependencies,
            "features": {"trace_sections": true, "failure_reasons": ["unknown_failure", "script_failure", "api_failure", "stuck_or_timeout_failure", "runner_system_failure", "job_execution_timeout", "runner_unsupported", "image_pull_failure"]},
        })
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/api/v4/runners", post(register).delete(unregister))
        .route("/api/v4/runners/verify", post(verify))
        .route("/api/v4/runners/managers", delete(unregister_manager))
        .route(
            "/api/v4/runners/reset_authentication_token",
            post(reset_token),
        )
        .route("/api/v4/jobs/request", post(request_job))
        .route("/api/v4/jobs/{id}", put(update_job))
        .route("/api/v4/jobs/{id}/trace", patch(patch_trace))
        .route(
            "/api/v4/jobs/{id}/artifacts",
            post(upload_artifacts).get(download_artifacts),
        )
        .route(&format!("{REPO_PATH}/{{*rest}}"), any(serve_git))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "404 Not Found"})),
            )
        })
        .with_state(shared)
}

fn violation(inner: &mut Inner, text: String) {
    inner.violations.push(text);
}

/// Checks the headers every runner request carries.
fn check_common(inner: &mut Inner, what: &str, headers: &HeaderMap) {
    inner.requests.push(what.to_owned());
    if headers.get("user-agent").is_none() {
        violation(inner, format!("{what}: no User-Agent"));
    }
    let request_id_ok = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    if !request_id_ok {
        violation(inner, format!("{what}: no valid X-Request-Id"));
    }
}

fn parse_json(inner: &mut Inner, what: &str, headers: &HeaderMap, body: &[u8]) -> Option<Value> {
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        violation(
            inner,
            format!("{what}: Content-Type is not application/json"),
        );
    }
    match serde_json::from_slice(body) {
        Ok(value) => Some(value),
        Err(err) => {
            violation(inner, format!("{what}: body is not JSON: {err}"));
            None
        }
    }
}

fn check_system_id(inner: &mut Inner, what: &str, body: &Value) -> Option<String> {
    let id = body
        .get("system_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match &id {
        Some(id) if crate::system_id::is_valid(id) => {}
        _ => violation(
            inner,
            format!("{what}: system_id missing or malformed: {id:?}"),
        ),
    }
    id
}

/// The `token` of a request body; empty when missing.
fn body_token(body: &Value) -> String {
    body.get("token")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({"message": "403 Forbidden"})),
    )
        .into_response()
}

async fn register(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = shared.lock();
    check_common(&mut inner, "POST /api/v4/runners", &headers);
    let Some(body) = parse_json(&mut inner, "register", &headers, &body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let token = body.get("token").and_then(Value::as_str).unwrap_or("");
    if !inner.registration_tokens.iter().any(|t| t == token) {
        return forbidden();
    }
    let tags = body.get("tag_list").and_then(Value::as_str).unwrap_or("");
    let run_untagged = body.get("run_untagged").and_then(Value::as_bool);
    if run_untagged.is_none() || body.get("locked").and_then(Value::as_bool).is_none() {
        violation(
            &mut inner,
            "register: run_untagged and locked must always be sent".into(),
        );
    }
    // GitLab: lib/api/ci/runner.rb — a runner with no tags must run untagged jobs.
    if tags.is_empty() && run_untagged == Some(false) {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"message": {"tags_list": ["can not be empty when runner is not allowed to pick untagged jobs"]}}))).into_response();
    }
    inner.next_id += 1;
    let id = inner.next_id;
    let new_token = format!("glrtr-{id:0>20}");
    inner.runners.insert(new_token.clone(), id);
    drop(inner);
    shared.changed.notify_waiters();
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "token": new_token, "token_expires_at": null})),
    )
        .into_response()
}

async fn verify(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = shared.lock();
    check_common(&mut inner, "POST /api/v4/runners/verify", &headers);
    let Some(body) = parse_json(&mut inner, "verify", &headers, &body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let token = body_token(&body);
    let system_id = check_system_id(&mut inner, "verify", &body);
    let Some(id) = inner.runners.get(&token).copied() else {
        return forbidden();
    };
    if let Some(system_id) = system_id
        && !inner.managers.contains(&(token.clone(), system_id.clone()))
    {
        inner.managers.push((token.clone(), system_id));
    }
    drop(inner);
    shared.changed.notify_waiters();
    (
        StatusCode::OK,
        axum::Json(json!({"id": id, "token": token, "token_expires_at": null})),
    )
        .into_response()
}

async fn unregister(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = shared.lock();
    check_common(&mut inner, "DELETE /api/v4/runners", &headers);
    let Some(body) = parse_json(&mut inner, "unregister", &headers, &body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let token = body_token(&body);
    if token.starts_with("glrt-") {
        violation(
            &mut inner,
            "DELETE /runners with a glrt- token: GitLab wants /runners/managers".into(),
        );
    }
    if inner.runners.remove(&token).is_none() {
        return forbidden();
    }
    drop(inner);
    shared.changed.notify_waiters();
    StatusCode::NO_CONTENT.into_response()
}

async fn unregister_manager(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock();
    check_common(&mut inner, "DELETE /api/v4/runners/managers", &headers);
    let Some(body) = parse_json(&mut inner, "unregister manager", &headers, &body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let token = body_token(&body);
    let system_id = check_system_id(&mut inner, "unregister manager", &body).unwrap_or_default();
    if !inner.runners.contains_key(&token) {
        return forbidden();
    }
    let before = inner.managers.len();
    inner
        .managers
        .retain(|(t, s)| !(t == &token && s == &system_id));
    if inner.managers.len() == before {
        return StatusCode::NOT_FOUND.into_response();
    }
    drop(inner);
    shared.changed.notify_waiters();
    StatusCode::NO_CONTENT.into_response()
}

async fn reset_token(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = shared.lock();
    check_common(
        &mut inner,
        "POST /api/v4/runners/reset_authentication_token",
        &headers,
    );
    let Some(body) = parse_json(&mut inner, "reset token", &headers, &body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let token = body_token(&body);
    let Some(id) = inner.runners.remove(&token) else {
        return forbidden();
    };
    inner.next_id += 1;
    let new_token = format!("glrt-t1_{:0>20}", inner.next_id);
    inner.runners.insert(new_token.clone(), id);
    inner.rotated_tokens.push((token, new_token.clone()));
    drop(inner);
    shared.changed.notify_waiters();
    let expires = "2099-01-01T00:00:00Z";
    (
        StatusCode::CREATED,
        axum::Json(json!({"token": new_token, "token_expires_at": expires})),
    )
        .into_response()
}

/// Counts an open job request of a runner while alive.
struct InFlight {
    shared: Shared,
    token: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(load) = self.shared.lock().load.get_mut(&self.token) {
            load.in_flight = load.in_flight.saturating_sub(1);
        }
    }
}

async fn request_job(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let arrived = Instant::now();
    let (token, hold, _in_flight, session) = {
        let mut inner = shared.lock();
        check_common(&mut inner, "POST /api/v4/jobs/request", &headers);
        let Some(body) = parse_json(&mut inner, "job request", &headers, &body) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let token = body_token(&body);
        if !inner.runners.contains_key(&token) {
            return forbidden();
        }
        let session = body.get("session").cloned();
        // GitLab: app/models/ci/build_runner_session.rb validates an https URL.
        if let Some(session) = &session {
            let field = |key: &str| session.get(key).and_then(Value::as_str).unwrap_or("");
            if !field("url").starts_with("https://")
                || !field("certificate").starts_with("-----BEGIN CERTIFICATE-----")
                || field("authorization").is_empty()
            {
                violation(
                    &mut inner,
                    format!("job request: invalid session {session}"),
                );
            }
        }
        check_system_id(&mut inner, "job request", &body);
        let features = body.pointer("/info/features");
        if features
            .and_then(Value::as_object)
            .is_none_or(|f| f.len() < 30)
        {
            violation(
                &mut inner,
                "job request: info.features must list every feature".into(),
            );
        }
        // GitLab: lib/api/ci/runner.rb — a runner re-sends the `X-GitLab-Last-Update` it saw;
        // checked over all requests of a token in `violations`.
        let carried = usize::from(body.get("last_update").and_then(Value::as_str).is_some());
        let counts = inner.last_updates.entry(token.clone()).or_default();
        counts.0 += 1;
        counts.1 += carried;
        let load = inner.load.entry(token.clone()).or_default();
        load.in_flight += 1;
        load.peak = load.peak.max(load.in_flight);
        let in_flight = InFlight {
            shared: shared.clone(),
            token: token.clone(),
        };
        (token, inner.long_poll, in_flight, session)
    };
    // Workhorse holds a request that finds no job open until one is queued or the long
    // polling duration ends (gitlab-workhorse `internal/builds/register.go`).
    let deadline = arrived + hold;
    loop {
        let changed = shared.changed.notified();
        {
            let mut inner = shared.lock();
            let version = inner.queue_version.to_string();
            let last_update_header = [("X-GitLab-Last-Update", version)];
            let next = inner
                .jobs
                .iter_mut()
                .find(|(_, job)| job.state == FakeJobState::Pending);
            if let Some((_, job)) = next {
                job.state = FakeJobState::Running;
                job.assignments += 1;
                job.session = session.clone();
                let payload = job.payload.clone();
                inner.queue_version += 1;
                drop(inner);
                shared.changed.notify_waiters();
                return (StatusCode::CREATED, last_update_header, axum::Json(payload))
                    .into_response();
            }
            if Instant::now() >= deadline {
                inner
                    .load
                    .entry(token)
                    .or_default()
                    .empty_arrivals
                    .push(arrived);
                return (StatusCode::NO_CONTENT, last_update_header).into_response();
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), changed).await;
    }
}

/// The project repository over smart HTTP, for `gitlab-ci-token:<job token>` of a running job
/// (GitLab: `lib/gitlab/auth.rb` `build_access_token_check`); anything else gets a 401.
async fn serve_git(
    State(shared): State<Shared>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (repo, authorized) = {
        let mut inner = shared.lock();
        let job = inner.jobs.iter().find(|(_, job)| {
            git_http::basic_authorization("gitlab-ci-token", &job.token) == authorization
        });
        let authorized = job.is_some_and(|(_, job)| {
            matches!(job.state, FakeJobState::Running | FakeJobState::Canceling)
                && !job.git_token_rejected
        });
        let job = job.map(|(id, _)| *id);
        inner.git_requests.push(GitRequest {
            path: rest.clone(),
            job,
            authorized,
        });
        (inner.git_repo.clone(), authorized)
    };
    shared.changed.notify_waiters();
    if !authorized {
        return git_http::unauthorized();
    }
    let Some(repo) = repo.filter(|_| !rest.split('/').any(|part| part == "..")) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    git_http::http_backend(
        &repo,
        method.as_str(),
        &rest,
        query.as_deref().unwrap_or(""),
        &headers,
        body,
    )
    .await
}

fn job_token_ok(job: &FakeJob, headers: &HeaderMap, body: Option<&Value>) -> bool {
    let header = headers.get("job-token").and_then(|v| v.to_str().ok());
    let in_body = body.and_then(|b| b.get("token")).and_then(Value::as_str);
    header.or(in_body) == Some(job.token.as_str())
}

fn with_job_status(mut response: Response, state: FakeJobState) -> Response {
    response
        .headers_mut()
        .insert("Job-Status", HeaderValue::from_static(state.as_str()));
    response
}

async fn update_job(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock();
    check_common(&mut inner, "PUT /api/v4/jobs/:id", &headers);
    let Some(body) = parse_json(&mut inner, "update job", &headers, &body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(job) = inner.jobs.get(&id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !job_token_ok(&job, &headers, Some(&body)) {
        return forbidden();
    }
    let state = body.get("state").and_then(Value::as_str).unwrap_or("");
    if !matches!(state, "running" | "success" | "failed" | "pending") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "400 Bad request - state does not have a valid value"})),
        )
            .into_response();
    }
    if job.state.is_final() {
        return with_job_status(forbidden(), job.state);
    }
    if state == "running" || state == "pending" {
        return with_job_status(StatusCode::OK.into_response(), job.state);
    }
    let checksum = format!("crc32:{:08x}", crc32fast::hash(&job.trace));
    let sent_checksum = body.pointer("/output/checksum").and_then(Value::as_str);
    let sent_size = body.pointer("/output/bytesize").and_then(Value::as_u64);
    if !job.trace.is_empty() && sent_checksum != Some(checksum.as_str()) {
        violation(
            &mut inner,
            format!("job {id}: final checksum {sent_checksum:?} != {checksum}"),
        );
    }
    if !job.trace.is_empty() && sent_size != Some(job.trace.len() as u64) {
        violation(
            &mut inner,
            format!(
                "job {id}: final bytesize {sent_size:?} != {}",
                job.trace.len()
            ),
        );
    }
    if state == "failed" && body.get("failure_reason").and_then(Value::as_str).is_none() {
        violation(
            &mut inner,
            format!("job {id}: failed without failure_reason"),
        );
    }
    if body.get("exit_code").and_then(Value::as_i64) == Some(0) {
        violation(&mut inner, format!("job {id}: exit_code 0 must be omitted"));
    }
    if inner.pending_final_answers > 0 {
        inner.pending_final_answers -= 1;
        let mut response = StatusCode::ACCEPTED.into_response();
        response.headers_mut().insert(
            "X-GitLab-Trace-Update-Interval",
            HeaderValue::from_static("1"),
        );
        return with_job_status(response, job.state);
    }
    let new_state = match (job.state, state) {
        (FakeJobState::Canceling, _) => FakeJobState::Canceled,
        (_, "success") => FakeJobState::Success,
        _ => FakeJobState::Failed,
    };
    if let Some(job) = inner.jobs.get_mut(&id) {
        job.state = new_state;
        job.final_update = Some(body);
    }
    drop(inner);
    shared.changed.notify_waiters();
    with_job_status(StatusCode::OK.into_response(), new_state)
}

async fn patch_trace(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock();
    check_common(&mut inner, "PATCH /api/v4/jobs/:id/trace", &headers);
    let interval = inner.trace_interval.to_string();
    // Not a clone of the job: its trace may be hundreds of MiB, and this runs per PATCH.
    let Some((token_ok, state, size)) = inner.jobs.get(&id).map(|job| {
        (
            job_token_ok(job, &headers, None),
            job.state,
            job.trace.len() as u64,
        )
    }) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !token_ok {
        return forbidden();
    }
    if state.is_final() {
        return with_job_status(forbidden(), state);
    }
    let Some(range) = headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return (
            StatusCode::BAD_REQUEST,
            "400 Bad request - Missing Content-Range header",
        )
            .into_response();
    };
    if body.is_empty() {
        violation(&mut inner, format!("job {id}: empty trace patch"));
    }
    let parsed = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    let Some((start, end)) = parsed else {
        violation(
            &mut inner,
            format!("job {id}: malformed Content-Range {range:?}"),
        );
        return StatusCode::BAD_REQUEST.into_response();
    };
    if end + 1 != start + body.len() as u64 {
        violation(
            &mut inner,
            format!(
                "job {id}: Content-Range {range} does not match {} bytes",
                body.len()
            ),
        );
    }
    if start != size {
        let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
        response.headers_mut().insert(
            "Range",
            HeaderValue::from_str(&format!("0-{size}")).expect("ascii"),
        );
        return response;
    }
    let new_size = if let Some(job) = inner.jobs.get_mut(&id) {
        job.trace.extend_from_slice(&body);
        job.trace.len()
    } else {
        0
    };
    drop(inner);
    shared.changed.notify_waiters();
    let mut response = StatusCode::ACCEPTED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        "Range",
        HeaderValue::from_str(&format!("0-{new_size}")).expect("ascii"),
    );
    headers.insert(
        "X-GitLab-Trace-Update-Interval",
        HeaderValue::from_str(&interval).expect("ascii"),
    );
    with_job_status(response, state)
}

async fn upload_artifacts(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    Query(query): Query<BTreeMap<String, String>>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock();
    check_common(&mut inner, "POST /api/v4/jobs/:id/artifacts", &headers);
    let Some(job) = inner.jobs.get(&id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !job_token_ok(&job, &headers, None) {
        return forbidden();
    }
    if inner.redirect_uploads && !query.contains_key("redirected") {
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        // GitLab's object storage redirect keeps the whole query (`expire_in` included).
        let query = raw_query.map(|q| format!("{q}&")).unwrap_or_default();
        let location = format!("/api/v4/jobs/{id}/artifacts?{query}redirected=1");
        response
            .headers_mut()
            .insert("Location", HeaderValue::from_str(&location).expect("ascii"));
        return response;
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(boundary) = content_type.strip_prefix("multipart/form-data; boundary=") else {
        violation(
            &mut inner,
            format!("job {id}: artifacts upload is not multipart/form-data"),
        );
        return StatusCode::BAD_REQUEST.into_response();
    };
    match single_file_part(&body, boundary) {
        Some((file_name, data)) => {
            if let Some(job) = inner.jobs.get_mut(&id) {
                job.artifacts.push((query, file_name, data));
            }
        }
        None => {
            violation(
                &mut inner,
                format!("job {id}: artifacts upload must have exactly one `file` part"),
            );
            return StatusCode::BAD_REQUEST.into_response();
        }
    }
    drop(inner);
    shared.changed.notify_waiters();
    (StatusCode::CREATED, "201").into_response()
}

/// The file name and bytes of the only part, which must be named `file`.
fn single_file_part(body: &[u8], boundary: &str) -> Option<(String, Vec<u8>)> {
    let delimiter = format!("--{boundary}");
    let text = body;
    let positions: Vec<usize> = text
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .map(|(i, _)| i)
        .collect();
    if positions.len() != 2 {
        return None;
    }
    let part = &text[positions[0] + delimiter.len()..positions[1]];
    let header_end = part.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&part[..header_end]);
    if !head.contains("name=\"file\"") {
        return None;
    }
    let file_name = head
        .split("filename=\"")
        .nth(1)?
        .split('"')
        .next()?
        .to_owned();
    let data = part[header_end + 4..].strip_suffix(b"\r\n")?.to_vec();
    Some((file_name, data))
}

async fn download_artifacts(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock();
    check_common(&mut inner, "GET /api/v4/jobs/:id/artifacts", &headers);
    let token = headers
        .get("job-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !inner.jobs.values().any(|job| job.token == token) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "401 Unauthorized"})),
        )
            .into_response();
    }
    let archive = inner
        .jobs
        .get(&id)
        .and_then(|job| {
            job.artifacts
                .iter()
                .find(|(q, _, _)| q.get("artifact_type").map(String::as_str) == Some("archive"))
        })
        .map(|(_, _, data)| data.clone());
    match archive {
        Some(data) => (StatusCode::OK, [("Content-Type", "application/zip")], data).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
