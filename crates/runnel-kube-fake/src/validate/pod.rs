//! `ValidatePodSpec` of `pkg/apis/core/validation/validation.go` for the fields a CI pod uses:
//! containers and init containers, volumes and mounts, ports, env, resources, security
//! contexts, host aliases, tolerations, the node selector and the enumerations. Runs on the
//! normalised, defaulted pod JSON, so the field paths are the wire paths.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use serde_json::Value;

use super::container::validate_container;
use super::{meta, names};
use crate::status::FieldError;
use runnel_kube::quantity;

const VOLUME_SOURCES: [&str; 12] = [
    "emptyDir",
    "configMap",
    "secret",
    "hostPath",
    "persistentVolumeClaim",
    "projected",
    "downwardAPI",
    "nfs",
    "csi",
    "ephemeral",
    "image",
    "iscsi",
];

/// Validates a pod's `spec` (metadata is checked by [`meta::validate`]).
pub(crate) fn validate_spec(pod: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let volumes = volumes(spec, &mut errors);
    let containers = list(spec, "containers");
    if containers.is_empty() {
        errors.push(FieldError::required("spec.containers", ""));
    }
    let mut names_seen = HashSet::new();
    for (group, field) in [
        ("initContainers", "spec.initContainers"),
        ("containers", "spec.containers"),
    ] {
        for (i, container) in list(spec, group).iter().enumerate() {
            validate_container(
                container,
                &format!("{field}[{i}]"),
                &volumes,
                &mut names_seen,
                &mut errors,
            );
        }
    }
    enumeration(
        spec,
        "restartPolicy",
        "spec.restartPolicy",
        &["Always", "OnFailure", "Never"],
        &mut errors,
    );
    enumeration(
        spec,
        "dnsPolicy",
        "spec.dnsPolicy",
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        &mut errors,
    );
    if str_of(spec, "dnsPolicy") == "None"
        && spec
            .pointer("/dnsConfig/nameservers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        errors.push(FieldError::required(
            "spec.dnsConfig.nameservers",
            "must provide at least one DNS nameserver when DNSPolicy is set to None",
        ));
    }
    errors.extend(meta::labels(spec.get("nodeSelector"), "spec.nodeSelector"));
    let account = str_of(spec, "serviceAccountName");
    if !account.is_empty() {
        for message in names::dns1123_subdomain(account) {
            errors.push(FieldError::invalid(
                "spec.serviceAccountName",
                account,
                message,
            ));
        }
    }
    for (key, min) in [
        ("terminationGracePeriodSeconds", 0),
        ("activeDeadlineSeconds", 1),
    ] {
        if let Some(n) = spec.get(key).and_then(Value::as_i64)
            && n < min
        {
            let detail = if min == 0 {
                "must be greater than or equal to 0"
            } else {
                "must be between 1 and 2147483647, inclusive"
            };
            errors.push(FieldError::invalid(format!("spec.{key}"), n, detail));
        }
    }
    host_aliases(spec, &mut errors);
    tolerations(spec, &mut errors);
    pod_security_context(spec, &mut errors);
    errors
}

/// The volume names, after checking each volume.
fn volumes(spec: &Value, errors: &mut Vec<FieldError>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (i, volume) in list(spec, "volumes").iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        let name = str_of(volume, "name");
        if name.is_empty() {
            errors.push(FieldError::required(format!("{field}.name"), ""));
        } else {
            for message in names::dns1123_label(name) {
                errors.push(FieldError::invalid(format!("{field}.name"), name, message));
            }
            if !seen.insert(name.to_owned()) {
                errors.push(FieldError::duplicate(format!("{field}.name"), name));
            }
        }
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|s| volume.get(*s).is_some())
            .collect();
        let other_keys = volume.as_object().map_or(0, |m| {
            m.keys()
                .filter(|k| *k != "name" && !VOLUME_SOURCES.contains(&k.as_str()))
                .count()
        });
        match sources.as_slice() {
            [] if other_keys == 0 => errors.push(FieldError::required(
                field.clone(),
                "must specify a volume type",
            )),
            [] | [_] => {}
            [_, second, ..] => errors.push(FieldError::forbidden(
                format!("{field}.{second}"),
                "may not specify more than 1 volume type",
            )),
        }
        volume_source(volume, &field, errors);
    }
    seen
}

fn volume_source(volume: &Value, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(host) = volume.get("hostPath") {
        if str_of(host, "path").is_empty() {
            errors.push(FieldError::required(format!("{field}.hostPath.path"), ""));
        }
        enumeration(
            host,
            "type",
            &format!("{field}.hostPath.type"),
            &[
                "",
                "DirectoryOrCreate",
                "Directory",
                "FileOrCreate",
                "File",
                "Socket",
                "CharDevice",
                "BlockDevice",
            ],
            errors,
        );
    }
    for (source, key) in [
        ("configMap", "name"),
        ("secret", "secretName"),
        ("persistentVolumeClaim", "claimName"),
    ] {
        let Some(value) = volume.get(source) else {
            continue;
        };
        if str_of(value, key).is_empty() {
            errors.push(FieldError::required(format!("{field}.{source}.{key}"), ""));
        }
        if let Some(mode) = value.get("defaultMode").and_then(Value::as_i64)
            && !(0..=0o777).contains(&mode)
        {
            errors.push(FieldError::invalid(
                format!("{field}.{source}.defaultMode"),
                mode,
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
        for (j, item) in list(value, "items").iter().enumerate() {
            let item_field = format!("{field}.{source}.items[{j}]");
            if str_of(item, "key").is_empty() {
                errors.push(FieldError::required(format!("{item_field}.key"), ""));
            }
            relative_path(str_of(item, "path"), &format!("{item_field}.path"), errors);
        }
    }
    if let Some(empty) = volume.get("emptyDir") {
        enumeration(
            empty,
            "medium",
            &format!("{field}.emptyDir.medium"),
            &["", "Memory", "HugePages"],
            errors,
        );
        if let Some(limit) = empty.get("sizeLimit").and_then(Value::as_str)
            && quantity::parse(limit).is_none()
        {
            errors.push(FieldError::invalid(
                format!("{field}.emptyDir.sizeLimit"),
                limit,
                "must be a valid quantity",
            ));
        }
    }
}

fn relative_path(path: &str, field: &str, errors: &mut Vec<FieldError>) {
    if path.is_empty() {
        errors.push(FieldError::required(field, ""));
    } else if path.starts_with('/') {
        errors.push(FieldError::invalid(field, path, "must be a relative path"));
    } else if path.split('/').any(|part| part == "..") {
        errors.push(FieldError::invalid(field, path, "must not contain '..'"));
    }
}

fn pod_security_context(spec: &Value, errors: &mut Vec<FieldError>) {
    let Some(context) = spec.get("securityContext") else {
        return;
    };
    let field = "spec.securityContext";
    id_ranges(context, field, errors);
    if let Some(n) = context.get("fsGroup").and_then(Value::as_i64)
        && !(0..=2147483647).contains(&n)
    {
        errors.push(FieldError::invalid(
            format!("{field}.fsGroup"),
            n,
            "must be between 0 and 2147483647, inclusive",
        ));
    }
    for (i, group) in list(context, "supplementalGroups").iter().enumerate() {
        if let Some(n) = group.as_i64()
            && !(0..=2147483647).contains(&n)
        {
            errors.push(FieldError::invalid(
                format!("{field}.supplementalGroups[{i}]"),
                n,
                "must be between 0 and 2147483647, inclusive",
            ));
        }
    }
    enumeration(
        context,
        "fsGroupChangePolicy",
        &format!("{field}.fsGroupChangePolicy"),
        &["OnRootMismatch", "Always"],
        errors,
    );
}

pub(super) fn id_ranges(context: &Value, field: &str, errors: &mut Vec<FieldError>) {
    for key in ["runAsUser", "runAsGroup"] {
        if let Some(n) = context.get(key).and_then(Value::as_i64)
            && !(0..=2147483647).contains(&n)
        {
            errors.push(FieldError::invalid(
                format!("{field}.{key}"),
                n,
                "must be between 0 and 2147483647, inclusive",
            ));
        }
    }
    if context.get("runAsNonRoot").and_then(Value::as_bool) == Some(true)
        && context.get("runAsUser").and_then(Value::as_i64) == Some(0)
    {
        errors.push(FieldError::invalid(
            format!("{field}.runAsNonRoot"),
            true,
            "must be false when runAsUser is set to 0",
        ));
    }
}

fn host_aliases(spec: &Value, errors: &mut Vec<FieldError>) {
    for (i, alias) in list(spec, "hostAliases").iter().enumerate() {
        let field = format!("spec.hostAliases[{i}]");
        let ip = str_of(alias, "ip");
        if ip.is_empty() {
            errors.push(FieldError::required(format!("{field}.ip"), ""));
        } else if ip.parse::<IpAddr>().is_err() {
            errors.push(FieldError::invalid(
                format!("{field}.ip"),
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
        for (j, host) in list(alias, "hostnames").iter().enumerate() {
            let host = host.as_str().unwrap_or("");
            for message in names::dns1123_subdomain(host) {
                errors.push(FieldError::invalid(
                    format!("{field}.hostnames[{j}]"),
                    host,
                    message,
                ));
            }
        }
    }
}

fn tolerations(spec: &Value, errors: &mut Vec<FieldError>) {
    for (i, toleration) in list(spec, "tolerations").iter().enumerate() {
        let field = format!("spec.tolerations[{i}]");
        let key = str_of(toleration, "key");
        if !key.is_empty() {
            for message in names::qualified_name(key) {
                errors.push(FieldError::invalid(format!("{field}.key"), key, message));
            }
        }
        let operator = str_of(toleration, "operator");
        if key.is_empty() && operator != "Exists" {
            errors.push(FieldError::invalid(format!("{field}.operator"), operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        match operator {
            "" | "Equal" => {}
            "Exists" => {
                if !str_of(toleration, "value").is_empty() {
                    errors.push(FieldError::invalid(
                        format!("{field}.operator"),
                        toleration.clone(),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errors.push(FieldError::not_supported(
                format!("{field}.operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        enumeration(
            toleration,
            "effect",
            &format!("{field}.effect"),
            &["", "NoSchedule", "PreferNoSchedule", "NoExecute"],
            errors,
        );
        if toleration
            .get("tolerationSeconds")
            .is_some_and(|s| !s.is_null())
            && str_of(toleration, "effect") != "NoExecute"
        {
            errors.push(FieldError::invalid(
                format!("{field}.effect"),
                str_of(toleration, "effect"),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    }
}

/// An enumeration field: absent is fine, any other value must be listed.
pub(super) fn enumeration(
    object: &Value,
    key: &str,
    field: &str,
    supported: &[&'static str],
    errors: &mut Vec<FieldError>,
) {
    if let Some(value) = object.get(key).and_then(Value::as_str)
        && !supported.contains(&value)
    {
        let shown: Vec<&'static str> = supported
            .iter()
            .copied()
            .filter(|s| !s.is_empty())
            .collect();
        errors.push(FieldError::not_supported(field, value, &shown));
    }
}

pub(crate) fn list<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

pub(crate) fn str_of<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::validate_spec;

    fn messages(pod: serde_json::Value) -> Vec<String> {
        validate_spec(&pod)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_gitlab_runner_like_pod_is_valid() {
        let pod = json!({"spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "build", "image": "alpine", "stdin": true, "volumeMounts": [{"name": "repo", "mountPath": "/builds"}],
                 "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "helper", "image": "helper", "volumeMounts": [{"name": "repo", "mountPath": "/builds"}]},
                {"name": "svc-0", "image": "postgres", "ports": [{"containerPort": 5432, "name": "pg"}]}
            ],
            "volumes": [{"name": "repo", "emptyDir": {}}],
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["postgres", "db.local"]}],
            "tolerations": [{"key": "ci", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]
        }});
        assert_eq!(messages(pod), Vec::<String>::new());
    }

    #[test]
    fn container_errors() {
        let pod = json!({"spec": {
            "containers": [
                {"name": "Build", "image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/a"}]},
                {"name": "svc", "image": ""},
                {"name": "svc", "image": "y", "ports": [{"containerPort": 0}], "imagePullPolicy": "Sometimes"}
            ],
            "volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}]
        }});
        let errors = messages(pod);
        let expect = [
            "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type",
            "spec.containers[0].name: Invalid value: \"Build\": a lowercase RFC 1123 label",
            "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
            "spec.containers[1].image: Required value",
            "spec.containers[2].name: Duplicate value: \"svc\"",
            "spec.containers[2].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            "spec.containers[2].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        ];
        for wanted in expect {
            assert!(
                errors.iter().any(|e| e.starts_with(wanted)),
                "missing {wanted:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    }

    #[test]
    fn requests_above_limits_and_bad_aliases() {
        let pod = json!({"spec": {
            "containers": [{"name": "a", "image": "x", "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}],
            "hostAliases": [{"ip": "not-an-ip", "hostnames": ["Bad_Host"]}],
            "restartPolicy": "Sometimes"
        }});
        let errors = messages(pod);
        assert!(errors.contains(&"spec.containers[0].resources.requests: Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi".to_owned()), "{errors:#?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.hostAliases[0].ip: Invalid value: \"not-an-ip\""))
        );
        assert!(errors.iter().any(|e| {
            e.starts_with("spec.hostAliases[0].hostnames[0]: Invalid value: \"Bad_Host\"")
        }));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.restartPolicy: Unsupported value: \"Sometimes\""))
        );
    }

    #[test]
    fn missing_containers_and_volume_type() {
        let errors = messages(json!({"spec": {"volumes": [{"name": "v"}]}}));
        assert_eq!(
            errors,
            [
                "spec.volumes[0]: Required value: must specify a volume type",
                "spec.containers: Required value"
            ]
        );
    }
}
