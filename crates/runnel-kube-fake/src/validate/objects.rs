//! Validation of the kinds other than pods: secrets (including the `dockerconfigjson` type that
//! image pull secrets use), config maps, services, service accounts, claims and namespaces.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use super::names;
use super::pod::{list, str_of};
use crate::status::FieldError;

/// `MaxSecretSize`, also the config map limit.
const MAX_DATA_SIZE: usize = 1024 * 1024;

/// `ValidateSecret` (after `stringData` has been merged into `data`).
pub(crate) fn secret(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut total = 0;
    if let Some(Value::Object(data)) = object.get("data") {
        for (key, value) in data {
            for message in names::config_map_key(key) {
                errors.push(FieldError::invalid(
                    format!("data[{key}]"),
                    key.as_str(),
                    message,
                ));
            }
            total += value.as_str().map_or(0, |v| v.len() * 3 / 4);
        }
    }
    if total > MAX_DATA_SIZE {
        errors.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let required_key = match str_of(object, "type") {
        "kubernetes.io/dockerconfigjson" => Some(".dockerconfigjson"),
        "kubernetes.io/dockercfg" => Some(".dockercfg"),
        "kubernetes.io/basic-auth" | "kubernetes.io/ssh-auth" | "kubernetes.io/tls" => None,
        _ => None,
    };
    if let Some(key) = required_key {
        match object
            .pointer(&format!("/data/{key}"))
            .and_then(Value::as_str)
        {
            None => errors.push(FieldError::required(format!("data[{key}]"), "")),
            Some(encoded) => {
                let decoded = BASE64.decode(encoded).ok();
                if decoded
                    .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                    .is_none()
                {
                    errors.push(FieldError::invalid(
                        format!("data[{key}]"),
                        "<secret contents redacted>",
                        "invalid JSON",
                    ));
                }
            }
        }
    }
    if str_of(object, "type") == "kubernetes.io/tls" {
        for key in ["tls.crt", "tls.key"] {
            if object.pointer(&format!("/data/{key}")).is_none() {
                errors.push(FieldError::required(format!("data[{key}]"), ""));
            }
        }
    }
    errors
}

/// `ValidateConfigMap`.
pub(crate) fn config_map(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut total = 0;
    for group in ["data", "binaryData"] {
        let Some(Value::Object(data)) = object.get(group) else {
            continue;
        };
        for (key, value) in data {
            for message in names::config_map_key(key) {
                errors.push(FieldError::invalid(
                    format!("{group}[{key}]"),
                    key.as_str(),
                    message,
                ));
            }
            if group == "binaryData"
                && object
                    .pointer(&format!(
                        "/data/{}",
                        key.replace('~', "~0").replace('/', "~1")
                    ))
                    .is_some()
            {
                errors.push(FieldError::invalid(
                    format!("data[{key}]"),
                    key.as_str(),
                    "duplicate of key present in binaryData",
                ));
            }
            total += key.len() + value.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_DATA_SIZE {
        errors.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
    errors
}

/// `ValidateService` for ClusterIP, NodePort, LoadBalancer and ExternalName services.
pub(crate) fn service(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let kind = str_of(spec, "type");
    if !["", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&kind) {
        errors.push(FieldError::not_supported(
            "spec.type",
            kind,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let ports = list(spec, "ports");
    let headless = str_of(spec, "clusterIP") == "None";
    if ports.is_empty() && kind != "ExternalName" && !headless {
        errors.push(FieldError::required("spec.ports", ""));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let name = str_of(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errors.push(FieldError::required(format!("{field}.name"), ""));
        }
        if !name.is_empty() {
            for message in names::dns1123_label(name) {
                errors.push(FieldError::invalid(format!("{field}.name"), name, message));
            }
            if !seen.insert(name.to_owned()) {
                errors.push(FieldError::duplicate(format!("{field}.name"), name));
            }
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&number) {
            errors.push(FieldError::invalid(
                format!("{field}.port"),
                number,
                "must be between 1 and 65535, inclusive",
            ));
        }
        match port.get("targetPort") {
            Some(Value::Number(n)) if !(1..=65535).contains(&n.as_i64().unwrap_or(0)) => {
                errors.push(FieldError::invalid(
                    format!("{field}.targetPort"),
                    n.clone(),
                    "must be between 1 and 65535, inclusive",
                ));
            }
            Some(Value::String(s)) => {
                for message in names::port_name(s) {
                    errors.push(FieldError::invalid(
                        format!("{field}.targetPort"),
                        s.as_str(),
                        message,
                    ));
                }
            }
            _ => {}
        }
        if let Some(protocol) = port.get("protocol").and_then(Value::as_str)
            && !["TCP", "UDP", "SCTP"].contains(&protocol)
        {
            errors.push(FieldError::not_supported(
                format!("{field}.protocol"),
                protocol,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    errors.extend(super::meta::labels(spec.get("selector"), "spec.selector"));
    errors
}

/// `ValidatePersistentVolumeClaim`: access modes and a storage request.
pub(crate) fn persistent_volume_claim(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    if list(spec, "accessModes").is_empty() {
        errors.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for (i, mode) in list(spec, "accessModes").iter().enumerate() {
        let mode = mode.as_str().unwrap_or("");
        if ![
            "ReadWriteOnce",
            "ReadOnlyMany",
            "ReadWriteMany",
            "ReadWriteOncePod",
        ]
        .contains(&mode)
        {
            errors.push(FieldError::not_supported(
                format!("spec.accessModes[{i}]"),
                mode,
                &[
                    "ReadOnlyMany",
                    "ReadWriteMany",
                    "ReadWriteOnce",
                    "ReadWriteOncePod",
                ],
            ));
        }
    }
    if spec.pointer("/resources/requests/storage").is_none() {
        errors.push(FieldError::required("spec.resources[storage]", ""));
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{config_map, secret, service};

    #[test]
    fn docker_config_secret_needs_json() {
        let good = json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "eyJhdXRocyI6e319"}});
        assert!(secret(&good).is_empty());
        let bad = json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "bm90IGpzb24="}});
        assert_eq!(
            secret(&bad)[0].to_string(),
            "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": invalid JSON"
        );
        let missing = json!({"type": "kubernetes.io/dockerconfigjson", "data": {}});
        assert_eq!(
            secret(&missing)[0].to_string(),
            "data[.dockerconfigjson]: Required value"
        );
    }

    #[test]
    fn config_map_keys() {
        let errors = config_map(&json!({"data": {"ok.sh": "x", "bad/key": "y"}}));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .starts_with("data[bad/key]: Invalid value: \"bad/key\": a valid config key")
        );
    }

    #[test]
    fn service_ports() {
        assert_eq!(
            service(&json!({"spec": {}}))[0].to_string(),
            "spec.ports: Required value"
        );
        let two = json!({"spec": {"ports": [{"port": 80}, {"port": 0, "name": "b"}]}});
        let errors: Vec<String> = service(&two).iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "spec.ports[0].name: Required value",
                "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive"
            ]
        );
    }
}
