//! What a job's `KUBERNETES_*` variables change in its pod, within what `config.toml` allows.
//!
//! GitLab: gitlab-runner `executors/kubernetes/overwrites.go` (`createOverwrites`): the
//! namespace, service account and bearer token are replaced only when the value matches the
//! `*_overwrite_allowed` regex; labels, annotations, node selectors and tolerations are merged
//! from `KUBERNETES_<KIND>_*` variables holding `key=value`; a resource overwrite must not exceed
//! `*_overwrite_max_allowed`, and without that key it is ignored.

use std::collections::BTreeMap;

use regex::Regex;
use runnel_exec::JobVariables;

use crate::quantity;
use crate::settings::{ContainerResources, KubeSettings, Quantities};

/// A job's overwrite that the runner's configuration does not allow. The job fails with
/// `runner_configuration_error`… as gitlab-runner fails it in `Prepare`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverwriteError {
    /// The value does not match the `*_overwrite_allowed` regex.
    #[error("provided value {value:?} of `{variable}` does not match {pattern:?}")]
    NotAllowed {
        /// The variable.
        variable: String,
        /// Its value.
        value: String,
        /// The regex (empty: overwrites are disabled).
        pattern: String,
    },
    /// The `*_overwrite_allowed` regex does not compile.
    #[error("`{key}` is not a valid regular expression: {message}")]
    BadPattern {
        /// The config key.
        key: &'static str,
        /// The regex error.
        message: String,
    },
    /// A resource above its maximum (gitlab-runner `overwriteTooHighError`).
    #[error(
        "the resource {resource:?} requested {requested:?} is higher than limit allowed {max:?}"
    )]
    TooHigh {
        /// The variable.
        resource: String,
        /// The job's value.
        requested: String,
        /// `*_overwrite_max_allowed`.
        max: String,
    },
    /// A quantity that does not parse.
    #[error("`{name}` is not a Kubernetes quantity: {value:?}")]
    Quantity {
        /// The variable or key.
        name: String,
        /// Its value.
        value: String,
    },
    /// A map overwrite without `=`.
    #[error("provided value {value:?} of `{variable}` does not match \"k=v\"")]
    NotKeyValue {
        /// The variable.
        variable: String,
        /// Its value.
        value: String,
    },
}

/// The effective values of one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overwrites {
    /// The namespace of the pod.
    pub namespace: Option<String>,
    /// The service account.
    pub service_account: Option<String>,
    /// The bearer token, when a job's `KUBERNETES_BEARER_TOKEN` replaced the configured one.
    pub bearer_token: Option<String>,
    /// Extra pod labels (after `pod_labels`).
    pub pod_labels: BTreeMap<String, String>,
    /// Pod annotations.
    pub pod_annotations: BTreeMap<String, String>,
    /// Node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Node tolerations: `key[=value]` → effect.
    pub node_tolerations: BTreeMap<String, String>,
    /// Build container limits and requests.
    pub build: (Quantities, Quantities),
    /// Helper container limits and requests.
    pub helper: (Quantities, Quantities),
    /// Service container limits and requests.
    pub service: (Quantities, Quantities),
}

/// Applies the job's `KUBERNETES_*` variables to `settings`. `notes` receives one line per
/// overwrite, for the trace (a bearer token is not printed).
pub fn overwrites(
    settings: &KubeSettings,
    variables: &JobVariables,
    notes: &mut Vec<String>,
) -> Result<Overwrites, OverwriteError> {
    let get = |name: &str| variables.get(name).filter(|v| !v.is_empty());
    let namespace = single(
        "KUBERNETES_NAMESPACE_OVERWRITE",
        "namespace_overwrite_allowed",
        settings.namespace.clone(),
        settings.namespace_overwrite_allowed.as_deref(),
        get("KUBERNETES_NAMESPACE_OVERWRITE"),
        notes,
    )?;
    let service_account = single(
        "KUBERNETES_SERVICE_ACCOUNT_OVERWRITE",
        "service_account_overwrite_allowed",
        settings.service_account.clone(),
        settings.service_account_overwrite_allowed.as_deref(),
        get("KUBERNETES_SERVICE_ACCOUNT_OVERWRITE"),
        notes,
    )?;
    // gitlab-runner `evaluateBoolControlledOverwrite`: allowed means any non-empty value.
    let token_pattern = settings
        .connection
        .bearer_token_overwrite_allowed
        .then_some(".+");
    let mut token_notes = Vec::new();
    let bearer_token = single(
        "KUBERNETES_BEARER_TOKEN",
        "bearer_token_overwrite_allowed",
        None,
        token_pattern,
        get("KUBERNETES_BEARER_TOKEN"),
        &mut token_notes,
    )?;
    if bearer_token.is_some() {
        notes.push("\"BearerToken\" overwritten with \"XXXXXXXX...\"".to_owned());
    }
    let map =
        |prefix: &str,
         key: &'static str,
         base: &BTreeMap<String, String>,
         pattern: Option<&str>,
         notes: &mut Vec<String>| { mapped(variables, prefix, key, base, pattern, notes) };
    let pod_labels = map(
        "KUBERNETES_POD_LABELS_",
        "pod_labels_overwrite_allowed",
        &BTreeMap::new(),
        settings.pod_labels_overwrite_allowed.as_deref(),
        notes,
    )?;
    let pod_annotations = map(
        "KUBERNETES_POD_ANNOTATIONS_",
        "pod_annotations_overwrite_allowed",
        &settings.pod_annotations,
        settings.pod_annotations_overwrite_allowed.as_deref(),
        notes,
    )?;
    let node_selector = map(
        "KUBERNETES_NODE_SELECTOR_",
        "node_selector_overwrite_allowed",
        &settings.node_selector,
        settings.node_selector_overwrite_allowed.as_deref(),
        notes,
    )?;
    let node_tolerations = tolerations(variables, settings, notes)?;
    Ok(Overwrites {
        namespace,
        service_account,
        bearer_token,
        pod_labels,
        pod_annotations,
        node_selector,
        node_tolerations,
        build: resources(&settings.build, variables, "KUBERNETES_", notes)?,
        helper: resources(&settings.helper, variables, "KUBERNETES_HELPER_", notes)?,
        service: resources(&settings.service, variables, "KUBERNETES_SERVICE_", notes)?,
    })
}

fn compile(key: &'static str, pattern: &str) -> Result<Regex, OverwriteError> {
    Regex::new(pattern).map_err(|err| OverwriteError::BadPattern {
        key,
        message: err.to_string(),
    })
}

/// gitlab-runner `evaluateOverwrite`: no regex (or an empty one) disables the overwrite and
/// keeps the configured value; a value that does not match is an error.
fn single(
    variable: &str,
    key: &'static str,
    value: Option<String>,
    pattern: Option<&str>,
    overwrite: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Option<String>, OverwriteError> {
    let Some(overwrite) = overwrite else {
        return Ok(value);
    };
    let Some(pattern) = pattern.filter(|p| !p.is_empty()) else {
        return Err(OverwriteError::NotAllowed {
            variable: variable.to_owned(),
            value: overwrite.to_owned(),
            pattern: String::new(),
        });
    };
    if !compile(key, pattern)?.is_match(overwrite) {
        return Err(OverwriteError::NotAllowed {
            variable: variable.to_owned(),
            value: overwrite.to_owned(),
            pattern: pattern.to_owned(),
        });
    }
    notes.push(format!("{variable} overwritten with {overwrite:?}"));
    Ok(Some(overwrite.to_owned()))
}

/// gitlab-runner `evaluateMapOverwrite` with `splitMapOverwrite`.
fn mapped(
    variables: &JobVariables,
    prefix: &str,
    key: &'static str,
    base: &BTreeMap<String, String>,
    pattern: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, OverwriteError> {
    let mut values = base.clone();
    let Some(pattern) = pattern.filter(|p| !p.is_empty()) else {
        return Ok(values);
    };
    let regex = compile(key, pattern)?;
    for variable in variables.iter().filter(|v| v.key.starts_with(prefix)) {
        let value = variables.expand(&variable.value);
        if !regex.is_match(&value) {
            return Err(OverwriteError::NotAllowed {
                variable: variable.key.clone(),
                value,
                pattern: pattern.to_owned(),
            });
        }
        let Some((k, v)) = value.split_once('=') else {
            return Err(OverwriteError::NotKeyValue {
                variable: variable.key.clone(),
                value,
            });
        };
        notes.push(format!("{} {k:?} overwritten with {v:?}", variable.key));
        values.insert(k.to_owned(), v.to_owned());
    }
    Ok(values)
}

/// gitlab-runner `splitToleration`: `key[=value][:effect]`.
fn tolerations(
    variables: &JobVariables,
    settings: &KubeSettings,
    notes: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, OverwriteError> {
    let mut values = settings.node_tolerations.clone();
    let Some(pattern) = settings
        .node_tolerations_overwrite_allowed
        .as_deref()
        .filter(|p| !p.is_empty())
    else {
        return Ok(values);
    };
    let regex = compile("node_tolerations_overwrite_allowed", pattern)?;
    for variable in variables
        .iter()
        .filter(|v| v.key.starts_with("KUBERNETES_NODE_TOLERATIONS_"))
    {
        let value = variables.expand(&variable.value);
        if !regex.is_match(&value) {
            return Err(OverwriteError::NotAllowed {
                variable: variable.key.clone(),
                value,
                pattern: pattern.to_owned(),
            });
        }
        let (key, effect) = value.split_once(':').unwrap_or((value.as_str(), ""));
        notes.push(format!(
            "{} {key:?} overwritten with {effect:?}",
            variable.key
        ));
        values.insert(key.to_owned(), effect.to_owned());
    }
    Ok(values)
}

/// Limits and requests of one container kind after `<prefix>{CPU,MEMORY,EPHEMERAL_STORAGE}_
/// {LIMIT,REQUEST}`.
fn resources(
    config: &ContainerResources,
    variables: &JobVariables,
    prefix: &str,
    notes: &mut Vec<String>,
) -> Result<(Quantities, Quantities), OverwriteError> {
    let one =
        |kind: &str, value: &Option<String>, max: &Option<String>, notes: &mut Vec<String>| {
            let name = format!("{prefix}{kind}");
            let overwrite = variables.get(&name).filter(|v| !v.is_empty());
            capped(&name, value.clone(), max.as_deref(), overwrite, notes)
        };
    let limits = Quantities {
        cpu: one(
            "CPU_LIMIT",
            &config.limits.cpu,
            &config.limits_max.cpu,
            notes,
        )?,
        memory: one(
            "MEMORY_LIMIT",
            &config.limits.memory,
            &config.limits_max.memory,
            notes,
        )?,
        ephemeral_storage: one(
            "EPHEMERAL_STORAGE_LIMIT",
            &config.limits.ephemeral_storage,
            &config.limits_max.ephemeral_storage,
            notes,
        )?,
    };
    let requests = Quantities {
        cpu: one(
            "CPU_REQUEST",
            &config.requests.cpu,
            &config.requests_max.cpu,
            notes,
        )?,
        memory: one(
            "MEMORY_REQUEST",
            &config.requests.memory,
            &config.requests_max.memory,
            notes,
        )?,
        ephemeral_storage: one(
            "EPHEMERAL_STORAGE_REQUEST",
            &config.requests.ephemeral_storage,
            &config.requests_max.ephemeral_storage,
            notes,
        )?,
    };
    Ok((limits, requests))
}

/// gitlab-runner `evaluateMaxResourceOverwrite`: without a maximum the overwrite is ignored.
fn capped(
    name: &str,
    value: Option<String>,
    max: Option<&str>,
    overwrite: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Option<String>, OverwriteError> {
    let (Some(max), Some(overwrite)) = (max.filter(|m| !m.is_empty()), overwrite) else {
        return Ok(value);
    };
    let parse = |name: &str, text: &str| {
        quantity::parse(text).ok_or_else(|| OverwriteError::Quantity {
            name: name.to_owned(),
            value: text.to_owned(),
        })
    };
    let limit = parse("overwrite_max_allowed", max)?;
    if parse(name, overwrite)? > limit {
        return Err(OverwriteError::TooHigh {
            resource: name.to_owned(),
            requested: overwrite.to_owned(),
            max: max.to_owned(),
        });
    }
    notes.push(format!("{name} overwritten with {overwrite:?}"));
    Ok(Some(overwrite.to_owned()))
}
