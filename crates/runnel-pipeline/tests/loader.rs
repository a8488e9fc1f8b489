//! Loader fixtures: each `tests/fixtures/<area>/<case>.gitlab-ci.yml` is loaded with
//! `runnel_pipeline::resolve::load` and its merged root (JSON) or rendered errors are snapshotted.
//!
//! A case's included files live in a folder named after the case (its project directory).
//! `include:project`/`component`/`template` read `fixtures/include/_projects/`, and remote
//! includes are served from `fixtures/include/_remote/<host>/<path>` by a map-backed fetcher
//! (plus one test over a real socket).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use runnel_pipeline::diag::render_plain;
use runnel_pipeline::include::Fetcher;
use runnel_pipeline::resolve::{LoadOptions, load, load_str};
use runnel_pipeline::source::{SourceMap, Span};
use runnel_pipeline::yaml::{Node, Value};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Serves `https://<host>/<path>` from `fixtures/include/_remote/<host>/<path>`.
fn fixture_fetcher(url: &str) -> Result<String, String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = fixtures_dir().join("include/_remote").join(rest);
    std::fs::read_to_string(path).map_err(|_| "404 Not Found".to_owned())
}

/// The `# context:` header: `var=NAME=value`, `input=name=value` and `changed=path` items.
struct Case {
    variables: Vec<(String, String)>,
    inputs: Vec<(String, Node)>,
    changed: Option<Vec<String>>,
}

impl Case {
    fn read(text: &str) -> Case {
        let mut case = Case {
            variables: Vec::new(),
            inputs: Vec::new(),
            changed: None,
        };
        let Some(line) = text
            .lines()
            .take(3)
            .find_map(|l| l.strip_prefix("# context:"))
        else {
            return case;
        };
        for item in line.split_whitespace() {
            if let Some(var) = item.strip_prefix("var=")
                && let Some((k, v)) = var.split_once('=')
            {
                case.variables.push((k.to_owned(), v.to_owned()));
            } else if let Some(path) = item.strip_prefix("changed=") {
                case.changed
                    .get_or_insert_with(Vec::new)
                    .push(path.to_owned());
            } else if let Some(input) = item.strip_prefix("input=")
                && let Some((k, v)) = input.split_once('=')
            {
                let node = Node::new(Span::synthetic(), Value::Str(v.to_owned()));
                case.inputs.push((k.to_owned(), node));
            }
        }
        case
    }
}

fn run_case(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    assert!(
        text.starts_with("# gitlab: "),
        "{} must start with `# gitlab: <source>`",
        path.display()
    );
    let case = Case::read(&text);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let case_dir = path.with_file_name(name.trim_end_matches(".gitlab-ci.yml"));
    let fetcher = fixture_fetcher;
    let mut opts = LoadOptions::new(case_dir);
    opts.projects_dir = Some(fixtures_dir().join("include/_projects"));
    opts.fetcher = Some(&fetcher);
    opts.variables = case.variables;
    opts.inputs = case.inputs;
    opts.changed_files = case.changed;
    let mut map = SourceMap::new();
    match load_str(&mut map, ".gitlab-ci.yml", text, &opts) {
        Ok(config) => serde_json::to_string_pretty(&config.to_json()).expect("JSON serializes"),
        Err(diags) => render_plain(&diags.0, &map),
    }
}

#[test]
fn fixtures() {
    insta::glob!(
        "fixtures/{yaml,include,extends,reference,inputs}/*.gitlab-ci.yml",
        |path| {
            insta::assert_snapshot!(run_case(path));
        }
    );
}

/// A one-request-per-connection HTTP server on 127.0.0.1 (a test double: GitLab's remote
/// includes are plain HTTP GETs).
fn serve(body: &'static str, requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    let handle = std::thread::spawn(move || {
        let mut paths = Vec::new();
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("read request");
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let response = if path.ends_with("/ci.yml") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            stream
                .write_all(response.as_bytes())
                .expect("write response");
            paths.push(path);
        }
        paths
    });
    (format!("http://{addr}"), handle)
}

/// A minimal HTTP GET over a std `TcpStream`.
struct TcpFetcher;

impl Fetcher for TcpFetcher {
    fn fetch(&self, url: &str) -> Result<String, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http:// in this test")?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = TcpStream::connect(host).map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or("malformed response")?;
        let status = head.lines().next().unwrap_or_default();
        if !status.contains(" 200 ") {
            return Err(status.trim_start_matches("HTTP/1.1 ").to_owned());
        }
        Ok(body.to_owned())
    }
}

#[test]
fn remote_include_is_fetched_over_http_once_per_url() {
    let (base, server) = serve("remote_job:\n  script: echo remote\n", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join(".gitlab-ci.yml");
    let text = format!(
        "include:\n  - remote: {base}/ci.yml\n  - {base}/ci.yml\n  - remote: {base}/missing.yml\nlocal_job:\n  script: echo local\n"
    );
    std::fs::write(&root, text).expect("write pipeline");
    let mut opts = LoadOptions::new(dir.path());
    let fetcher = TcpFetcher;
    opts.fetcher = Some(&fetcher);
    let mut map = SourceMap::new();
    let err = load(&mut map, &root, &opts).expect_err("the missing remote file is an error");
    let rendered = render_plain(&err.0, &map);
    assert_eq!(err.len(), 1, "{rendered}");
    assert!(
        rendered.contains("missing.yml` could not be fetched because of 404 Not Found"),
        "{rendered}"
    );
    let paths = server.join().expect("server thread");
    assert_eq!(paths, vec!["/ci.yml".to_owned(), "/missing.yml".to_owned()]);
}

/// Every fixture (and every file it includes), cut short at many places and garbled with YAML
/// punctuation, loads to `Ok` or `Err` without panicking.
#[test]
fn truncated_and_garbled_fixtures_never_panic() {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(fixtures_dir())
        .into_iter()
        .filter_map(Result::ok)
    {
        let path = entry.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
        if entry.file_type().is_file() && is_yaml {
            files.push(path.to_path_buf());
        }
    }
    assert!(files.len() > 40, "found only {} fixture files", files.len());
    let inserts = [
        "[",
        "{",
        ":",
        "- ",
        "&a ",
        "*a",
        "!reference ",
        "<<: ",
        "\t",
        "'",
        "\"",
        "$[[ ",
    ];
    for path in files {
        let text = std::fs::read_to_string(&path).expect("fixture is readable");
        let dir = path.parent().expect("fixtures have a parent").to_path_buf();
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let step = (boundaries.len() / 25).max(1);
        let mut variants: Vec<String> = boundaries
            .iter()
            .step_by(step)
            .map(|&i| text[..i].to_owned())
            .collect();
        for (n, &i) in boundaries.iter().step_by(step).enumerate() {
            let insert = inserts[n % inserts.len()];
            variants.push(format!("{}{insert}{}", &text[..i], &text[i..]));
        }
        for variant in variants {
            let fetcher = fixture_fetcher;
            let mut opts = LoadOptions::new(&dir);
            opts.projects_dir = Some(fixtures_dir().join("include/_projects"));
            opts.fetcher = Some(&fetcher);
            let mut map = SourceMap::new();
            if let Err(diags) = load_str(&mut map, ".gitlab-ci.yml", variant, &opts) {
                // Rendering must not panic either, whatever the spans.
                let _ = render_plain(&diags.0, &map);
            }
        }
    }
}

/// 1,000 jobs over 50 included files, each job extending a two-level chain, load completely.
/// (Timing is measured with `cargo test --release`, not asserted.)
#[test]
fn large_pipeline_over_many_includes_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut root = String::from("include:\n");
    for file in 0..50 {
        root.push_str(&format!("  - local: ci/part{file}.yml\n"));
        let mut text = format!(
            ".base{file}:\n  image: alpine\n  variables:\n    FILE: \"{file}\"\n  before_script: [echo base]\n.mid{file}:\n  extends: .base{file}\n  tags: [docker]\n"
        );
        for job in 0..20 {
            text.push_str(&format!(
                "job_{file}_{job}:\n  extends: .mid{file}\n  stage: test\n  script:\n    - !reference [.base{file}, before_script]\n    - echo {job}\n  variables:\n    JOB: \"{job}\"\n"
            ));
        }
        let path = dir.path().join(format!("ci/part{file}.yml"));
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create ci/");
        std::fs::write(path, text).expect("write part");
    }
    std::fs::write(dir.path().join(".gitlab-ci.yml"), root).expect("write root");
    let opts = LoadOptions::new(dir.path());
    let mut map = SourceMap::new();
    let mut best = std::time::Duration::MAX;
    for _ in 0..4 {
        let started = std::time::Instant::now();
        let _ = load(
            &mut SourceMap::new(),
            &dir.path().join(".gitlab-ci.yml"),
            &opts,
        );
        best = best.min(started.elapsed());
    }
    let config = load(&mut map, &dir.path().join(".gitlab-ci.yml"), &opts).expect("loads");
    eprintln!("loaded 1,000 jobs from 51 files in {best:?} (best of 4)");
    let jobs = config.root.as_map().expect("a mapping");
    assert_eq!(
        jobs.iter()
            .filter(|(k, _)| k.name.starts_with("job_"))
            .count(),
        1000
    );
    let job = config.root.get("job_49_19").expect("last job");
    assert_eq!(job.get("image").and_then(Node::as_str), Some("alpine"));
    let vars = job.get("variables").expect("variables");
    assert_eq!(vars.get("FILE").and_then(Node::as_str), Some("49"));
    assert_eq!(vars.get("JOB").and_then(Node::as_str), Some("19"));
    let script: Vec<&str> = job
        .get("script")
        .and_then(Node::as_seq)
        .expect("script")
        .iter()
        .filter_map(Node::as_str)
        .collect();
    assert_eq!(script, ["echo base", "echo 19"]);
}

proptest::proptest! {
    /// Random text made of YAML punctuation, keywords and interpolation never panics the loader.
    #[test]
    fn random_yaml_like_text_never_panics(
        text in r#"([a-z_]{1,8}|[:\-\[\]{}&*!<>|'" ,#~.$]|\n {0,4}|[0-9]{1,4}|!reference|<<|\$\[\[ inputs\.[a-z] \]\]|extends|include|---\n){0,60}"#
    ) {
        let opts = LoadOptions::new(fixtures_dir().join("include/local_string"));
        let mut map = SourceMap::new();
        if let Err(diags) = load_str(&mut map, ".gitlab-ci.yml", text, &opts) {
            let _ = render_plain(&diags.0, &map);
        }
    }
}
