//! `runnel exec --json`: one JSON document on stdout when the run ends (the schema the
//! conformance harness reads: `/work/shared/conformance/harness.py`).

use std::io::Write as _;

use serde_json::json;

use runnel_local::{Event, JobRecord, Reporter, Summary};

use crate::report::seconds;

pub(crate) struct Json;

impl Reporter for Json {
    fn event(&mut self, _event: &Event, _jobs: &[JobRecord]) {}

    fn finish(&mut self, summary: &Summary) {
        let doc = to_json(summary);
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, &doc);
        let _ = writeln!(out);
    }
}

pub(crate) fn to_json(summary: &Summary) -> serde_json::Value {
    let jobs: Vec<_> = summary
        .jobs
        .iter()
        .map(|job| {
            json!({
                "name": job.name,
                "stage": job.stage,
                "status": job.status,
                "exit_code": job.exit_code,
                "failure_reason": job.failure_reason,
                "output": job.output,
                "coverage": job.coverage,
                "started_seq": job.started_seq,
                "finished_seq": job.finished_seq,
                "duration_s": job.duration.map(seconds),
                "artifacts": job.artifacts,
            })
        })
        .collect();
    json!({
        "status": summary.status,
        "blocked_by": summary.blocking_manual,
        "jobs": jobs,
    })
}
