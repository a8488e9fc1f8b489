//! `validateContainers` of `pkg/apis/core/validation/validation.go` for one container: name,
//! image, ports, env, volume mounts, resources and its security context.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use super::names;
use super::pod::{enumeration, id_ranges, list, str_of};
use crate::status::FieldError;
use runnel_kube::quantity;

pub(super) fn validate_container(
    container: &Value,
    field: &str,
    volumes: &BTreeSet<String>,
    names_seen: &mut HashSet<String>,
    errors: &mut Vec<FieldError>,
) {
    let name = str_of(container, "name");
    if name.is_empty() {
        errors.push(FieldError::required(format!("{field}.name"), ""));
    } else {
        for message in names::dns1123_label(name) {
            errors.push(FieldError::invalid(format!("{field}.name"), name, message));
        }
        if !names_seen.insert(name.to_owned()) {
            errors.push(FieldError::duplicate(format!("{field}.name"), name));
        }
    }
    if str_of(container, "image").trim().is_empty() {
        errors.push(FieldError::required(format!("{field}.image"), ""));
    }
    enumeration(
        container,
        "imagePullPolicy",
        &format!("{field}.imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
        errors,
    );
    enumeration(
        container,
        "terminationMessagePolicy",
        &format!("{field}.terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
        errors,
    );
    ports(container, field, errors);
    env(container, field, errors);
    mounts(container, field, volumes, errors);
    resources(container, field, errors);
    container_security_context(container, field, errors);
}

fn ports(container: &Value, field: &str, errors: &mut Vec<FieldError>) {
    let mut port_names = HashSet::new();
    for (i, port) in list(container, "ports").iter().enumerate() {
        let port_field = format!("{field}.ports[{i}]");
        let name = str_of(port, "name");
        if !name.is_empty() {
            for message in names::port_name(name) {
                errors.push(FieldError::invalid(
                    format!("{port_field}.name"),
                    name,
                    message,
                ));
            }
            if !port_names.insert(name.to_owned()) {
                errors.push(FieldError::duplicate(format!("{port_field}.name"), name));
            }
        }
        let number = port
            .get("containerPort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if !(1..=65535).contains(&number) {
            errors.push(FieldError::invalid(
                format!("{port_field}.containerPort"),
                number,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(host) = port.get("hostPort").and_then(Value::as_i64)
            && !(0..=65535).contains(&host)
        {
            errors.push(FieldError::invalid(
                format!("{port_field}.hostPort"),
                host,
                "must be between 1 and 65535, inclusive",
            ));
        }
        enumeration(
            port,
            "protocol",
            &format!("{port_field}.protocol"),
            &["SCTP", "TCP", "UDP"],
            errors,
        );
    }
}

fn env(container: &Value, field: &str, errors: &mut Vec<FieldError>) {
    for (i, var) in list(container, "env").iter().enumerate() {
        let var_field = format!("{field}.env[{i}]");
        let name = str_of(var, "name");
        if name.is_empty() {
            errors.push(FieldError::required(format!("{var_field}.name"), ""));
        }
        for message in names::env_var_name(name)
            .into_iter()
            .filter(|_| !name.is_empty())
        {
            errors.push(FieldError::invalid(
                format!("{var_field}.name"),
                name,
                message,
            ));
        }
        if let Some(source) = var.get("valueFrom") {
            if !str_of(var, "value").is_empty() {
                errors.push(FieldError::invalid(
                    format!("{var_field}.valueFrom"),
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
            let count = source.as_object().map_or(0, |m| m.len());
            if count == 0 {
                errors.push(FieldError::invalid(format!("{var_field}.valueFrom"), "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
            } else if count > 1 {
                errors.push(FieldError::invalid(
                    format!("{var_field}.valueFrom"),
                    "",
                    "may not have more than one field specified at a time",
                ));
            }
            for reference in ["secretKeyRef", "configMapKeyRef"] {
                if let Some(r) = source.get(reference) {
                    for key in ["name", "key"] {
                        if str_of(r, key).is_empty() {
                            errors.push(FieldError::required(
                                format!("{var_field}.valueFrom.{reference}.{key}"),
                                "",
                            ));
                        }
                    }
                }
            }
        }
    }
}

fn mounts(
    container: &Value,
    field: &str,
    volumes: &BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    let mut paths = HashSet::new();
    for (i, mount) in list(container, "volumeMounts").iter().enumerate() {
        let mount_field = format!("{field}.volumeMounts[{i}]");
        let name = str_of(mount, "name");
        if name.is_empty() {
            errors.push(FieldError::required(format!("{mount_field}.name"), ""));
        } else if !volumes.contains(name) {
            errors.push(FieldError::not_found(format!("{mount_field}.name"), name));
        }
        let path = str_of(mount, "mountPath");
        if path.is_empty() {
            errors.push(FieldError::required(format!("{mount_field}.mountPath"), ""));
        } else if !paths.insert(path.to_owned()) {
            errors.push(FieldError::invalid(
                format!("{mount_field}.mountPath"),
                path,
                "must be unique",
            ));
        }
        let sub = str_of(mount, "subPath");
        if !sub.is_empty() {
            if sub.starts_with('/') {
                errors.push(FieldError::invalid(
                    format!("{mount_field}.subPath"),
                    sub,
                    "must be a relative path",
                ));
            } else if sub.split('/').any(|p| p == "..") {
                errors.push(FieldError::invalid(
                    format!("{mount_field}.subPath"),
                    sub,
                    "must not contain '..'",
                ));
            }
        }
    }
}

fn resources(container: &Value, field: &str, errors: &mut Vec<FieldError>) {
    let Some(resources) = container.get("resources") else {
        return;
    };
    for group in ["limits", "requests"] {
        let Some(Value::Object(map)) = resources.get(group) else {
            continue;
        };
        for (name, value) in map {
            let res_field = format!("{field}.resources.{group}[{name}]");
            let standard = ["cpu", "memory", "ephemeral-storage"].contains(&name.as_str())
                || name.starts_with("hugepages-");
            if !standard && !name.contains('/') {
                errors.push(FieldError::invalid(
                    res_field.clone(),
                    name.as_str(),
                    "must be a standard resource type or fully qualified",
                ));
            }
            let text = value.as_str().unwrap_or("");
            match quantity::parse(text) {
                None => errors.push(FieldError::invalid(
                    res_field,
                    text,
                    "must be a valid quantity",
                )),
                Some(n) if n < 0.0 => errors.push(FieldError::invalid(
                    res_field,
                    text,
                    "must be greater than or equal to 0",
                )),
                Some(_) => {}
            }
        }
    }
    let (Some(Value::Object(requests)), Some(Value::Object(limits))) =
        (resources.get("requests"), resources.get("limits"))
    else {
        return;
    };
    for (name, request) in requests {
        let Some(limit) = limits.get(name) else {
            continue;
        };
        let (r, l) = (request.as_str().unwrap_or(""), limit.as_str().unwrap_or(""));
        if let (Some(rv), Some(lv)) = (quantity::parse(r), quantity::parse(l))
            && rv > lv
        {
            errors.push(FieldError::invalid(
                format!("{field}.resources.requests"),
                r,
                format!("must be less than or equal to {name} limit of {l}"),
            ));
        }
    }
}

fn container_security_context(container: &Value, field: &str, errors: &mut Vec<FieldError>) {
    let Some(context) = container.get("securityContext") else {
        return;
    };
    let field = format!("{field}.securityContext");
    id_ranges(context, &field, errors);
    if context.get("privileged").and_then(Value::as_bool) == Some(true)
        && context
            .get("allowPrivilegeEscalation")
            .and_then(Value::as_bool)
            == Some(false)
    {
        errors.push(FieldError::invalid(
            field.clone(),
            "",
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
    if let Some(Value::Object(caps)) = context.get("capabilities") {
        for (key, values) in caps {
            for (i, cap) in values
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if cap.as_str().unwrap_or("").is_empty() {
                    errors.push(FieldError::required(
                        format!("{field}.capabilities.{key}[{i}]"),
                        "",
                    ));
                }
            }
        }
    }
    enumeration(
        context,
        "procMount",
        &format!("{field}.procMount"),
        &["Default", "Unmasked"],
        errors,
    );
}
