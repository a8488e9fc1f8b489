//! Job-scoped calls: `POST /jobs/request`, `PUT /jobs/:id`, `PATCH /jobs/:id/trace`
//! (gitlab-runner `network/gitlab.go` `RequestJob`, `UpdateJob`, `PatchTrace`).

use std::time::Duration;

use reqwest::{Response, StatusCode};
use runnel_api::{
    JobId, JobPayload, JobRequest, JobState, JobStatus, JobToken, UpdateJobRequest, VersionInfo,
};

use super::ClientError;
use super::coordinator::{Coordinator, json};
use super::transport::Endpoint;

/// The answer to a job request.
#[derive(Debug)]
pub enum JobRequestOutcome {
    /// 201: a job.
    Job(Box<JobPayload>),
    /// 204, or 409 (another runner took the job), or 503: nothing to do now.
    NoJob,
    /// 403: the token is no longer valid. Unhealthy.
    Forbidden,
    /// 422: the runner is orphaned.
    Orphaned,
    /// Any other status, after retries. Unhealthy.
    Failed(u16),
}

/// The answer to `PUT /jobs/:id`.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// 200: the state was applied.
    Accepted {
        /// The server's `Job-Status`.
        job_status: Option<JobStatus>,
    },
    /// 202: the server still persists trace chunks; send the same update again after the
    /// given interval.
    TryAgain {
        /// `X-GitLab-Trace-Update-Interval`.
        interval: Option<Duration>,
    },
    /// 403, 404, or `Job-Status` canceled/failed: stop the job, the server no longer wants it.
    Abort {
        /// The server's `Job-Status`.
        job_status: Option<JobStatus>,
    },
    /// 409: another runner manager holds the job (two-phase commit conflict).
    Conflict,
    /// Anything else: retry with backoff.
    Failed(u16),
}

/// The answer to `PATCH /jobs/:id/trace`.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOutcome {
    /// 202: appended; the server now has `0..size` bytes.
    Accepted {
        /// The end of the server's `Range: 0-<size>`.
        size: Option<u64>,
        /// The server's `Job-Status`.
        job_status: Option<JobStatus>,
        /// `X-GitLab-Trace-Update-Interval`.
        interval: Option<Duration>,
    },
    /// 416: the server has `size` bytes; resend from there.
    RangeMismatch {
        /// The end of the server's `Range`.
        size: u64,
    },
    /// 403, or `Job-Status` canceled/failed: abort the job.
    Abort {
        /// The server's `Job-Status`.
        job_status: Option<JobStatus>,
    },
    /// 404: ignored while streaming.
    NotFound,
    /// Anything else: retry next tick.
    Failed(u16),
}

fn job_status(response: &Response) -> Option<JobStatus> {
    response
        .headers()
        .get("Job-Status")
        .and_then(|v| v.to_str().ok())
        .and_then(JobStatus::from_wire)
}

fn update_interval(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get("X-GitLab-Trace-Update-Interval")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|secs| *secs > 0)
        .map(|secs| Duration::from_secs(secs.min(15 * 60)))
}

/// The end of a `Range: 0-<n>` header.
fn range_end(response: &Response) -> Option<u64> {
    let range = response.headers().get("Range")?.to_str().ok()?;
    range.trim().rsplit('-').next()?.parse().ok()
}

fn is_abort_status(status: Option<&JobStatus>) -> bool {
    matches!(status, Some(JobStatus::Canceled | JobStatus::Failed))
}

/// Whether a 200 to a final update (`state` success or failed) only confirms it: GitLab
/// answers with the job's status after applying the update (`lib/api/ci/runner.rb`
/// `header 'Job-Status', job.status`), so `failed` after `failed` is the update taking
/// effect, and `canceled` after `failed` is a canceling job finishing (GitLab
/// `Ci::UpdateBuildStateService`). gitlab-runner's `createUpdateJobResult` calls both
/// `UpdateAbort`, which its `finalStatusUpdate` treats as the end of the updates, as for
/// success; runnel reports it as delivered. A status that contradicts the sent state (e.g.
/// `failed` after `success`) remains an abort.
fn confirms_final_state(sent: &JobState, status: Option<&JobStatus>) -> bool {
    matches!(
        (sent, status),
        (JobState::Success, Some(JobStatus::Success))
            | (
                JobState::Failed,
                Some(JobStatus::Failed | JobStatus::Canceled)
            )
    )
}

impl Coordinator {
    /// `POST /api/v4/jobs/request`. Remembers `X-GitLab-Last-Update` for the next request.
    ///
    /// Not cancel-safe: a job the server assigned while the future is dropped is lost (GitLab
    /// fails it as stuck after its timeout), as in gitlab-runner.
    pub async fn request_job(&self, info: VersionInfo) -> Result<JobRequestOutcome, ClientError> {
        self.request_job_with_session(info, None).await
    }

    /// [`Coordinator::request_job`] advertising the session server's `session` for the job.
    ///
    /// Not cancel-safe, as [`Coordinator::request_job`].
    pub async fn request_job_with_session(
        &self,
        info: VersionInfo,
        session: Option<runnel_api::SessionInfo>,
    ) -> Result<JobRequestOutcome, ClientError> {
        let url = self.url("jobs/request");
        let last_update = self.last_update.lock().map_or(None, |guard| guard.clone());
        let body = JobRequest {
            token: self.token.clone(),
            system_id: Some(self.system_id.clone()).filter(|id| !id.is_empty()),
            last_update,
            info,
            session,
        };
        let response = match self
            .send(Endpoint::RequestJob, || {
                self.http
                    .post(url.clone())
                    .header("Accept", "application/json")
                    .header("RUNNER-TOKEN", self.token.expose())
                    .json(&body)
            })
            .await
        {
            Ok(response) => response,
            Err(ClientError::Network { .. }) => return Ok(JobRequestOutcome::Failed(0)),
            Err(err) => return Err(err),
        };
        let last_update = response
            .headers()
            .get("X-GitLab-Last-Update")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty());
        if let (Some(value), Ok(mut guard)) = (last_update, self.last_update.lock()) {
            *guard = Some(value.to_owned());
        }
        Ok(match response.status() {
            StatusCode::CREATED => {
                JobRequestOutcome::Job(Box::new(json(Endpoint::RequestJob, response).await?))
            }
            StatusCode::NO_CONTENT
            | StatusCode::CONFLICT
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::TOO_MANY_REQUESTS => JobRequestOutcome::NoJob,
            StatusCode::FORBIDDEN => JobRequestOutcome::Forbidden,
            StatusCode::UNPROCESSABLE_ENTITY => JobRequestOutcome::Orphaned,
            other => JobRequestOutcome::Failed(other.as_u16()),
        })
    }

    /// `PUT /api/v4/jobs/:id`.
    pub async fn update_job(
        &self,
        id: JobId,
        request: &UpdateJobRequest,
    ) -> Result<UpdateOutcome, ClientError> {
        let url = self.url(&format!("jobs/{id}"));
        let response = self
            .send(Endpoint::UpdateJob, || {
                self.http
                    .put(url.clone())
                    .header("Accept", "application/json")
                    .header("JOB-TOKEN", request.token.expose())
                    .json(request)
            })
            .await?;
        let status = job_status(&response);
        Ok(match response.status() {
            StatusCode::OK if confirms_final_state(&request.state, status.as_ref()) => {
                UpdateOutcome::Accepted { job_status: status }
            }
            _ if is_abort_status(status.as_ref()) => UpdateOutcome::Abort { job_status: status },
            StatusCode::OK => UpdateOutcome::Accepted { job_status: status },
            StatusCode::ACCEPTED => UpdateOutcome::TryAgain {
                interval: update_interval(&response),
            },
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                UpdateOutcome::Abort { job_status: status }
            }
            StatusCode::CONFLICT => UpdateOutcome::Conflict,
            other => UpdateOutcome::Failed(other.as_u16()),
        })
    }

    /// `PATCH /api/v4/jobs/:id/trace` with `bytes` starting at `start`: `Content-Range:
    /// <start>-<end>` with an inclusive end and no `bytes ` prefix. `bytes` must not be empty.
    pub async fn patch_trace(
        &self,
        id: JobId,
        token: &JobToken,
        start: u64,
        bytes: bytes::Bytes,
        debug_trace: bool,
    ) -> Result<PatchOutcome, ClientError> {
        let mut url = self.url(&format!("jobs/{id}/trace"));
        url.query_pairs_mut()
            .append_pair("debug_trace", if debug_trace { "true" } else { "false" });
        let end = start + bytes.len() as u64 - 1;
        let response = self
            .send(Endpoint::PatchTrace, || {
                self.http
                    .patch(url.clone())
                    .header("JOB-TOKEN", token.expose())
                    .header("Content-Type", "text/plain")
                    .header("Content-Range", format!("{start}-{end}"))
                    .body(bytes.clone())
            })
            .await?;
        let status = job_status(&response);
        Ok(match response.status() {
            _ if is_abort_status(status.as_ref()) => PatchOutcome::Abort { job_status: status },
            StatusCode::ACCEPTED => PatchOutcome::Accepted {
                size: range_end(&response),
                job_status: status,
                interval: update_interval(&response),
            },
            StatusCode::RANGE_NOT_SATISFIABLE => PatchOutcome::RangeMismatch {
                size: range_end(&response).unwrap_or(0),
            },
            StatusCode::FORBIDDEN => PatchOutcome::Abort { job_status: status },
            StatusCode::NOT_FOUND => PatchOutcome::NotFound,
            other => PatchOutcome::Failed(other.as_u16()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use runnel_api::{RunnerToken, VersionInfo};

    use super::JobRequestOutcome;
    use crate::client::{Coordinator, http_client};

    /// A job endpoint that answers each request with the next status of `answers` and
    /// `X-GitLab-Last-Update: v<n>`, and records each request body.
    async fn coordinator(answers: Vec<u16>) -> (Coordinator, Arc<Mutex<Vec<serde_json::Value>>>) {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let app = axum::Router::new().route(
            "/api/v4/jobs/request",
            axum::routing::post(move |body: axum::body::Bytes| {
                let seen = seen.clone();
                let answers = answers.clone();
                async move {
                    let mut bodies = seen.lock().expect("bodies");
                    bodies.push(serde_json::from_slice(&body).unwrap_or_default());
                    let status = answers.lock().expect("answers").next().unwrap_or(204);
                    let mut headers = HeaderMap::new();
                    let version = format!("v{}", bodies.len());
                    headers.insert(
                        "X-GitLab-Last-Update",
                        version.parse().expect("header value"),
                    );
                    (AxumStatus::from_u16(status).expect("status"), headers, "{}")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let coordinator = Coordinator::new(
            http_client().expect("client"),
            &format!("http://{address}/"),
            RunnerToken::new(String::from("glrt-test")),
            String::from("s_0123456789ab"),
        )
        .expect("coordinator");
        (coordinator, bodies)
    }

    #[tokio::test]
    async fn job_request_answers_map_as_gitlab_runner_reads_them() {
        let (coordinator, bodies) = coordinator(vec![204, 409, 403, 422]).await;
        let mut outcomes = Vec::new();
        for _ in 0..4 {
            outcomes.push(
                coordinator
                    .request_job(VersionInfo::default())
                    .await
                    .expect("an answer"),
            );
        }
        assert!(
            matches!(
                outcomes.as_slice(),
                [
                    JobRequestOutcome::NoJob,
                    JobRequestOutcome::NoJob,
                    JobRequestOutcome::Forbidden,
                    JobRequestOutcome::Orphaned,
                ]
            ),
            "{outcomes:?}"
        );
        let bodies = bodies.lock().expect("bodies");
        let last_updates: Vec<Option<&str>> = bodies
            .iter()
            .map(|body| body.get("last_update").and_then(serde_json::Value::as_str))
            .collect();
        // Each request re-sends the X-GitLab-Last-Update of the answer before it.
        assert_eq!(last_updates, [None, Some("v1"), Some("v2"), Some("v3")]);
        assert!(
            bodies
                .iter()
                .all(|body| body.get("token").and_then(serde_json::Value::as_str)
                    == Some("glrt-test")),
            "{bodies:?}"
        );
    }
    #[test]
    fn a_final_status_echoing_the_sent_state_confirms_it_and_a_contrary_one_does_not() {
        use runnel_api::{JobState, JobStatus};

        use super::confirms_final_state;
        assert!(confirms_final_state(
            &JobState::Failed,
            Some(&JobStatus::Failed)
        ));
        assert!(confirms_final_state(
            &JobState::Failed,
            Some(&JobStatus::Canceled)
        ));
        assert!(confirms_final_state(
            &JobState::Success,
            Some(&JobStatus::Success)
        ));
        assert!(!confirms_final_state(
            &JobState::Success,
            Some(&JobStatus::Failed)
        ));
        assert!(!confirms_final_state(
            &JobState::Running,
            Some(&JobStatus::Failed)
        ));
        assert!(!confirms_final_state(
            &JobState::Running,
            Some(&JobStatus::Canceled)
        ));
    }
}
