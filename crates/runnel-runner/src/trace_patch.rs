//! Sending a job's trace to the coordinator: every byte is kept with a `sent` offset, so nothing
//! is lost when a PATCH fails or the server's length differs (gitlab-runner `network/trace.go`,
//! `helpers/trace/buffer.go`).
//!
//! The buffer takes the bytes the job's trace produced (already masked and limited by
//! `runnel-exec`), keeps an IEEE CRC-32 and the byte count for the final update, and the
//! patcher sends `bytes[sent..]` in PATCHes of at most 1 MiB with `Content-Range:
//! <start>-<inclusive end>`. A 416 moves `sent` to the server's size from its `Range` header.
//!
//! The bytes live in an unnamed temporary file, as gitlab-runner keeps its trace in a temporary
//! file: a 416 may ask for any earlier offset, so every byte is kept, and with a raised
//! `output_limit` a trace can be hundreds of MiB that must not sit in the daemon's memory. Only
//! if no temporary file can be created or written does the buffer keep the bytes in memory.

use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::FileExt as _;
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
    store: Store,
    len: usize,
    crc: crc32fast::Hasher,
    sent: usize,
}

/// Where the trace bytes are.
#[derive(Debug)]
enum Store {
    /// An unnamed temporary file (removed by the system when closed).
    File(std::fs::File),
    /// Memory, when no temporary file could be used.
    Memory(Vec<u8>),
}

impl Default for Store {
    fn default() -> Self {
        match tempfile::tempfile() {
            Ok(file) => Self::File(file),
            Err(err) => {
                tracing::warn!("keeping the job trace in memory: no temporary file: {err}");
                Self::Memory(Vec::new())
            }
        }
    }
}

impl BufferState {
    fn append(&mut self, chunk: &[u8]) {
        if let Store::File(file) = &mut self.store
            && let Err(err) = file.write_all(chunk)
        {
            tracing::warn!(
                "keeping the job trace in memory: writing its temporary file failed: {err}"
            );
            let mut bytes = Vec::with_capacity(self.len + chunk.len());
            // A short write may have left part of `chunk` in the file: keep only `len` bytes.
            let read = file
                .rewind()
                .and_then(|()| file.take(self.len as u64).read_to_end(&mut bytes));
            if let Err(err) = read {
                tracing::error!("the job trace lost its first {} bytes: {err}", self.len);
                bytes = vec![0; self.len];
            }
            self.store = Store::Memory(bytes);
        }
        match &mut self.store {
            Store::File(_) => {}
            Store::Memory(bytes) => bytes.extend_from_slice(chunk),
        }
        self.len += chunk.len();
    }

    /// Bytes `start..end`, which are within `len`.
    fn read(&self, start: usize, end: usize) -> Vec<u8> {
        match &self.store {
            Store::Memory(bytes) => bytes[start..end].to_vec(),
            Store::File(file) => {
                let mut chunk = vec![0; end - start];
                if let Err(err) = file.read_exact_at(&mut chunk, start as u64) {
                    // The file was written up to `len`; only a failing disk gets here.
                    tracing::error!("reading the job trace's temporary file failed: {err}");
                }
                chunk
            }
        }
    }
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
        state.append(chunk);
        state.crc.update(chunk);
        drop(state);
        self.written.notify_one();
    }

    /// All bytes so far.
    pub fn contents(&self) -> Vec<u8> {
        let state = self.lock();
        state.read(0, state.len)
    }

    /// The number of bytes so far.
    pub fn len(&self) -> usize {
        self.lock().len
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
        if state.sent >= state.len {
            return None;
        }
        let end = state.len.min(state.sent + PATCH_LIMIT);
        Some((state.sent, bytes::Bytes::from(state.read(state.sent, end))))
    }

    fn set_sent(&self, sent: usize) {
        let mut state = self.lock();
        state.sent = sent.min(state.len);
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
    fn the_trace_is_kept_in_a_file_not_in_memory_and_reads_back_from_any_offset() {
        let buffer = TraceBuffer::new();
        assert!(matches!(buffer.lock().store, super::Store::File(_)));
        let data: Vec<u8> = (0..3 * super::PATCH_LIMIT)
            .map(|i| (i % 251) as u8)
            .collect();
        for chunk in data.chunks(7919) {
            buffer.write(chunk);
        }
        assert_eq!(buffer.contents(), data);
        // A 416 can move `sent` back to any offset the server has.
        buffer.set_sent(12345);
        let (start, chunk) = buffer.pending().expect("pending bytes");
        assert_eq!(start, 12345);
        assert_eq!(&chunk[..], &data[12345..12345 + super::PATCH_LIMIT]);
    }

    #[test]
    fn the_memory_store_behaves_like_the_file() {
        let buffer = TraceBuffer::new();
        buffer.lock().store = super::Store::Memory(Vec::new());
        buffer.write(b"hello ");
        buffer.write(b"world");
        assert_eq!(buffer.contents(), b"hello world");
        buffer.set_sent(6);
        assert_eq!(
            buffer.pending().map(|(s, c)| (s, c.to_vec())),
            Some((6, b"world".to_vec()))
        );
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
