//! `parallel:` expansion: `parallel: N` and `parallel: matrix` turn one job definition into
//! instances with GitLab's names and `CI_NODE_INDEX`/`CI_NODE_TOTAL`, and `needs` selectors are
//! matched against those names.
//!
//! This module is pure: it works on names and stringified values, never on YAML.
//! GitLab: lib/gitlab/ci/config/normalizer.rb, normalizer/number_strategy.rb,
//! normalizer/matrix_strategy.rb, entry/product/{parallel,matrix,variables}.rb.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::job::Need;

/// The most instances one `parallel:` may generate.
/// GitLab: lib/gitlab/ci/config/entry/product/parallel.rb (`PARALLEL_LIMIT`).
pub const PARALLEL_LIMIT: usize = 200;

/// One mapping of `parallel:matrix`: variable names in the order written, each with its values
/// (a scalar is a one-element list; every value already stringified as Ruby's `to_s` does).
pub type MatrixRow = Vec<(String, Vec<String>)>;

/// The `parallel:` keyword of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Parallel {
    /// `parallel: N` (1..=200).
    Number(u32),
    /// `parallel: {matrix: [...]}`.
    Matrix(Vec<MatrixRow>),
}

impl Parallel {
    /// How many instances this generates, without building them (GitLab's
    /// `number_of_generated_jobs`), saturating instead of overflowing.
    pub fn instance_count(&self) -> usize {
        match self {
            Parallel::Number(n) => usize::try_from(*n).unwrap_or(usize::MAX),
            Parallel::Matrix(rows) => rows
                .iter()
                .map(|row| {
                    row.iter()
                        .fold(1usize, |acc, (_, v)| acc.saturating_mul(v.len()))
                })
                .fold(0usize, usize::saturating_add),
        }
    }
}

/// One generated job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// `rspec 2/5` or `deploy: [aws, monitoring]`.
    pub name: String,
    /// `CI_NODE_INDEX`: 1-based position in the expansion.
    pub index: u32,
    /// `CI_NODE_TOTAL`: the number of generated instances.
    pub total: u32,
    /// The matrix variables of this instance, in the matrix's key order (empty for `parallel: N`).
    pub variables: Vec<(String, String)>,
}

/// Expands a job's `parallel:` into its instances, in GitLab's order.
///
/// Identical value tuples from different matrix rows produce one name; as in GitLab (a hash keyed
/// by name), the later instance replaces the earlier one at the earlier one's position.
pub fn expand(job_name: &str, parallel: &Parallel) -> Vec<Instance> {
    match parallel {
        Parallel::Number(total) => (1..=*total)
            .map(|index| Instance {
                name: format!("{job_name} {index}/{total}"),
                index,
                total: *total,
                variables: Vec::new(),
            })
            .collect(),
        Parallel::Matrix(rows) => {
            let combos = combinations(rows);
            let total = u32::try_from(combos.len()).unwrap_or(u32::MAX);
            let mut out: Vec<Instance> = Vec::with_capacity(combos.len());
            let mut seen = std::collections::HashMap::new();
            for (i, variables) in combos.into_iter().enumerate() {
                let name = matrix_name(job_name, variables.iter().map(|(_, v)| v.as_str()));
                let instance = Instance {
                    name: name.clone(),
                    index: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    total,
                    variables,
                };
                match seen.get(&name) {
                    Some(&at) => out[at] = instance,
                    None => {
                        seen.insert(name, out.len());
                        out.push(instance);
                    }
                }
            }
            out
        }
    }
}

/// The name of a matrix instance: `job: [v1, v2]`.
/// GitLab: lib/gitlab/ci/config/normalizer/matrix_strategy.rb (`name`).
pub fn matrix_name<'a>(job_name: &str, values: impl IntoIterator<Item = &'a str>) -> String {
    let values: Vec<&str> = values.into_iter().collect();
    format!("{job_name}: [{}]", values.join(", "))
}

/// Every permutation of every row, rows in order, each row's keys in order (the first key varies
/// slowest, as Ruby's `Array#product` does).
pub fn combinations(rows: &[MatrixRow]) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    for row in rows {
        let mut acc: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for (key, values) in row {
            let mut next = Vec::with_capacity(acc.len() * values.len());
            for prefix in &acc {
                for value in values {
                    let mut combo = prefix.clone();
                    combo.push((key.clone(), value.clone()));
                    next.push(combo);
                }
            }
            acc = next;
        }
        if !row.is_empty() {
            out.extend(acc);
        }
    }
    out
}

/// The instance names a `needs: [{job, parallel: {matrix: [...]}}]` selector designates.
///
/// GitLab builds the names from the selector's own matrix (normalizer.rb,
/// `expand_parallelized_needs`), so the selector must list the same variables in the same order
/// as the needed job's matrix; a name that no instance has is reported as an undefined need.
pub fn selector_names(job_name: &str, selector: &[MatrixRow]) -> Vec<String> {
    combinations(selector)
        .iter()
        .map(|combo| matrix_name(job_name, combo.iter().map(|(_, v)| v.as_str())))
        .collect()
}

/// Whether `text` holds a `$[[ matrix.NAME ]]` expression.
pub fn has_matrix_expression(text: &str) -> bool {
    MATRIX_EXPRESSION.is_match(text)
}

/// Replaces every `$[[ matrix.NAME ]]` in `text` with the value of the matrix variable `NAME` of
/// one instance; a name the instance does not have is left as written and pushed to `missing`.
///
/// GitLab: lib/gitlab/ci/config/interpolation/matrix_interpolator.rb (names are
/// `[a-zA-Z0-9_-]+`, spaces inside the brackets are optional).
pub fn interpolate(
    text: &str,
    variables: &[(String, String)],
    missing: &mut Vec<String>,
) -> String {
    MATRIX_EXPRESSION
        .replace_all(text, |caps: &regex::Captures<'_>| {
            let name = &caps[1];
            match variables.iter().find(|(k, _)| k == name) {
                Some((_, value)) => value.clone(),
                None => {
                    missing.push(name.to_owned());
                    caps[0].to_owned()
                }
            }
        })
        .into_owned()
}

/// Whether any string of `needs` holds a `$[[ matrix.NAME ]]` expression.
pub(crate) fn needs_have_expressions(needs: &[Need]) -> bool {
    let mut found = false;
    for need in needs {
        map_need_strings(need, &mut |s| {
            found |= has_matrix_expression(s);
            s.to_owned()
        });
    }
    found
}

/// The `needs` of one matrix instance: `$[[ matrix.NAME ]]` replaced in every string (job names,
/// selector values, `pipeline`/`project`/`ref`), never in selector variable names. GitLab:
/// normalizer.rb (`apply_matrix_interpolation` on the job's `needs` only, not `rules:needs`),
/// matrix_interpolator.rb (`transform_values`).
pub(crate) fn interpolate_needs(
    needs: &[Need],
    variables: &[(String, String)],
    missing: &mut Vec<String>,
) -> Vec<Need> {
    needs
        .iter()
        .map(|need| map_need_strings(need, &mut |s| interpolate(s, variables, missing)))
        .collect()
}

fn map_need_strings(need: &Need, f: &mut dyn FnMut(&str) -> String) -> Need {
    match need {
        Need::Job {
            job,
            artifacts,
            optional,
            matrix,
            span,
        } => Need::Job {
            job: f(job),
            artifacts: *artifacts,
            optional: *optional,
            matrix: matrix.as_ref().map(|rows| {
                rows.iter()
                    .map(|row| {
                        row.iter()
                            .map(|(k, values)| (k.clone(), values.iter().map(|v| f(v)).collect()))
                            .collect()
                    })
                    .collect()
            }),
            span: *span,
        },
        Need::Pipeline {
            pipeline,
            job,
            artifacts,
        } => Need::Pipeline {
            pipeline: f(pipeline),
            job: f(job),
            artifacts: *artifacts,
        },
        Need::Project {
            project,
            job,
            ref_name,
            artifacts,
        } => Need::Project {
            project: f(project),
            job: f(job),
            ref_name: f(ref_name),
            artifacts: *artifacts,
        },
    }
}

/// GitLab: matrix_interpolator.rb (`MATRIX_EXPRESSION_REGEXP`).
static MATRIX_EXPRESSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\[\[\s*matrix\.([a-zA-Z0-9_-]+)\s*\]\]").expect("valid regex"));

#[cfg(test)]
mod tests {
    use super::{Parallel, expand, interpolate, selector_names};

    fn row(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        pairs
            .iter()
            .map(|(k, vs)| {
                (
                    (*k).to_owned(),
                    vs.iter().map(|v| (*v).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn parallel_number_names_instances_index_slash_total() {
        let names: Vec<_> = expand("rspec", &Parallel::Number(3))
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["rspec 1/3", "rspec 2/3", "rspec 3/3"]);
    }

    #[test]
    fn matrix_expands_arrays_to_permutations_in_key_order() {
        let p = Parallel::Matrix(vec![
            row(&[("PROVIDER", &["aws"]), ("STACK", &["monitoring", "app1"])]),
            row(&[("PROVIDER", &["gcp", "vultr"]), ("STACK", &["data"])]),
        ]);
        let got = expand("deploy", &p);
        let names: Vec<_> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "deploy: [aws, monitoring]",
                "deploy: [aws, app1]",
                "deploy: [gcp, data]",
                "deploy: [vultr, data]"
            ]
        );
        assert_eq!(got[3].index, 4);
        assert_eq!(got[3].total, 4);
        assert_eq!(p.instance_count(), 4);
    }

    #[test]
    fn identical_tuples_collapse_into_one_name() {
        let p = Parallel::Matrix(vec![row(&[("A", &["x"])]), row(&[("B", &["x"])])]);
        let got = expand("j", &p);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].variables, [("B".to_owned(), "x".to_owned())]);
        assert_eq!(got[0].index, 2);
    }

    #[test]
    fn selector_builds_names_from_its_own_matrix() {
        let sel = vec![row(&[("PROVIDER", &["aws"]), ("STACK", &["app1", "app2"])])];
        assert_eq!(
            selector_names("deploy", &sel),
            ["deploy: [aws, app1]", "deploy: [aws, app2]"]
        );
    }

    #[test]
    fn matrix_expressions_take_the_instance_values() {
        let vars = vec![
            ("OS".to_owned(), "linux".to_owned()),
            ("MY-VAR".to_owned(), "x".to_owned()),
        ];
        let mut missing = Vec::new();
        assert_eq!(
            interpolate(
                "b-$[[matrix.OS]]-$[[ matrix.MY-VAR   ]]-$CI_JOB_ID",
                &vars,
                &mut missing
            ),
            "b-linux-x-$CI_JOB_ID"
        );
        assert!(missing.is_empty());
        assert_eq!(
            interpolate("$[[ matrix.NOPE ]]", &vars, &mut missing),
            "$[[ matrix.NOPE ]]"
        );
        assert_eq!(missing, ["NOPE"]);
    }
}
