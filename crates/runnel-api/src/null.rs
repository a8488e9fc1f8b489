//! Reading `null` as the default value, because GitLab sends `null` for some empty lists.

use serde::{Deserialize, Deserializer};

/// Deserializes `null` (or a missing key, together with `#[serde(default)]`) as `T::default()`.
///
/// `#[serde(default)]` alone only covers a missing key; GitLab also sends explicit `null`
/// (for example `"entrypoint": null`, `"dependencies": null`). gitlab-runner-rs calls this
/// `deserialize_null_default`.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
