//! Kubernetes resource quantities (`500m`, `1.5`, `2Gi`, `1e3`) as numbers: to compare a job's
//! overwrite with `*_overwrite_max_allowed` (the text itself goes into the pod spec), and for
//! the fake API server of the tests (`runnel-kube-fake`), which validates and applies them.
//! `k8s-openapi`'s `Quantity` is only a string.
//!
//! GitLab: gitlab-runner `executors/kubernetes/overwrites.go` `evaluateMaxResourceOverwrite`
//! (`resource.ParseQuantity` and `Cmp`); the syntax is Kubernetes' `resource.Quantity`.

/// A quantity as a number of base units (cores, bytes); `None` when it is malformed.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number == "+" || number == "-" {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().ok()?;
            10f64.powi(power)
        }
        _ => return None,
    };
    let result = value * factor;
    result.is_finite().then_some(result)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quantities_in_every_notation() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("1.5"), Some(1.5));
        assert_eq!(parse("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1G"), Some(1e9));
        assert_eq!(parse("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert!(parse("2Gi").unwrap_or(0.0) > parse("2G").unwrap_or(f64::MAX));
    }

    #[test]
    fn malformed_quantities_are_none() {
        for bad in ["", "Gi", "1Q", "abc", "1.2.3", "-"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
