//! Sending a job's trace to the coordinator: every byte is kept with a `sent` offset, so nothing
//! is lost when a PATCH fails or the server's length differs (gitlab-runner `network/trace.go`,
//! `helpers/trace/buffer.go`).
//!
//! The buffer takes the bytes the job's trace produced (already masked and limited by
//! `runnel-exec`), keeps an IEEE CRC-32 and the byte count for the final update, and the
//! patcher sends `bytes[sent..]` in PATCHes of at most 1 MiB with `Content-Range:
//! <start>-<inclusive end>`. A 416 moves `sent` to the server's size from its `Range` header.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use runnel_api::{JobId, JobStatus, JobToken};
use tokio::sync::Notify;

use crate::client::{ClientError, Coordinator, PatchOutcome};

/// gitlab-runner's `DefaultTracePatchLimit`: the most bytes in one PATCH.
pub const PATCH_LIMIT: usize = 1024 * 1024;

/// The first update interval before the server sends its own.
pub const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_secs(3);

/// The bytes of one job's trace and how many of them the coordinator has.
#[derive(Debug, Default)]
struct BufferState {
    bytes: Vec<u8>,
    crc: crc32fast::Hasher,
    sent: usize,
}

/// A job's trace buffer, shared by the executor (writer) and the patcher (reader).
#[derive(Debug, Clone, Default)]
pub struct TraceBuffer {
    state: Arc<Mutex<BufferState>>,
    written: Arc<Notify>,
}

impl TraceBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BufferState> {
        // A panic while holding the lock leaves consistent data: every update is one push.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends trace bytes.
    pub fn write(&self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.bytes.extend_from_slice(chunk);
        state.crc.update(chunk);
        drop(state);
        self.written.notify_one();
    }

    /// All bytes so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().bytes.clone()
    }

    /// The number of bytes so far.
    pub fn len(&self) -> usize {
        self.lock().bytes.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `crc32:<8 lowercase hex digits>` over every byte, as the final update's `checksum`.
    pub fn checksum(&self) -> String {
        format!("crc32:{:08x}", self.lock().crc.clone().finalize())
    }

    /// How many bytes the coordinator has acknowledged.
    pub fn sent(&self) -> usize {
        self.lock().sent
    }

    fn pending(&self) -> Option<(usize, bytes::Bytes)> {
        let state = self.lock();
        if state.sent >= state.bytes.len() {
            return None;
        }
        let end = state.bytes.len().min(state.sent + PATCH_LIMIT);
        Some((
            state.sent,
            bytes::Bytes::copy_from_slice(&state.bytes[state.sent..end]),
        ))
    }

    fn set_sent(&self, sent: usize) {
        let mut state = self.lock();
        state.sent = sent.min(state.bytes.len());
    }

    /// Waits until something is written.
    pub async fn written(&self) {
        self.written.notified().await;
    }
}

/// What the patcher learned from the server that the job must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSignal {
    /// `Job-Status: canceling`: stop the script, run `after_script`, report failed.
    CancelRequested,
    /// 403, or `Job-Status` canceled/failed: stop everything.
    Abort(Option<JobStatus>),
}

/// How one flush ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushEnd {
    /// Everything written so far was acknowledged.
    Complete,
    /// A PATCH failed; the rest stays in the buffer for the next attempt.
    Incomplete,
    /// The server no longer accepts the trace (403/404 or abort).
    Refused,
}

/// Sends one job's trace.
#[derive(Debug)]
pub struct TracePatcher {
    coordinator: Coordinator,
    job: JobId,
    token: JobToken,
    buffer: TraceBuffer,
    debug_trace: bool,
    /// The current update interval (server-controlled).
    pub interval: Duration,
}

impl TracePatcher {
    /// A patcher for `job`'s `buffer`.
    pub fn new(
        coordinator: Coordinator,
        job: JobId,
        token: JobToken,
        buffer: TraceBuffer,
        debug_trace: bool,
    ) -> Self {
        Self {
            coordinator,
            job,
            token,
            buffer,
            debug_trace,
            interval: DEFAULT_UPDATE_INTERVAL,
        }
    }

    /// The buffer this patcher sends.
    pub fn buffer(&self) -> &TraceBuffer {
        &self.buffer
    }

    /// The coordinator it sends to.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// The job.
    pub fn job(&self) -> JobId {
        self.job
    }

    /// Sends everything not yet acknowledged, in PATCHes of at most [`PATCH_LIMIT`] bytes.
    /// Signals from the server are passed to `on_signal`.
    pub async fn flush(&mut self, mut on_signal: impl FnMut(ServerSignal)) -> FlushEnd {
        // 416 answers move `sent`; a server that keeps answering 416 must not loop forever.
        let mut mismatches = 0;
        while let Some((start, chunk)) = self.buffer.pending() {
            let len = chunk.len();
            let outcome = self
                .coordinator
                .patch_trace(self.job, &self.token, start as u64, chunk, self.debug_trace)
                .await;
            match outcome {
                Ok(PatchOutcome::Accepted {
                    job_status,
                    interval,
                    ..
                }) => {
                    self.buffer.set_sent(start + len);
                    if let Some(interval) = interval {
                        self.interval = interval;
                    }
                    if job_status == Some(JobStatus::Canceling) {
                        on_signal(ServerSignal::CancelRequested);
                    }
                }
                Ok(PatchOutcome::RangeMismatch { size }) => {
                    mismatches += 1;
                    if mismatches > 3 {
                        return FlushEnd::Incomplete;
                    }
                    tracing::debug!(job = %self.job, server = size, local = start, "trace range mismatch, resending");
                    self.buffer
                        .set_sent(usize::try_from(size).unwrap_or(usize::MAX));
                }
                Ok(PatchOutcome::Abort { job_status }) => {
                    on_signal(ServerSignal::Abort(job_status));
                    return FlushEnd::Refused;
                }
                Ok(PatchOutcome::NotFound) => return FlushEnd::Refused,
                Ok(PatchOutcome::Failed(status)) => {
                    tracing::warn!(job = %self.job, status, "failed to patch the trace");
                    return FlushEnd::Incomplete;
                }
                Err(err) => {
                    log_client_error(self.job, &err);
                    return FlushEnd::Incomplete;
                }
            }
        }
        FlushEnd::Complete
    }
}

fn log_client_error(job: JobId, err: &ClientError) {
    let chain = error_chain(err);
    tracing::warn!(job = %job, error = %chain, "failed to patch the trace");
}

/// `error: cause: cause` on one line, for operator logs.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::TraceBuffer;

    #[test]
    fn checksum_is_ieee_crc32_of_every_byte() {
        let buffer = TraceBuffer::new();
        buffer.write(b"hello ");
        buffer.write(b"world");
        // crc32("hello world") = 0x0d4a1185 (IEEE).
        assert_eq!(buffer.checksum(), "crc32:0d4a1185");
        assert_eq!(buffer.len(), 11);
    }

    #[test]
    fn pending_chunks_are_at_most_one_mebibyte() {
        let buffer = TraceBuffer::new();
        buffer.write(&vec![b'x'; super::PATCH_LIMIT + 10]);
        let (start, chunk) = buffer.pending().expect("pending bytes");
        assert_eq!((start, chunk.len()), (0, super::PATCH_LIMIT));
        buffer.set_sent(super::PATCH_LIMIT);
        let (start, chunk) = buffer.pending().expect("pending bytes");
        assert_eq!((start, chunk.len()), (super::PATCH_LIMIT, 10));
    }
}
