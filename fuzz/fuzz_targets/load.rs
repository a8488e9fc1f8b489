//! Feeds arbitrary bytes through the whole model: YAML, includes, `extends`, `!reference`,
//! keyword validation, rules, matrix expansion and the needs DAG. Any panic is a bug: bad input
//! must give diagnostics, never a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_pipeline::context::PipelineContext;
use runnel_pipeline::diag::render_plain;
use runnel_pipeline::pipeline::Pipeline;
use runnel_pipeline::resolve::{LoadOptions, load_str};
use runnel_pipeline::source::SourceMap;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut map = SourceMap::new();
    // A directory that does not exist: local includes cannot read anything from the machine.
    let opts = LoadOptions::new("/nonexistent/runnel-fuzz");
    let context = PipelineContext::push("main");
    match load_str(&mut map, ".gitlab-ci.yml", text, &opts).and_then(|c| Pipeline::new(&c, &context)) {
        Ok(pipeline) => {
            let _ = pipeline.to_pretty_json();
        }
        Err(diags) => {
            let _ = render_plain(&diags.0, &map);
        }
    }
});
