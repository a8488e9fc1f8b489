//! The parts of a job payload that come from the job's keywords: steps, artifacts, cache,
//! image and services, dependencies. GitLab: app/presenters/ci/build_runner_presenter.rb and
//! lib/api/entities/ci/job_request/*.rb.

use runnel_api::{
    ArtifactSpec, ArtifactsFile, CachePolicy, CacheSpec, Dependency, DockerExecutorOpts,
    ExecutorOpts, Image, JobId, JobToken, JobVariable, KubernetesExecutorOpts, Step, When,
};

use crate::job::{Artifacts, Cache, CacheKey, Job, Need};
use crate::plan::context::RunContext;

/// `script` (before_script + script) and `after_script` (only when the job has one).
/// GitLab: lib/gitlab/ci/build/step.rb `from_commands`, `from_after_script`.
pub(crate) fn steps(job: &Job, timeout: u64) -> Vec<Step> {
    let mut script = job.before_script.clone();
    script.extend(job.script.iter().cloned());
    let mut steps = vec![Step {
        name: "script".into(),
        script,
        timeout,
        when: When::OnSuccess,
        allow_failure: false,
    }];
    if !job.after_script.is_empty() {
        steps.push(Step {
            name: "after_script".into(),
            script: job.after_script.clone(),
            timeout,
            when: When::Always,
            allow_failure: true,
        });
    }
    steps
}

fn when(text: &str) -> When {
    When::from_wire(text).unwrap_or_default()
}

/// The `archive` entry, then one entry per report. GitLab: build_runner_presenter.rb
/// `create_archive`, `create_reports`; the names are `Ci::JobArtifact::DEFAULT_FILE_NAMES`.
pub(crate) fn artifacts(artifacts: &Artifacts) -> Vec<ArtifactSpec> {
    let mut specs = Vec::new();
    if !artifacts.paths.is_empty() || artifacts.untracked == Some(true) {
        specs.push(ArtifactSpec {
            name: artifacts.name.clone().unwrap_or_else(|| "artifacts".into()),
            untracked: artifacts.untracked.unwrap_or(false),
            paths: artifacts.paths.clone(),
            exclude: artifacts.exclude.clone(),
            when: when(&artifacts.when),
            expire_in: artifacts.expire_in.clone(),
            artifact_type: "archive".into(),
            artifact_format: "zip".into(),
        });
    }
    for (report, value) in &artifacts.reports {
        let (kind, paths) = if report == "coverage_report" {
            let format = value
                .get("coverage_format")
                .and_then(|v| v.as_str())
                .unwrap_or("cobertura");
            let path = value
                .get("path")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            (format.to_owned(), vec![path.to_owned()])
        } else {
            let paths = match value {
                serde_json::Value::String(p) => vec![p.clone()],
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            (report.clone(), paths)
        };
        let (name, format) = match kind.as_str() {
            "dotenv" => (".env.gz", "gzip"),
            "junit" => ("junit.xml.gz", "gzip"),
            "cobertura" => ("cobertura-coverage.xml.gz", "gzip"),
            "jacoco" => ("jacoco.xml.gz", "gzip"),
            "metrics" => ("metrics.txt.gz", "gzip"),
            "terraform"
            | "accessibility"
            | "codequality"
            | "sast"
            | "dependency_scanning"
            | "container_scanning"
            | "dast"
            | "secret_detection"
            | "license_scanning"
            | "cyclonedx"
            | "load_performance"
            | "browser_performance"
            | "requirements"
            | "annotations"
            | "api_fuzzing"
            | "coverage_fuzzing" => ("", "raw"),
            _ => ("", "gzip"),
        };
        let name = if name.is_empty() {
            format!("gl-{kind}-report.json")
        } else {
            name.to_owned()
        };
        specs.push(ArtifactSpec {
            name,
            untracked: false,
            paths,
            exclude: Vec::new(),
            when: When::Always,
            expire_in: artifacts.expire_in.clone(),
            artifact_type: kind,
            artifact_format: format.into(),
        });
    }
    specs
}

/// One cache entry. `key:files` uses the hash the caller computed for those files (GitLab uses
/// the SHA of their last commits: lib/gitlab/ci/pipeline/seed/build/cache.rb). Keys get GitLab's
/// `-non_protected` suffix (separated caches; a local ref is never protected) unless the cache
/// is `unprotect: true`.
pub(crate) fn cache(cache: &Cache, ctx: &RunContext) -> CacheSpec {
    let key = match &cache.key {
        CacheKey::Literal(key) => key.clone(),
        CacheKey::Files { files, prefix } => {
            let digest = ctx.files_key(files);
            match prefix {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}-{digest}"),
                _ => digest,
            }
        }
    };
    let suffix = if cache.unprotect {
        ""
    } else {
        "-non_protected"
    };
    CacheSpec {
        key: format!("{key}{suffix}"),
        untracked: cache.untracked,
        paths: cache.paths.clone(),
        policy: CachePolicy::from_wire(&cache.policy).unwrap_or_default(),
        when: when(&cache.when),
        fallback_keys: cache
            .fallback_keys
            .iter()
            .map(|k| format!("{k}{suffix}"))
            .collect(),
    }
}

/// The job's image and services. The shell executor ignores them; they are planned anyway so
/// that the payload is what GitLab would send.
pub(crate) fn image(job: &Job) -> (Option<Image>, Vec<Image>) {
    let image = job.image.as_ref().map(|image| Image {
        name: image.name.clone(),
        entrypoint: image.entrypoint.clone().unwrap_or_default(),
        pull_policy: image.pull_policy.clone(),
        executor_opts: executor_opts(image.docker.as_ref(), image.kubernetes.as_ref()),
        ..Image::default()
    });
    let services = job
        .services
        .iter()
        .map(|service| Image {
            name: service.name.clone(),
            alias: service.alias.clone().unwrap_or_default(),
            command: service.command.clone().unwrap_or_default(),
            entrypoint: service.entrypoint.clone().unwrap_or_default(),
            variables: service
                .variables
                .iter()
                .map(|(k, v)| JobVariable::new(k, v))
                .collect(),
            pull_policy: service.pull_policy.clone(),
            executor_opts: executor_opts(service.docker.as_ref(), service.kubernetes.as_ref()),
            ..Image::default()
        })
        .collect();
    (image, services)
}

fn executor_opts(
    docker: Option<&serde_json::Value>,
    kubernetes: Option<&serde_json::Value>,
) -> Option<ExecutorOpts> {
    if docker.is_none() && kubernetes.is_none() {
        return None;
    }
    Some(ExecutorOpts {
        docker: docker.and_then(|v| serde_json::from_value::<DockerExecutorOpts>(v.clone()).ok()),
        kubernetes: kubernetes
            .and_then(|v| serde_json::from_value::<KubernetesExecutorOpts>(v.clone()).ok()),
        other: serde_json::Map::new(),
    })
}

/// The names of the jobs whose artifacts (and dotenv variables) job `index` receives, in
/// pipeline order. GitLab: app/models/ci/build_dependencies.rb — `dependencies: []` means none;
/// a job with `needs` gets the needs with `artifacts: true`; otherwise every job of earlier
/// stages; a non-empty `dependencies:` list then keeps only the jobs it names.
pub fn dependency_names(jobs: &[Job], index: usize) -> Vec<&str> {
    let job = &jobs[index];
    if job.dependencies.as_ref().is_some_and(Vec::is_empty) {
        return Vec::new();
    }
    let candidates: Vec<&Job> = match &job.needs {
        Some(needs) => {
            let names: Vec<&str> = needs
                .iter()
                .filter_map(|need| match need {
                    Need::Job {
                        job,
                        artifacts: true,
                        ..
                    } => Some(job.as_str()),
                    _ => None,
                })
                .collect();
            jobs.iter()
                .filter(|j| names.contains(&j.name.as_str()))
                .collect()
        }
        None => jobs
            .iter()
            .filter(|j| j.stage_index < job.stage_index)
            .collect(),
    };
    candidates
        .into_iter()
        .filter(|j| match &job.dependencies {
            Some(list) if !list.is_empty() => list.contains(&j.name),
            _ => true,
        })
        .map(|j| j.name.as_str())
        .collect()
}

/// The payload's `dependencies`: the jobs among `names` that finished with artifacts.
pub(crate) fn dependencies(names: &[&str], ctx: &RunContext, token: &JobToken) -> Vec<Dependency> {
    names
        .iter()
        .filter_map(|name| {
            let id = *ctx.finished.get(*name)?;
            Some(Dependency {
                id: JobId(id),
                token: token.clone(),
                name: (*name).to_owned(),
                artifacts_file: Some(ArtifactsFile {
                    filename: "artifacts.zip".into(),
                    size: 0,
                }),
            })
        })
        .collect()
}
