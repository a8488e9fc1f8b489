//! One conversion per job keyword, from a spanned node to its typed value, with GitLab's
//! validation (lib/gitlab/ci/config/entry/<keyword>.rb). Each reports its errors through the
//! [`Reader`] and returns `None` when the value is unusable.

use crate::diag::Diagnostic;
use crate::job::JobKind;
use crate::job::read::{Reader, parse_duration, scalar_string, to_json};
use crate::job::types::{
    Artifacts, Cache, CacheKey, Environment, Hooks, IdToken, Image, Inherit, InheritList, Need,
    Pages, Release, Retry, Service, Trigger,
};
use crate::keywords;
use crate::matrix::{MatrixRow, PARALLEL_LIMIT, Parallel};
use crate::source::Span;
use crate::when::AllowFailure;
use crate::yaml::{Node, Value};

const PULL_POLICIES: &[&str] = &["always", "never", "if-not-present"];
const ARTIFACTS_WHEN: &[&str] = &["on_success", "on_failure", "always"];
const ARTIFACTS_ACCESS: &[&str] = &["all", "developer", "maintainer", "none"];
const ENVIRONMENT_ACTIONS: &[&str] = &["start", "prepare", "stop", "verify", "access"];
const DEPLOYMENT_TIERS: &[&str] = &["production", "staging", "testing", "development", "other"];
/// GitLab: lib/gitlab/ci/config/entry/caches.rb (`MULTIPLE_CACHE_LIMIT`).
const CACHE_LIMIT: usize = 4;

pub(crate) fn image(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Image> {
    let mut image = Image {
        name: String::new(),
        entrypoint: None,
        pull_policy: Vec::new(),
        docker: None,
        kubernetes: None,
    };
    let missing = format!("`{key}` in {} has no `name`", r.place);
    image.name = named_entry(r, key, node, keywords::IMAGE, missing, |r, sub, k, v| {
        match k {
            "entrypoint" => image.entrypoint = Some(r.strings(sub, v, false)?),
            "pull_policy" => image.pull_policy = pull_policy(r, sub, v)?,
            "docker" => {
                r.keys(sub, v, keywords::DOCKER);
                image.docker = Some(to_json(v));
            }
            "kubernetes" => {
                r.keys(sub, v, keywords::KUBERNETES_EXECUTOR);
                image.kubernetes = Some(to_json(v));
            }
            _ => {}
        }
        Some(())
    })?;
    Some(image)
}

/// A value GitLab takes as a name or as a mapping with `name` (`image`, `services`,
/// `environment`): checks the mapping's keys against `allowed`, hands every key but `name` to
/// `field` (with its `key:sub` path) and returns the name. A mapping without `name` is the
/// error `missing`.
fn named_entry<'a>(
    r: &mut Reader<'a>,
    key: &str,
    node: &Node,
    allowed: &[&str],
    missing: String,
    mut field: impl FnMut(&mut Reader<'a>, &str, &str, &Node) -> Option<()>,
) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Map(entries) => {
            r.keys(key, node, allowed);
            let mut name = None;
            for (k, v) in entries {
                let sub = format!("{key}:{}", k.as_str());
                match k.as_str() {
                    "name" => name = Some(r.string(&sub, v)?),
                    other => field(r, &sub, other, v)?,
                }
            }
            if name.is_none() {
                r.error(r.anchor(node), missing);
            }
            name
        }
        _ => {
            r.expected(key, node, "a string or a mapping with `name`");
            None
        }
    }
}

fn pull_policy(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Vec<String>> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| r.one_of(key, i, PULL_POLICIES))
            .collect(),
        _ => Some(vec![r.one_of(key, node, PULL_POLICIES)?]),
    }
}

pub(crate) fn services(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Vec<Service>> {
    let Value::Seq(items) = &node.value else {
        r.expected(key, node, "a list of services");
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        match &item.value {
            Value::Seq(_) => out.extend(services(r, key, item)?),
            _ => out.push(service(r, key, item)?),
        }
    }
    Some(out)
}

fn service(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Service> {
    let mut service = Service {
        name: String::new(),
        alias: None,
        entrypoint: None,
        command: None,
        pull_policy: Vec::new(),
        variables: Vec::new(),
        docker: None,
        kubernetes: None,
    };
    let missing = format!("a service in `{key}` of {} has no `name`", r.place);
    service.name = named_entry(r, key, node, keywords::SERVICE, missing, |r, sub, k, v| {
        match k {
            "alias" => service.alias = Some(r.string(sub, v)?),
            "entrypoint" => service.entrypoint = Some(r.strings(sub, v, false)?),
            "command" => service.command = Some(r.strings(sub, v, false)?),
            "pull_policy" => service.pull_policy = pull_policy(r, sub, v)?,
            "variables" => {
                let vars = crate::variables::read_variables(
                    r,
                    sub,
                    v,
                    crate::variables::VariablesPlace::Rule,
                );
                service.variables = vars.into_iter().map(|v| (v.name, v.value)).collect();
            }
            "docker" => {
                r.keys(sub, v, keywords::DOCKER);
                service.docker = Some(to_json(v));
            }
            "kubernetes" => {
                r.keys(sub, v, keywords::KUBERNETES_EXECUTOR);
                service.kubernetes = Some(to_json(v));
            }
            _ => {}
        }
        Some(())
    })?;
    Some(service)
}

pub(crate) fn artifacts(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Artifacts> {
    let entries = r.map(key, node)?;
    r.keys(key, node, keywords::ARTIFACTS);
    let mut a = Artifacts {
        when: "on_success".to_owned(),
        ..Artifacts::default()
    };
    for (k, v) in entries {
        let sub = format!("{key}:{}", k.as_str());
        match k.as_str() {
            "name" => a.name = Some(r.scalar(&sub, v)?),
            "paths" => a.paths = r.strings(&sub, v, false)?,
            "exclude" => a.exclude = r.strings(&sub, v, false)?,
            "untracked" => a.untracked = Some(r.boolean(&sub, v)?),
            "when" => a.when = r.one_of(&sub, v, ARTIFACTS_WHEN)?,
            "expire_in" => a.expire_in = Some(duration(r, &sub, v)?.0),
            "expose_as" => a.expose_as = Some(r.string(&sub, v)?),
            "access" => a.access = Some(r.one_of(&sub, v, ARTIFACTS_ACCESS)?),
            "public" => {
                r.boolean(&sub, v)?;
            }
            "reports" => a.reports = reports(r, &sub, v)?,
            _ => {}
        }
    }
    Some(a)
}

fn reports(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Vec<(String, serde_json::Value)>> {
    let entries = r.map(key, node)?;
    r.keys(key, node, keywords::REPORTS);
    let mut out = Vec::new();
    for (k, v) in entries {
        let sub = format!("{key}:{}", k.as_str());
        if !keywords::REPORTS.contains(&k.as_str()) {
            continue;
        }
        let value = if k.as_str() == "coverage_report" {
            r.map(&sub, v)?;
            r.keys(&sub, v, keywords::COVERAGE_REPORT);
            to_json(v)
        } else {
            serde_json::Value::from(r.strings(&sub, v, true)?)
        };
        out.push((k.as_str().to_owned(), value));
    }
    Some(out)
}

/// `cache:` (one mapping or a list of at most four). `cache: []` disables a default cache.
pub(crate) fn caches(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Vec<Cache>> {
    match &node.value {
        Value::Map(_) => Some(vec![cache(r, key, node)?]),
        Value::Seq(items) => {
            if items.len() > CACHE_LIMIT {
                r.error(
                    r.anchor(node),
                    format!(
                        "`{key}` in {}: at most {CACHE_LIMIT} caches are allowed, found {}",
                        r.place,
                        items.len()
                    ),
                );
                return None;
            }
            // GitLab: caches.rb counts the entries as written, then the ComposableArray
            // flattens nested lists (from `!reference` or anchors).
            let (flat, _) = node.flattened()?;
            flat.into_iter().map(|i| cache(r, key, i)).collect()
        }
        Value::Null => Some(Vec::new()),
        _ => {
            r.expected(key, node, "a mapping or a list of mappings");
            None
        }
    }
}

fn cache(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Cache> {
    let entries = r.map(key, node)?;
    r.keys(key, node, keywords::CACHE);
    let mut c = Cache {
        key: CacheKey::Literal("default".to_owned()),
        paths: Vec::new(),
        untracked: false,
        policy: "pull-push".to_owned(),
        when: "on_success".to_owned(),
        unprotect: false,
        fallback_keys: Vec::new(),
    };
    for (k, v) in entries {
        let sub = format!("{key}:{}", k.as_str());
        match k.as_str() {
            "key" => c.key = cache_key(r, &sub, v)?,
            "paths" => c.paths = r.strings(&sub, v, false)?,
            "untracked" => c.untracked = r.boolean(&sub, v)?,
            "unprotect" => c.unprotect = r.boolean(&sub, v)?,
            "when" => c.when = r.one_of(&sub, v, ARTIFACTS_WHEN)?,
            "fallback_keys" => c.fallback_keys = r.strings(&sub, v, false)?,
            "policy" => {
                let policy = r.string(&sub, v)?;
                // GitLab: entry/cache.rb — a policy may come from a variable (`$CACHE_POLICY`).
                if !["pull-push", "pull", "push"].contains(&policy.as_str())
                    && !policy.starts_with('$')
                {
                    r.one_of(&sub, v, &["pull-push", "pull", "push"]);
                    return None;
                }
                c.policy = policy;
            }
            _ => {}
        }
    }
    Some(c)
}

fn cache_key(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<CacheKey> {
    match &node.value {
        Value::Map(entries) => {
            r.keys(key, node, keywords::CACHE_KEY);
            let mut files = None;
            let mut prefix = None;
            for (k, v) in entries {
                let sub = format!("{key}:{}", k.as_str());
                match k.as_str() {
                    "files" | "files_commits" => files = Some(r.strings(&sub, v, false)?),
                    "prefix" => prefix = Some(r.scalar(&sub, v)?),
                    _ => {}
                }
            }
            let Some(files) = files else {
                r.error(
                    r.anchor(node),
                    format!("`{key}` in {} has no `files`", r.place),
                );
                return None;
            };
            // GitLab: entry/files.rb — one or two files.
            if files.is_empty() || files.len() > 2 {
                r.error(
                    r.anchor(node),
                    format!("`{key}:files` in {}: expected one or two files", r.place),
                );
                return None;
            }
            Some(CacheKey::Files { files, prefix })
        }
        _ => {
            let value = r.scalar(key, node)?;
            // GitLab: entry/cache/key.rb — a key cannot be `.` or `..` or contain `/`.
            if value.contains('/') || value == "." || value == ".." {
                r.error(
                    r.anchor(node),
                    format!(
                        "`{key}` in {}: a cache key cannot contain `/` or be `.` or `..`",
                        r.place
                    ),
                );
                return None;
            }
            Some(CacheKey::Literal(value))
        }
    }
}

/// `needs:` (also `rules:needs`). Strings, `{job, artifacts, optional, parallel}`,
/// `{pipeline, job}`, `{project, job, ref}`.
pub(crate) fn needs(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Vec<Need>> {
    let items: &[Node] = match &node.value {
        Value::Seq(items) => items,
        _ => {
            r.expected(key, node, "a list of needs");
            return None;
        }
    };
    let mut out = Vec::new();
    for item in items {
        match &item.value {
            Value::Str(s) => out.push(Need::Job {
                job: s.clone(),
                artifacts: true,
                optional: false,
                matrix: None,
                span: item.span,
            }),
            Value::Seq(_) => out.extend(needs(r, key, item)?),
            Value::Map(_) => out.push(need(r, key, item)?),
            _ => {
                r.expected(key, item, "a job name or a mapping with `job`");
                return None;
            }
        }
    }
    Some(out)
}

/// Whether `needs:` (a list or one mapping) holds a bridge need.
pub(crate) fn has_bridge_need(node: &Node) -> bool {
    match &node.value {
        Value::Map(_) => is_bridge_need(node),
        Value::Seq(items) => items.iter().any(is_bridge_need),
        _ => false,
    }
}

/// GitLab: EE entry/need.rb — a mapping without `job` and `project` is a `BridgeHash` need.
fn is_bridge_need(node: &Node) -> bool {
    node.as_map().is_some() && node.get("job").is_none() && node.get("project").is_none()
}

/// A job's `needs:`: a list, or one mapping (GitLab: entry/needs.rb takes a Hash or an Array).
/// Returns the needs and the bridge need's `pipeline`. GitLab: entry/bridge.rb allows one bridge
/// need (`{pipeline: other/project}`) in a trigger job and entry/job.rb none.
pub(crate) fn job_needs(
    r: &mut Reader<'_>,
    key: &str,
    node: &Node,
    kind: JobKind,
) -> (Option<Vec<Need>>, Option<String>) {
    let items: Vec<&Node> = match &node.value {
        Value::Map(_) => vec![node],
        Value::Seq(items) => items.iter().collect(),
        _ => return (needs(r, key, node), None),
    };
    let (bridges, others): (Vec<&Node>, Vec<&Node>) =
        items.into_iter().partition(|n| is_bridge_need(n));
    let others = Node::new(node.span, Value::Seq(others.into_iter().cloned().collect()));
    let needs = needs(r, key, &others);
    let name = r.place.clone();
    let mut upstream = None;
    for bridge in &bridges {
        let Some(pipeline) = bridge.get("pipeline") else {
            r.error(
                bridge.span,
                format!("a need in `{key}` of {name} has no `job`"),
            );
            continue;
        };
        if !r.keys(key, bridge, &["pipeline"]) {
            continue;
        }
        let Some(pipeline) = r.string(&format!("{key}:pipeline"), pipeline) else {
            continue;
        };
        if kind == JobKind::Build {
            let gitlab_name = name.trim_start_matches("job `").trim_end_matches('`');
            r.push(
                Diagnostic::error(
                    bridge.span,
                    format!(
                        "`{key}` of {name}: `pipeline` without `job` mirrors an upstream pipeline, which only a trigger job can do"
                    ),
                )
                .with_code("bridge-need")
                .with_help("add `job:` to download that pipeline's artifacts, or use `trigger:`")
                .with_note(
                    Span::synthetic(),
                    format!("GitLab reports: jobs:{gitlab_name}:needs config uses invalid types: bridge"),
                ),
            );
        } else if upstream.is_some() {
            let gitlab_name = name.trim_start_matches("job `").trim_end_matches('`');
            r.push(
                Diagnostic::error(
                    bridge.span,
                    format!("{name} has more than one `needs:pipeline` bridge need"),
                )
                .with_code("bridge-need")
                .with_note(
                    Span::synthetic(),
                    format!("GitLab reports: jobs:{gitlab_name} config should contain at most one bridge need"),
                ),
            );
        } else {
            upstream = Some(pipeline);
        }
    }
    // GitLab: entry/bridge.rb `value` — a bridge with a bridge need is scheduled by stage
    // (`scheduling_type: needs_defined? && !bridge_needs ? :dag : :stage`).
    if upstream.is_some() {
        return (None, upstream);
    }
    (needs, upstream)
}

fn need(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Need> {
    r.keys(key, node, keywords::NEED);
    let entries = node.as_map()?;
    let (mut job, mut pipeline, mut project, mut ref_name) = (None, None, None, None);
    let (mut artifacts, mut optional, mut matrix) = (true, false, None);
    for (k, v) in entries {
        let sub = format!("{key}:{}", k.as_str());
        match k.as_str() {
            "job" => job = Some(r.string(&sub, v)?),
            "pipeline" => pipeline = Some(r.scalar(&sub, v)?),
            "project" => project = Some(r.string(&sub, v)?),
            "ref" => ref_name = Some(r.scalar(&sub, v)?),
            "artifacts" => artifacts = r.boolean(&sub, v)?,
            "optional" => optional = r.boolean(&sub, v)?,
            "parallel" => {
                r.keys(&sub, v, keywords::PARALLEL);
                let m = v.get("matrix");
                let Some(m) = m else {
                    r.error(v.span, format!("`{sub}` in {} has no `matrix`", r.place));
                    return None;
                };
                let rows = matrix_rows(r, &format!("{sub}:matrix"), m)?;
                let count = Parallel::Matrix(rows.clone()).instance_count();
                if count > PARALLEL_LIMIT {
                    r.error(
                        m.span,
                        format!("`{sub}:matrix` in {} selects {count} jobs, more than the maximum of {PARALLEL_LIMIT}", r.place),
                    );
                    return None;
                }
                matrix = Some(rows);
            }
            _ => {}
        }
    }
    let Some(job) = job else {
        r.error(
            r.anchor(node),
            format!("a need in `{key}` of {} has no `job`", r.place),
        );
        return None;
    };
    Some(match (pipeline, project) {
        (Some(pipeline), _) => Need::Pipeline {
            pipeline,
            job,
            artifacts,
        },
        (None, Some(project)) => {
            let Some(ref_name) = ref_name else {
                r.error(
                    r.anchor(node),
                    format!("a project need in `{key}` of {} has no `ref`", r.place),
                );
                return None;
            };
            Need::Project {
                project,
                job,
                ref_name,
                artifacts,
            }
        }
        (None, None) => Need::Job {
            job,
            artifacts,
            optional,
            matrix,
            span: node.span,
        },
    })
}

/// `parallel:`.
pub(crate) fn parallel(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Parallel> {
    match &node.value {
        Value::Int(n) => {
            let limit = i64::try_from(PARALLEL_LIMIT).unwrap_or(i64::MAX);
            if (1..=limit).contains(n) {
                u32::try_from(*n).ok().map(Parallel::Number)
            } else {
                r.expected(key, node, &format!("an integer from 1 to {PARALLEL_LIMIT}"));
                None
            }
        }
        Value::Map(_) => {
            r.keys(key, node, keywords::PARALLEL);
            let Some(m) = node.get("matrix") else {
                r.error(
                    r.anchor(node),
                    format!("`{key}` in {} has no `matrix`", r.place),
                );
                return None;
            };
            let rows = matrix_rows(r, &format!("{key}:matrix"), m)?;
            let parallel = Parallel::Matrix(rows);
            // GitLab: entry/product/matrix.rb.
            if parallel.instance_count() > PARALLEL_LIMIT {
                r.error(
                    m.span,
                    format!(
                        "`{key}:matrix` in {} generates {} jobs, more than the maximum of {PARALLEL_LIMIT}",
                        r.place,
                        parallel.instance_count()
                    ),
                );
                return None;
            }
            Some(parallel)
        }
        _ => {
            r.expected(key, node, "an integer or a mapping with `matrix`");
            None
        }
    }
}

fn matrix_rows(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Vec<MatrixRow>> {
    let Value::Seq(items) = &node.value else {
        r.expected(key, node, "a list of mappings");
        return None;
    };
    let mut rows = Vec::new();
    for item in items {
        let entries = r.map(key, item)?;
        if entries.is_empty() {
            r.error(
                item.span,
                format!(
                    "`{key}` in {}: a matrix entry needs at least one variable",
                    r.place
                ),
            );
            return None;
        }
        let mut row = Vec::new();
        for (k, v) in entries {
            let sub = format!("{key}:{}", k.as_str());
            // GitLab: entry/product/variables.rb — `Array(value).map(&:to_s)`.
            let values = match &v.value {
                Value::Seq(vals) => vals
                    .iter()
                    .map(|x| {
                        let s = scalar_string(x);
                        if s.is_none() {
                            r.expected(&sub, x, "a string");
                        }
                        s
                    })
                    .collect::<Option<Vec<_>>>()?,
                _ => match scalar_string(v) {
                    Some(s) => vec![s],
                    None => {
                        r.expected(&sub, v, "a string or a list of strings");
                        return None;
                    }
                },
            };
            row.push((k.as_str().to_owned(), values));
        }
        rows.push(row);
    }
    Some(rows)
}

/// `retry:` — an integer 0..=2 or `{max, when, exit_codes}`. GitLab: entry/retry.rb.
pub(crate) fn retry(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Retry> {
    let max_of = |r: &mut Reader<'_>, k: &str, n: &Node| -> Option<u8> {
        match n.value {
            Value::Int(i @ 0..=2) => u8::try_from(i).ok(),
            _ => {
                r.expected(k, n, "an integer from 0 to 2");
                None
            }
        }
    };
    match &node.value {
        Value::Int(_) => Some(Retry {
            max: max_of(r, key, node)?,
            when: Vec::new(),
            exit_codes: Vec::new(),
        }),
        Value::Map(entries) => {
            r.keys(key, node, keywords::RETRY);
            let mut retry = Retry {
                max: 0,
                when: Vec::new(),
                exit_codes: Vec::new(),
            };
            for (k, v) in entries {
                let sub = format!("{key}:{}", k.as_str());
                match k.as_str() {
                    "max" => retry.max = max_of(r, &sub, v)?,
                    "when" => {
                        let items: Vec<&Node> = match &v.value {
                            Value::Seq(items) => items.iter().collect(),
                            _ => vec![v],
                        };
                        for item in items {
                            retry.when.push(r.one_of(&sub, item, keywords::RETRY_WHEN)?);
                        }
                    }
                    "exit_codes" => retry.exit_codes = r.integers(&sub, v)?,
                    _ => {}
                }
            }
            Some(retry)
        }
        _ => {
            r.expected(key, node, "an integer from 0 to 2 or a mapping");
            None
        }
    }
}

/// `allow_failure:` — a boolean or `{exit_codes}`. GitLab: entry/allow_failure.rb.
pub(crate) fn allow_failure(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<AllowFailure> {
    match &node.value {
        Value::Bool(b) => Some(AllowFailure::Bool(*b)),
        Value::Map(_) => {
            r.keys(key, node, &["exit_codes"]);
            let Some(codes) = node.get("exit_codes") else {
                r.error(
                    r.anchor(node),
                    format!("`{key}` in {} has no `exit_codes`", r.place),
                );
                return None;
            };
            let codes = r.integers(&format!("{key}:exit_codes"), codes)?;
            let codes = codes
                .into_iter()
                .filter_map(|c| i32::try_from(c).ok())
                .collect();
            Some(AllowFailure::ExitCodes { exit_codes: codes })
        }
        _ => {
            r.expected(key, node, "a boolean or a mapping with `exit_codes`");
            None
        }
    }
}

/// A duration keyword (`timeout`, `start_in`, `expire_in`): the text and its seconds.
pub(crate) fn duration(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<(String, u64)> {
    let text = r.scalar(key, node)?;
    // GitLab: `expire_in: never` keeps artifacts forever.
    if key.ends_with("expire_in") && text == "never" {
        return Some((text, u64::MAX));
    }
    match parse_duration(&text) {
        Some(seconds) => Some((text, seconds)),
        None => {
            r.expected(key, node, "a duration such as `30 minutes` or `1h 30m`");
            None
        }
    }
}

pub(crate) fn environment(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Environment> {
    let mut env = Environment {
        name: String::new(),
        url: None,
        on_stop: None,
        action: "start".to_owned(),
        auto_stop_in: None,
        deployment_tier: None,
        kubernetes: None,
        span: node.span,
    };
    let missing = format!("`{key}` in {} has no `name`", r.place);
    env.name = named_entry(
        r,
        key,
        node,
        keywords::ENVIRONMENT,
        missing,
        |r, sub, k, v| {
            match k {
                "url" => env.url = Some(r.string(sub, v)?),
                "on_stop" => env.on_stop = Some(r.string(sub, v)?),
                "action" => env.action = r.one_of(sub, v, ENVIRONMENT_ACTIONS)?,
                "auto_stop_in" => env.auto_stop_in = Some(r.scalar(sub, v)?),
                "deployment_tier" => {
                    env.deployment_tier = Some(r.one_of(sub, v, DEPLOYMENT_TIERS)?);
                }
                "kubernetes" => {
                    r.keys(sub, v, keywords::ENVIRONMENT_KUBERNETES);
                    env.kubernetes = Some(to_json(v));
                }
                _ => {}
            }
            Some(())
        },
    )?;
    Some(env)
}

pub(crate) fn trigger(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Trigger> {
    let mut t = Trigger {
        project: None,
        branch: None,
        include: None,
        strategy: None,
        forward: None,
        inputs: None,
    };
    match &node.value {
        Value::Str(s) => t.project = Some(s.clone()),
        Value::Map(entries) => {
            r.keys(key, node, keywords::TRIGGER);
            for (k, v) in entries {
                let sub = format!("{key}:{}", k.as_str());
                match k.as_str() {
                    "project" => t.project = Some(r.string(&sub, v)?),
                    "branch" => t.branch = Some(r.scalar(&sub, v)?),
                    "include" => t.include = Some(to_json(v)),
                    "strategy" => t.strategy = Some(r.one_of(&sub, v, &["depend", "mirror"])?),
                    "forward" => {
                        r.keys(&sub, v, keywords::TRIGGER_FORWARD);
                        t.forward = Some(to_json(v));
                    }
                    "inputs" => t.inputs = Some(to_json(v)),
                    _ => {}
                }
            }
            if t.project.is_some() == t.include.is_some() {
                r.error(
                    r.anchor(node),
                    format!(
                        "`{key}` in {} needs exactly one of `project` and `include`",
                        r.place
                    ),
                );
                return None;
            }
        }
        _ => {
            r.expected(key, node, "a project path or a mapping");
            return None;
        }
    }
    Some(t)
}

pub(crate) fn release(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Release> {
    let entries = r.map(key, node)?;
    r.keys(key, node, keywords::RELEASE);
    let mut rel = Release {
        tag_name: String::new(),
        description: String::new(),
        name: None,
        tag_message: None,
        ref_name: None,
        milestones: Vec::new(),
        released_at: None,
        assets: None,
    };
    let (mut tag, mut description) = (false, false);
    for (k, v) in entries {
        let sub = format!("{key}:{}", k.as_str());
        match k.as_str() {
            "tag_name" => {
                rel.tag_name = r.scalar(&sub, v)?;
                tag = true;
            }
            "description" => {
                rel.description = r.scalar(&sub, v)?;
                description = true;
            }
            "name" => rel.name = Some(r.scalar(&sub, v)?),
            "tag_message" => rel.tag_message = Some(r.scalar(&sub, v)?),
            "ref" => rel.ref_name = Some(r.scalar(&sub, v)?),
            "milestones" => rel.milestones = r.strings(&sub, v, true)?,
            "released_at" => rel.released_at = Some(r.scalar(&sub, v)?),
            "assets" => {
                r.keys(&sub, v, keywords::RELEASE_ASSETS);
                if let Some(Value::Seq(links)) = v.get("links").map(|l| &l.value) {
                    for link in links {
                        r.keys(&format!("{sub}:links"), link, keywords::RELEASE_LINK);
                    }
                }
                rel.assets = Some(to_json(v));
            }
            _ => {}
        }
    }
    // GitLab: entry/release.rb — `tag_name` and `description` are required.
    for (present, name) in [(tag, "tag_name"), (description, "description")] {
        if !present {
            r.error(
                r.anchor(node),
                format!("`{key}` in {} has no `{name}`", r.place),
            );
        }
    }
    (tag && description).then_some(rel)
}

/// `pages:` — `true`/`false` or `{publish, path_prefix, expire_in}`. `None` inside the option
/// means `pages: false`.
pub(crate) fn pages(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Option<Pages>> {
    let mut p = Pages {
        publish: "public".to_owned(),
        path_prefix: None,
        expire_in: None,
    };
    match &node.value {
        Value::Bool(false) => return Some(None),
        Value::Bool(true) => {}
        Value::Map(entries) => {
            r.keys(key, node, keywords::PAGES);
            for (k, v) in entries {
                let sub = format!("{key}:{}", k.as_str());
                match k.as_str() {
                    "publish" => p.publish = r.string(&sub, v)?,
                    "path_prefix" => p.path_prefix = Some(r.scalar(&sub, v)?),
                    "expire_in" => p.expire_in = Some(r.scalar(&sub, v)?),
                    _ => {}
                }
            }
        }
        _ => {
            r.expected(key, node, "a boolean or a mapping");
            return None;
        }
    }
    Some(Some(p))
}

pub(crate) fn hooks(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Hooks> {
    let entries = r.map(key, node)?;
    r.keys(key, node, keywords::HOOKS);
    let mut h = Hooks::default();
    for (k, v) in entries {
        if k.as_str() == "pre_get_sources_script" {
            h.pre_get_sources_script = r.commands(&format!("{key}:{}", k.as_str()), v)?;
        }
    }
    Some(h)
}

pub(crate) fn id_tokens(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Vec<IdToken>> {
    let entries = r.map(key, node)?;
    let mut out = Vec::new();
    for (k, v) in entries {
        let sub = format!("{key}:{}", k.as_str());
        r.map(&sub, v)?;
        r.keys(&sub, v, keywords::ID_TOKEN);
        let Some(aud) = v.get("aud") else {
            r.error(v.span, format!("`{sub}` in {} has no `aud`", r.place));
            return None;
        };
        let aud = r.strings(&format!("{sub}:aud"), aud, true)?;
        out.push(IdToken {
            name: k.as_str().to_owned(),
            aud,
        });
    }
    Some(out)
}

pub(crate) fn secrets(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<serde_json::Value> {
    let entries = r.map(key, node)?;
    for (k, v) in entries {
        let sub = format!("{key}:{}", k.as_str());
        r.map(&sub, v)?;
        r.keys(&sub, v, keywords::SECRET);
    }
    Some(to_json(node))
}

/// `inherit:`. GitLab: entry/inherit/default.rb, entry/inherit/variables.rb.
pub(crate) fn inherit(r: &mut Reader<'_>, key: &str, node: &Node) -> Option<Inherit> {
    let entries = r.map(key, node)?;
    r.keys(key, node, keywords::INHERIT);
    let mut inherit = Inherit::default();
    for (k, v) in entries {
        let sub = format!("{key}:{}", k.as_str());
        let value = match &v.value {
            Value::Bool(b) => InheritList::All(*b),
            Value::Seq(items) => {
                let mut names = Vec::new();
                for item in items {
                    let name = if k.as_str() == "default" {
                        r.one_of(&sub, item, keywords::INHERIT_DEFAULT)?
                    } else {
                        r.string(&sub, item)?
                    };
                    names.push(name);
                }
                InheritList::Only(names)
            }
            _ => {
                r.expected(&sub, v, "a boolean or a list");
                return None;
            }
        };
        match k.as_str() {
            "default" => inherit.default = value,
            "variables" => inherit.variables = value,
            _ => {}
        }
    }
    Some(inherit)
}
