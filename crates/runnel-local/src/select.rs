//! Which jobs of the pipeline `runnel exec` runs: all of them, the named ones, one stage, and
//! with `--needs` / `--only-needs` the named jobs' needs, transitively.

use std::collections::BTreeSet;

use crate::load::Excluded;
use crate::options::Selection;

/// A job as selection sees it.
pub(crate) struct Candidate<'a> {
    pub(crate) name: &'a str,
    pub(crate) stage: &'a str,
    pub(crate) stage_index: usize,
    /// Indices of the jobs it needs; `None`: it waits for every job of earlier stages, which
    /// `--needs` then pulls in.
    pub(crate) needs: Option<Vec<usize>>,
}

/// A selection that names what the pipeline does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// A named job is not in the pipeline.
    #[error("job `{name}` is not in the pipeline{}", .suggestion.as_ref().map_or(String::new(), |s| format!("; did you mean `{s}`?")))]
    UnknownJob {
        /// The name asked for.
        name: String,
        /// The closest name of a job that is in the pipeline.
        suggestion: Option<String>,
    },
    /// No job is in the named stage.
    #[error("no job of the pipeline is in stage `{stage}`")]
    EmptyStage {
        /// The stage asked for.
        stage: String,
    },
    /// A named job is defined but not in the pipeline.
    #[error(
        "job `{name}` is not in the pipeline: {reason}\n  --> {location}\n  = help: `--ignore-rules` runs it anyway"
    )]
    Excluded {
        /// The name asked for.
        name: String,
        /// Why it is not in the pipeline.
        reason: String,
        /// Where the job is defined.
        location: String,
    },
    /// `--manual` names no job.
    #[error("`--manual {name}`: no job of the pipeline has this name")]
    UnknownManual {
        /// The name asked for.
        name: String,
    },
}

/// The indices of the jobs to run, in pipeline order, and the subset that were named (a named
/// job runs even when it is manual).
pub(crate) fn select(
    candidates: &[Candidate<'_>],
    excluded: &[Excluded],
    selection: &Selection,
) -> Result<(Vec<usize>, Vec<usize>), SelectError> {
    let mut named = Vec::new();
    for name in &selection.jobs {
        let found = indices(candidates, |c| c.name == name || base_name(c.name) == name);
        if found.is_empty() {
            if let Some(err) = excluded_error(excluded, name) {
                return Err(err);
            }
            let names = candidates
                .iter()
                .map(|c| c.name)
                .chain(excluded.iter().map(|e| e.name.as_str()));
            return Err(SelectError::UnknownJob {
                name: name.clone(),
                suggestion: runnel_pipeline::diag::suggest(name, names),
            });
        }
        named.extend(found);
    }
    if let Some(stage) = selection.stage.as_deref() {
        let found = indices(candidates, |c| c.stage == stage);
        if found.is_empty() {
            return Err(SelectError::EmptyStage {
                stage: stage.to_owned(),
            });
        }
        named.extend(found);
    }
    if named.is_empty() {
        return Ok(((0..candidates.len()).collect(), Vec::new()));
    }
    let mut selected: BTreeSet<usize> = named.iter().copied().collect();
    if selection.only_needs {
        let needed = needs_of(candidates, &named);
        return Ok((
            needed.into_iter().filter(|i| !named.contains(i)).collect(),
            Vec::new(),
        ));
    }
    if selection.needs {
        selected.extend(needs_of(candidates, &named));
    }
    Ok((selected.into_iter().collect(), named))
}

/// Why the job `name` (or every instance of the parallel job `name`) is not in the pipeline.
pub(crate) fn excluded_error(excluded: &[Excluded], name: &str) -> Option<SelectError> {
    let job = excluded
        .iter()
        .find(|j| j.name == name || j.base_name == name)?;
    Some(SelectError::Excluded {
        name: name.to_owned(),
        reason: job.reason.clone(),
        location: job.location.clone(),
    })
}

/// The indices of the candidates that match.
fn indices(candidates: &[Candidate<'_>], matches: impl Fn(&Candidate<'_>) -> bool) -> Vec<usize> {
    (0..candidates.len())
        .filter(|&i| matches(&candidates[i]))
        .collect()
}

/// Every job the `named` ones need, transitively.
fn needs_of(candidates: &[Candidate<'_>], named: &[usize]) -> BTreeSet<usize> {
    let mut stack = named.to_vec();
    let mut needed = BTreeSet::new();
    while let Some(i) = stack.pop() {
        let implicit: Vec<usize>;
        let needs = match &candidates[i].needs {
            Some(needs) => needs,
            None => {
                let stage = candidates[i].stage_index;
                implicit = indices(candidates, |c| c.stage_index < stage);
                &implicit
            }
        };
        for &need in needs {
            if needed.insert(need) {
                stack.push(need);
            }
        }
    }
    needed
}

/// `rspec 1/3` → `rspec`, `deploy: [aws]` → `deploy`: naming the group selects every instance.
fn base_name(name: &str) -> &str {
    if let Some((base, _)) = name.split_once(": [") {
        return base;
    }
    match name.rsplit_once(' ') {
        Some((base, tail))
            if tail.contains('/') && tail.chars().all(|c| c.is_ascii_digit() || c == '/') =>
        {
            base
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::{Candidate, Selection, select};

    fn candidate(
        name: &'static str,
        stage_index: usize,
        needs: Option<Vec<usize>>,
    ) -> Candidate<'static> {
        let stage = [".pre", "build", "test", "deploy"][stage_index];
        Candidate {
            name,
            stage,
            stage_index,
            needs,
        }
    }

    fn pipeline() -> Vec<Candidate<'static>> {
        vec![
            candidate("pre", 0, Some(vec![])),
            candidate("build", 1, Some(vec![0])),
            candidate("test 1/2", 2, Some(vec![1])),
            candidate("test 2/2", 2, Some(vec![1])),
            candidate("deploy", 3, Some(vec![2, 3])),
            candidate("report", 3, None),
        ]
    }

    #[test]
    fn no_selection_runs_everything() {
        let (selected, named) = select(&pipeline(), &[], &Selection::default()).expect("valid");
        assert_eq!(selected, vec![0, 1, 2, 3, 4, 5]);
        assert!(named.is_empty());
    }

    #[test]
    fn named_jobs_run_alone_unless_needs_is_given() {
        let jobs = ["deploy".to_owned()];
        let only = Selection {
            jobs: jobs.to_vec(),
            ..Selection::default()
        };
        assert_eq!(select(&pipeline(), &[], &only).expect("valid").0, vec![4]);
        let with_needs = Selection {
            jobs: jobs.to_vec(),
            needs: true,
            ..Selection::default()
        };
        assert_eq!(
            select(&pipeline(), &[], &with_needs).expect("valid").0,
            vec![0, 1, 2, 3, 4]
        );
        let only_needs = Selection {
            jobs: jobs.to_vec(),
            only_needs: true,
            ..Selection::default()
        };
        assert_eq!(
            select(&pipeline(), &[], &only_needs).expect("valid"),
            (vec![0, 1, 2, 3], vec![])
        );
    }

    #[test]
    fn needs_of_a_job_without_needs_are_the_earlier_stages() {
        let jobs = ["report".to_owned()];
        let with_needs = Selection {
            jobs: jobs.to_vec(),
            needs: true,
            ..Selection::default()
        };
        assert_eq!(
            select(&pipeline(), &[], &with_needs).expect("valid").0,
            vec![0, 1, 2, 3, 5]
        );
    }

    #[test]
    fn a_group_name_selects_every_instance_and_a_stage_selects_its_jobs() {
        let jobs = ["test".to_owned()];
        let group = Selection {
            jobs: jobs.to_vec(),
            ..Selection::default()
        };
        assert_eq!(
            select(&pipeline(), &[], &group).expect("valid").0,
            vec![2, 3]
        );
        let stage = Selection {
            stage: Some("build".to_owned()),
            ..Selection::default()
        };
        assert_eq!(select(&pipeline(), &[], &stage).expect("valid").0, vec![1]);
    }

    #[test]
    fn unknown_job_names_are_errors_with_a_suggestion() {
        let jobs = ["deplyo".to_owned()];
        let err = select(
            &pipeline(),
            &[],
            &Selection {
                jobs: jobs.to_vec(),
                ..Selection::default()
            },
        )
        .expect_err("unknown job");
        assert_eq!(
            err.to_string(),
            "job `deplyo` is not in the pipeline; did you mean `deploy`?"
        );
    }
}
