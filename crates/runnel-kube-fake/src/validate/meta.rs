//! `ValidateObjectMeta` of `k8s.io/apimachinery/pkg/api/validation/objectmeta.go`: the name (or
//! `generateName`), labels, annotations and owner references, on the normalised JSON object.

use serde_json::Value;

use super::names;
use crate::status::FieldError;

/// Which syntax a kind's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// RFC 1123 subdomain (pods, secrets, config maps, …).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Dns1035,
}

impl NameRule {
    fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => names::dns1123_subdomain(name),
            NameRule::Label => names::dns1123_label(name),
            NameRule::Dns1035 => names::dns1035_label(name),
        }
    }
}

/// Total size limit of all annotations (`TotalAnnotationSizeLimitB`).
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// Validates `metadata` of an object being created.
pub(crate) fn validate(object: &Value, rule: NameRule) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let meta = object.get("metadata").unwrap_or(&Value::Null);
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let generate = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() && generate.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    }
    if !name.is_empty() {
        for message in rule.check(name) {
            errors.push(FieldError::invalid("metadata.name", name, message));
        }
    }
    if !generate.is_empty() {
        // A prefix may end in `-`: the random suffix follows it.
        let masked = generate.strip_suffix('-').unwrap_or(generate);
        for message in rule.check(masked) {
            errors.push(FieldError::invalid(
                "metadata.generateName",
                generate,
                message,
            ));
        }
    }
    errors.extend(labels(meta.get("labels"), "metadata.labels"));
    errors.extend(annotations(meta.get("annotations")));
    errors.extend(owner_references(meta.get("ownerReferences")));
    errors
}

/// `ValidateLabels`: every key a qualified name, every value a label value.
pub(crate) fn labels(labels: Option<&Value>, field: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(Value::Object(map)) = labels else {
        return errors;
    };
    for (key, value) in map {
        for message in names::qualified_name(key) {
            errors.push(FieldError::invalid(field, key.as_str(), message));
        }
        let value = value.as_str().unwrap_or("");
        for message in names::label_value(value) {
            errors.push(FieldError::invalid(field, value, message));
        }
    }
    errors
}

fn annotations(annotations: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(Value::Object(map)) = annotations else {
        return errors;
    };
    let mut total = 0;
    for (key, value) in map {
        for message in names::qualified_name(&key.to_lowercase()) {
            errors.push(FieldError::invalid(
                "metadata.annotations",
                key.as_str(),
                message,
            ));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_LIMIT {
        errors.push(FieldError::too_long(
            "metadata.annotations",
            ANNOTATIONS_LIMIT,
        ));
    }
    errors
}

fn owner_references(references: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(Value::Array(list)) = references else {
        return errors;
    };
    let field = "metadata.ownerReferences";
    let mut controllers = 0;
    for reference in list {
        for (key, what) in [
            ("apiVersion", "version"),
            ("kind", "kind"),
            ("name", "name"),
            ("uid", "uid"),
        ] {
            if reference
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                errors.push(FieldError::invalid(
                    format!("{field}.{key}"),
                    "",
                    format!("{what} must not be empty"),
                ));
            }
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        errors.push(FieldError::invalid(
            field,
            references.cloned().unwrap_or(Value::Null),
            "Only one reference can have Controller set to true",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{NameRule, validate};

    #[test]
    fn name_or_generate_name_required() {
        let errors = validate(&json!({"metadata": {}}), NameRule::Subdomain);
        assert_eq!(
            errors[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert!(
            validate(
                &json!({"metadata": {"generateName": "runner-abc-"}}),
                NameRule::Subdomain
            )
            .is_empty()
        );
    }

    #[test]
    fn bad_labels_and_owner_references() {
        let object = json!({"metadata": {"name": "p", "labels": {"bad key": "ok", "k": "-bad"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "", "uid": "u"}]}});
        let errors: Vec<String> = validate(&object, NameRule::Subdomain)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "metadata.labels: Invalid value: \"bad key\": name part must consist of"
            )
        );
        assert!(
            errors[1]
                .starts_with("metadata.labels: Invalid value: \"-bad\": a valid label must be")
        );
        assert_eq!(
            errors[2],
            "metadata.ownerReferences.name: Invalid value: \"\": name must not be empty"
        );
    }

    #[test]
    fn service_names_are_dns_1035() {
        assert_eq!(
            validate(&json!({"metadata": {"name": "0svc"}}), NameRule::Dns1035).len(),
            1
        );
    }
}
