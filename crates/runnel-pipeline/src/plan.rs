//! Planning: one job of a [`crate::pipeline::Pipeline`] plus a [`RunContext`] → the
//! [`runnel_api::JobPayload`] GitLab would send a runner for it.
//!
//! Pure: the caller gathers the commit, the project and the results of finished jobs into the
//! [`RunContext`]; planning reads nothing else.

mod context;
mod payload;
mod predefined;

use runnel_api::{
    Features, GitInfo, Hook, JobId, JobInfo, JobPayload, JobToken, JobVariable, RefType, RunnerInfo,
};

pub use context::{GitMeta, ProjectMeta, RunContext, UserMeta};
pub use payload::dependency_names;
pub use predefined::{
    commit_description, commit_title, environment_slug, environment_tier, pipeline_variables,
    slugify,
};

use crate::expand::{ExpandVariable, SortExpandOptions, sort_and_expand_indexed};
use crate::job::{Job, JobIndex};
use crate::pipeline::Pipeline;

/// GitLab's default job timeout (a project's `build_timeout`): one hour.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 3600;

/// Plans job `index` of `pipeline`.
pub fn plan(pipeline: &Pipeline, index: JobIndex, ctx: &RunContext) -> JobPayload {
    plan_job(&pipeline.jobs, index.0, ctx)
}

/// Plans `jobs[index]`; the other jobs decide its dependencies.
pub fn plan_job(jobs: &[Job], index: usize, ctx: &RunContext) -> JobPayload {
    let job = &jobs[index];
    let id = ctx.job_id(index);
    let token = JobToken::new(format!("glcbt-runnel-{id}"));
    let timeout = job
        .timeout_seconds
        .or(ctx.default_timeout.map(|d| d.as_secs()))
        .unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    let dependency_names = payload::dependency_names(jobs, index);
    let (image, services) = payload::image(job);
    JobPayload {
        id: JobId(id),
        token: token.clone(),
        allow_git_fetch: false,
        job_info: JobInfo {
            id: Some(JobId(id)),
            name: job.name.clone(),
            stage: job.stage.clone(),
            pipeline_id: ctx.pipeline_id,
            project_id: ctx.project.id,
            project_name: ctx.project.name().to_owned(),
            project_full_path: ctx.project.path.clone(),
            user_id: ctx.user.id,
            project_jobs_running_on_instance_runners_count: "+Inf".into(),
            ..JobInfo::default()
        },
        git_info: GitInfo {
            repo_url: ctx.repo_url.clone(),
            repo_object_format: "sha1".into(),
            ref_name: ctx.git.ref_name.clone(),
            sha: ctx.git.sha.clone(),
            before_sha: ctx.git.before_sha.clone(),
            ref_type: if ctx.git.is_tag {
                RefType::Tag
            } else {
                RefType::Branch
            },
            refspecs: Vec::new(),
            depth: 0,
            protected: Some(false),
        },
        runner_info: RunnerInfo {
            uuid: None,
            timeout,
            runner_session_url: None,
        },
        variables: variables(job, id, &token, &dependency_names, ctx),
        steps: payload::steps(job, timeout),
        image,
        services,
        artifacts: job
            .artifacts
            .as_ref()
            .map(payload::artifacts)
            .unwrap_or_default(),
        cache: job.cache.iter().map(|c| payload::cache(c, ctx)).collect(),
        credentials: Vec::new(),
        dependencies: payload::dependencies(&dependency_names, ctx, &token),
        features: Features {
            trace_sections: true,
            ..Features::default()
        },
        secrets: serde_json::Map::new(),
        hooks: job
            .hooks
            .as_ref()
            .filter(|h| !h.pre_get_sources_script.is_empty())
            .map(|h| {
                vec![Hook {
                    name: "pre_get_sources_script".into(),
                    script: h.pre_get_sources_script.clone(),
                }]
            })
            .unwrap_or_default(),
        inputs: None,
        run: None,
        policy_options: None,
        suspend_options: None,
    }
}

/// Variables looked up by name, the last definition winning.
struct Lookup<'a>(&'a [JobVariable]);

impl crate::rules::VarLookup for Lookup<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|v| v.key == name)
            .map(|v| v.value.as_str())
    }
}

fn var(key: &str, value: impl Into<String>) -> JobVariable {
    JobVariable::new(key, value)
}

fn secret(key: &str, value: impl Into<String>) -> JobVariable {
    JobVariable {
        public: false,
        masked: true,
        ..JobVariable::new(key, value)
    }
}

/// The job's variables in GitLab's order, later ones winning (app/models/ci/build.rb
/// `variables`, lib/gitlab/ci/variables/builder.rb `scoped_variables`): persisted job
/// variables, job and pipeline predefined variables, YAML variables (global < job < matrix <
/// rule), dotenv variables of dependencies, project variables, pipeline variables, and the
/// environment variables last.
fn variables(
    job: &Job,
    id: u64,
    token: &JobToken,
    dependency_names: &[&str],
    ctx: &RunContext,
) -> Vec<JobVariable> {
    let project_url = ctx.project.url();
    let mut vars = vec![
        var("CI_PIPELINE_ID", ctx.pipeline_id.to_string()),
        var(
            "CI_PIPELINE_URL",
            format!("{project_url}/-/pipelines/{}", ctx.pipeline_id),
        ),
        var("CI_JOB_ID", id.to_string()),
        var("CI_JOB_URL", format!("{project_url}/-/jobs/{id}")),
        secret("CI_JOB_TOKEN", token.expose()),
        var("CI_REGISTRY_USER", "gitlab-ci-token"),
        secret("CI_REGISTRY_PASSWORD", token.expose()),
        var("CI_REPOSITORY_URL", ctx.repo_url.clone()),
        var("CI_JOB_NAME", &job.name),
        var("CI_JOB_NAME_SLUG", slugify(&job.name)),
        var("CI_JOB_GROUP_NAME", &job.group_name),
        var("CI_JOB_STAGE", &job.stage),
    ];
    if ctx.played.contains(&job.name) {
        vars.push(var("CI_JOB_MANUAL", "true"));
    }
    match &job.parallel {
        Some(parallel) => {
            vars.push(var("CI_NODE_INDEX", parallel.index.to_string()));
            vars.push(var("CI_NODE_TOTAL", parallel.total.to_string()));
        }
        None => vars.push(var("CI_NODE_TOTAL", "1")),
    }
    vars.extend(pipeline_variables(ctx));
    vars.push(var(
        "CI_REGISTRY",
        format!("registry.{}", ctx.project.server_host),
    ));
    vars.push(var(
        "CI_REGISTRY_IMAGE",
        format!(
            "registry.{}/{}",
            ctx.project.server_host,
            ctx.project.path.to_lowercase()
        ),
    ));
    vars.extend(job.variables.iter().map(|v| JobVariable {
        raw: !v.expand,
        ..JobVariable::new(&v.name, &v.value)
    }));
    for name in dependency_names {
        if let Some(dotenv) = ctx.dotenv.get(*name) {
            vars.extend(dotenv.iter().map(|(k, v)| var(k, v)));
        }
    }
    vars.extend(ctx.project_variables.iter().cloned());
    vars.extend(ctx.pipeline_variables.iter().cloned());
    if let Some(environment) = &job.environment {
        // GitLab expands the name with the job's variables, sorted and expanded, when it creates
        // the job (app/models/concerns/ci/deployable.rb `expanded_environment_name`,
        // lib/gitlab/ci/build/context/build.rb `seed_environment`).
        let expanded = sorted_and_expanded(&vars, SortExpandOptions::DEFAULT);
        let name = crate::expand::expand_server(&environment.name, &Lookup(&expanded));
        vars.push(var("CI_ENVIRONMENT_NAME", &name));
        vars.push(var("CI_ENVIRONMENT_SLUG", environment_slug(&name)));
        if let Some(url) = &environment.url {
            // The URL is sent as written; the expansion below resolves its references.
            vars.push(var("CI_ENVIRONMENT_URL", url));
        }
        vars.push(var("CI_ENVIRONMENT_ACTION", &environment.action));
        let tier = environment
            .deployment_tier
            .clone()
            .unwrap_or_else(|| environment_tier(&name).into());
        vars.push(var("CI_ENVIRONMENT_TIER", tier));
    }
    // GitLab sends the variables sorted so that each follows those it refers to, with the
    // references expanded except those to undefined, file and raw variables, which the runner
    // expands (app/presenters/ci/build_runner_presenter.rb `runner_variables`).
    sorted_and_expanded(&vars, SortExpandOptions::RUNNER)
}

/// `vars` in the order and with the values of GitLab's `sort_and_expand_all`; unchanged when
/// they refer to each other in a cycle (such a pipeline was refused when it was created).
fn sorted_and_expanded(vars: &[JobVariable], options: SortExpandOptions) -> Vec<JobVariable> {
    let items: Vec<ExpandVariable> = vars
        .iter()
        .map(|v| ExpandVariable {
            key: v.key.clone(),
            value: v.value.clone(),
            raw: v.raw,
            file: v.file,
        })
        .collect();
    match sort_and_expand_indexed(&items, options) {
        Ok(sorted) => sorted
            .into_iter()
            .map(|(i, value)| JobVariable {
                value,
                ..vars[i].clone()
            })
            .collect(),
        Err(_) => vars.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use runnel_api::JobVariable;

    use super::{GitMeta, ProjectMeta, RunContext, UserMeta, plan};
    use crate::pipeline::{Pipeline, PipelineContext};
    use crate::resolve::{LoadOptions, load_str};
    use crate::source::SourceMap;

    fn pipeline(yaml: &str) -> Pipeline {
        let mut map = SourceMap::new();
        let config = load_str(
            &mut map,
            ".gitlab-ci.yml",
            yaml.to_owned(),
            &LoadOptions::new("/repo"),
        )
        .expect("valid configuration");
        Pipeline::from_root(&config.root, &PipelineContext::push("main")).expect("valid pipeline")
    }

    fn context() -> RunContext {
        RunContext {
            pipeline_id: 7,
            pipeline_iid: 7,
            pipeline_source: "push".into(),
            config_path: ".gitlab-ci.yml".into(),
            git: GitMeta {
                sha: "0123456789abcdef0123456789abcdef01234567".into(),
                before_sha: "0000000000000000000000000000000000000000".into(),
                ref_name: "main".into(),
                is_tag: false,
                message: "Add parser\n\nWith tests.\n".into(),
                author: "Jane Doe <jane@example.com>".into(),
                timestamp: "2026-01-05T00:00:00+00:00".into(),
                default_branch: "main".into(),
            },
            project: ProjectMeta {
                path: "group/app".into(),
                ..ProjectMeta::default()
            },
            user: UserMeta {
                id: 1,
                login: "jane".into(),
                name: "Jane Doe".into(),
                email: "jane@example.com".into(),
            },
            repo_url: "/repo".into(),
            pipeline_variables: vec![JobVariable::new("FROM_CLI", "cli")],
            ..RunContext::default()
        }
    }

    fn variable<'a>(payload: &'a runnel_api::JobPayload, key: &str) -> Option<&'a str> {
        payload.variable(key)
    }

    const PIPELINE: &str = "
variables:
  GLOBAL: global
  OVERRIDE: global
build:
  stage: build
  before_script: [echo before]
  script: [make]
  after_script: [echo after]
  variables:
    OVERRIDE: job
  artifacts:
    name: dist
    paths: [dist/]
    reports:
      dotenv: build.env
      junit: [report.xml]
  cache:
    key: deps
    paths: [vendor/]
test:
  stage: test
  image: ruby:3.3
  timeout: 10 minutes
  script: [make test]
  environment:
    name: review/$CI_COMMIT_REF_NAME
deploy:
  stage: deploy
  needs: [{job: test, artifacts: true}]
  dependencies: []
  script: [deploy]
";

    #[test]
    fn planned_build_job_matches_snapshot() {
        let pipeline = pipeline(PIPELINE);
        let payload = plan(&pipeline, crate::job::JobIndex(0), &context());
        insta::assert_json_snapshot!("build_payload", payload);
    }

    #[test]
    fn variables_follow_gitlab_precedence() {
        let pipeline = pipeline(PIPELINE);
        let mut ctx = context();
        ctx.project_variables = vec![JobVariable::new("OVERRIDE", "project")];
        let payload = plan(&pipeline, crate::job::JobIndex(0), &ctx);
        assert_eq!(variable(&payload, "GLOBAL"), Some("global"));
        assert_eq!(
            variable(&payload, "OVERRIDE"),
            Some("project"),
            "project variables beat YAML"
        );
        ctx.pipeline_variables
            .push(JobVariable::new("OVERRIDE", "cli"));
        let payload = plan(&pipeline, crate::job::JobIndex(0), &ctx);
        assert_eq!(
            variable(&payload, "OVERRIDE"),
            Some("cli"),
            "pipeline variables beat all"
        );
        assert_eq!(variable(&payload, "CI_JOB_NAME"), Some("build"));
        assert_eq!(variable(&payload, "CI_COMMIT_SHORT_SHA"), Some("01234567"));
        assert_eq!(
            variable(&payload, "CI_PROJECT_URL"),
            Some("https://gitlab.com/group/app")
        );
        assert_eq!(variable(&payload, "CI_NODE_TOTAL"), Some("1"));
    }

    #[test]
    fn dependencies_follow_gitlab_rules() {
        let pipeline = pipeline(PIPELINE);
        let mut ctx = context();
        ctx.finished = HashMap::from([("build".to_owned(), 70_001), ("test".to_owned(), 70_002)]);
        ctx.dotenv = HashMap::from([(
            "build".to_owned(),
            vec![("VERSION".to_owned(), "1.0".to_owned())],
        )]);
        let test = plan(&pipeline, crate::job::JobIndex(1), &ctx);
        let names: Vec<&str> = test.dependencies.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["build"], "earlier stages by default");
        assert_eq!(
            variable(&test, "VERSION"),
            Some("1.0"),
            "dotenv of dependencies"
        );
        let deploy = plan(&pipeline, crate::job::JobIndex(2), &ctx);
        assert!(
            deploy.dependencies.is_empty(),
            "`dependencies: []` wins over needs"
        );
        assert_eq!(variable(&deploy, "VERSION"), None);
    }

    #[test]
    fn environment_timeout_and_image_are_planned() {
        let pipeline = pipeline(PIPELINE);
        let payload = plan(&pipeline, crate::job::JobIndex(1), &context());
        assert_eq!(
            variable(&payload, "CI_ENVIRONMENT_NAME"),
            Some("review/main")
        );
        let slug = variable(&payload, "CI_ENVIRONMENT_SLUG").unwrap_or_default();
        assert!(
            slug.starts_with("review-main-") && slug.len() == 18,
            "{slug}"
        );
        assert_eq!(
            variable(&payload, "CI_ENVIRONMENT_TIER"),
            Some("development")
        );
        assert_eq!(payload.runner_info.timeout, 600);
        assert_eq!(
            payload.image.as_ref().map(|i| i.name.as_str()),
            Some("ruby:3.3")
        );
        assert_eq!(
            payload.steps.len(),
            1,
            "no after_script step without after_script"
        );
    }
}
