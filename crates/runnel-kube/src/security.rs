//! Security contexts of the job pod and its containers.
//!
//! GitLab: gitlab-runner `common/config.go` (`GetContainerSecurityContext`,
//! `GetPodSecurityContext`) and `executors/kubernetes/kubernetes.go` (`getCapabilities`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SELinuxOptions, SecurityContext,
};

use crate::settings::{self, KubeSettings};

/// gitlab-runner `GetContainerSecurityContext` with `NET_RAW` dropped by default.
pub(crate) fn container_security_context(
    settings: &KubeSettings,
    context: &settings::ContainerSecurityContext,
) -> SecurityContext {
    // gitlab-runner `getCapabilities`: the default drop, then `cap_add`, then `cap_drop`.
    let mut enabled: BTreeMap<&str, bool> = BTreeMap::from([("NET_RAW", false)]);
    for cap in &settings.cap_add {
        enabled.insert(cap, true);
    }
    for cap in &settings.cap_drop {
        enabled.insert(cap, false);
    }
    let pick = |on: bool| -> Option<Vec<String>> {
        let caps: Vec<String> = enabled
            .iter()
            .filter(|(_, e)| **e == on)
            .map(|(c, _)| (*c).to_owned())
            .collect();
        (!caps.is_empty()).then_some(caps)
    };
    let mut add = pick(true);
    let mut drop = pick(false);
    if let Some(caps) = &context.capabilities {
        if caps.add.is_some() {
            add.clone_from(&caps.add);
        }
        if caps.drop.is_some() {
            drop.clone_from(&caps.drop);
        }
    }
    let capabilities = (add.is_some() || drop.is_some()).then_some(Capabilities { add, drop });
    SecurityContext {
        capabilities,
        privileged: context.privileged.or(settings.privileged),
        allow_privilege_escalation: context
            .allow_privilege_escalation
            .or(settings.allow_privilege_escalation),
        run_as_group: context.run_as_group,
        run_as_non_root: context.run_as_non_root,
        run_as_user: context.run_as_user,
        read_only_root_filesystem: context.read_only_root_filesystem,
        proc_mount: match context.proc_mount.to_ascii_lowercase().as_str() {
            "unmasked" => Some("Unmasked".to_owned()),
            "default" => Some("Default".to_owned()),
            _ => None,
        },
        se_linux_options: (!context.selinux_type.is_empty()).then(|| SELinuxOptions {
            type_: Some(context.selinux_type.clone()),
            ..SELinuxOptions::default()
        }),
        ..SecurityContext::default()
    }
}

/// gitlab-runner `GetPodSecurityContext`: `None` when nothing is set.
pub(crate) fn pod_security_context(
    config: &settings::PodSecurityContext,
) -> Option<PodSecurityContext> {
    if config == &settings::PodSecurityContext::default() {
        return None;
    }
    Some(PodSecurityContext {
        fs_group: config.fs_group,
        run_as_group: config.run_as_group,
        run_as_non_root: config.run_as_non_root,
        run_as_user: config.run_as_user,
        supplemental_groups: (!config.supplemental_groups.is_empty())
            .then(|| config.supplemental_groups.clone()),
        se_linux_options: (!config.selinux_type.is_empty()).then(|| SELinuxOptions {
            type_: Some(config.selinux_type.clone()),
            ..SELinuxOptions::default()
        }),
        ..PodSecurityContext::default()
    })
}
