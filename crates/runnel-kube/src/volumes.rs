//! The job pod's volumes and their mounts: the builds (`repo`) and scripts volumes and
//! `[runners.kubernetes.volumes]` (`host_path`, `secret`, `pvc`, `config_map`, `empty_dir`).
//!
//! GitLab: gitlab-runner `executors/kubernetes/kubernetes.go` (`getVolumeMounts`,
//! `getVolumes*`, `getVolumesForHostPaths`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath,
    PersistentVolumeClaimVolumeSource, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::pod::{PodPlan, scripts_dir};

pub(crate) fn volume_mounts(plan: &PodPlan<'_>) -> Vec<VolumeMount> {
    let job = plan.job;
    let expand = |text: &str| job.variables.expand(text);
    let optional = |text: &str| (!text.is_empty()).then(|| expand(text));
    let propagation = |mode: &Option<String>| mode.clone().filter(|m| !m.is_empty());
    let volumes = &plan.settings.volumes;
    let mut mounts = Vec::new();
    if !plan.legacy_exec {
        mounts.push(mount("scripts", scripts_dir(job)));
    }
    for v in &volumes.host_path {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            read_only: v.read_only.then_some(true),
            mount_propagation: propagation(&v.mount_propagation),
            ..VolumeMount::default()
        });
    }
    for v in &volumes.secret {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            read_only: v.read_only.then_some(true),
            ..VolumeMount::default()
        });
    }
    for v in &volumes.pvc {
        mounts.push(VolumeMount {
            name: expand(&v.name),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            read_only: v.read_only.then_some(true),
            mount_propagation: propagation(&v.mount_propagation),
            ..VolumeMount::default()
        });
    }
    for v in &volumes.config_map {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            read_only: v.read_only.then_some(true),
            ..VolumeMount::default()
        });
    }
    for v in &volumes.empty_dir {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: expand(&v.mount_path),
            sub_path: optional(&v.sub_path),
            mount_propagation: propagation(&v.mount_propagation),
            ..VolumeMount::default()
        });
    }
    // The builds directory the scripts use; runnel prepares the job on the runner's host and
    // copies it in (see the crate's documentation).
    mounts.push(mount("repo", crate::executor::REMOTE_BUILDS_DIR.to_owned()));
    mounts
}

fn mount(name: &str, path: String) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path,
        ..VolumeMount::default()
    }
}

fn empty_dir() -> Option<EmptyDirVolumeSource> {
    Some(EmptyDirVolumeSource::default())
}

fn items(items: &BTreeMap<String, String>) -> Option<Vec<KeyToPath>> {
    (!items.is_empty()).then(|| {
        items
            .iter()
            .map(|(key, path)| KeyToPath {
                key: key.clone(),
                path: path.clone(),
                mode: None,
            })
            .collect()
    })
}

pub(crate) fn volumes(plan: &PodPlan<'_>) -> Vec<Volume> {
    let job = plan.job;
    let config = &plan.settings.volumes;
    let mut volumes = Vec::new();
    for v in &config.host_path {
        // gitlab-runner `getVolumesForHostPaths`: the mount path when no host path is given.
        let path = if v.host_path.is_empty() {
            &v.mount_path
        } else {
            &v.host_path
        };
        volumes.push(Volume {
            name: v.name.clone(),
            host_path: Some(HostPathVolumeSource {
                path: job.variables.expand(path),
                type_: None,
            }),
            ..Volume::default()
        });
    }
    for v in &config.secret {
        volumes.push(Volume {
            name: v.name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(v.name.clone()),
                items: items(&v.items),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    for v in &config.pvc {
        let name = job.variables.expand(&v.name);
        volumes.push(Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: name,
                read_only: v.read_only.then_some(true),
            }),
            ..Volume::default()
        });
    }
    for v in &config.config_map {
        volumes.push(Volume {
            name: v.name.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: v.name.clone(),
                items: items(&v.items),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    for v in &config.empty_dir {
        volumes.push(Volume {
            name: v.name.clone(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: (!v.medium.is_empty()).then(|| v.medium.clone()),
                size_limit: (!v.size_limit.is_empty()).then(|| Quantity(v.size_limit.clone())),
            }),
            ..Volume::default()
        });
    }
    volumes.push(Volume {
        name: "repo".to_owned(),
        empty_dir: empty_dir(),
        ..Volume::default()
    });
    if !plan.legacy_exec {
        volumes.push(Volume {
            name: "scripts".to_owned(),
            empty_dir: empty_dir(),
            ..Volume::default()
        });
    }
    volumes
}
