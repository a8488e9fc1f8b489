//! A pod's sandbox: the "pause" container whose network (and IPC) namespace every container
//! of the pod joins, so they reach each other on `localhost` and share `/etc/hosts` with the
//! `hostAliases` entries; and the pod's volumes as Docker volumes (emptyDir, claims) or bind
//! mounts (hostPath), with configMap, secret, projected and downwardAPI volumes written into
//! Docker volumes through the pause container.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{CreateContainerOptionsBuilder, UploadToContainerOptionsBuilder};
use bytes::Bytes;
use serde_json::Value;

use super::container::data_of;
use super::node::Labels;
use crate::kind::Kind;
use crate::store::Store;

/// Where a volume's files live.
#[derive(Debug, Clone)]
pub(crate) enum Backing {
    /// A Docker volume; `host_dir` is its mount point on the engine's host (for `subPath`).
    Volume {
        name: String,
        host_dir: String,
        read_only: bool,
    },
    /// A host directory or file (`hostPath`).
    Host { path: String },
}

impl Backing {
    pub(crate) fn read_only(&self) -> bool {
        matches!(
            self,
            Backing::Volume {
                read_only: true,
                ..
            }
        )
    }
}

/// The pod's sandbox once it exists.
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    pub pause_id: String,
    pub volumes: HashMap<String, Backing>,
    pub pod_ip: String,
    pub host_ip: String,
}

/// Where the pause container sees each Docker volume, to write files into it.
const STAGING: &str = "/.kube-fake";

/// Creates the volumes and the pause container. `Err` is the `FailedMount`/sandbox message.
pub(crate) async fn create(
    docker: &Docker,
    labels: &Labels,
    pod: &Value,
    claims: &HashMap<String, String>,
    pause_image: &str,
) -> Result<Sandbox, String> {
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut volumes = HashMap::new();
    let mut staging = Vec::new();
    for volume in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
        let backing = if let Some(host) = volume.get("hostPath") {
            host_path(host)?
        } else {
            let (docker_name, read_only, medium) = if let Some(claim) = volume
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
            {
                let claim_uid = claims
                    .get(claim)
                    .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" not found"))?;
                (
                    format!("kube-fake-{}-pvc-{claim_uid}", labels.instance),
                    false,
                    "",
                )
            } else if let Some(empty) = volume.get("emptyDir") {
                (
                    format!("k8s_{uid}_{name}"),
                    false,
                    empty.get("medium").and_then(Value::as_str).unwrap_or(""),
                )
            } else if ["configMap", "secret", "projected", "downwardAPI"]
                .iter()
                .any(|k| volume.get(*k).is_some())
            {
                (format!("k8s_{uid}_{name}"), true, "")
            } else {
                let kind = volume
                    .as_object()
                    .and_then(|m| m.keys().find(|k| *k != "name").cloned())
                    .unwrap_or_default();
                return Err(format!(
                    "MountVolume.SetUp failed for volume \"{name}\" : the fake cluster cannot mount {kind} volumes"
                ));
            };
            let host_dir = create_volume(
                docker,
                labels,
                &docker_name,
                medium,
                volume.get("persistentVolumeClaim").is_some(),
            )
            .await?;
            staging.push(Mount {
                target: Some(format!("{STAGING}/{name}")),
                source: Some(docker_name.clone()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            });
            Backing::Volume {
                name: docker_name,
                host_dir,
                read_only,
            }
        };
        volumes.insert(name.to_owned(), backing);
    }
    let pause_id = create_pause(docker, labels, pod, &spec, staging, pause_image).await?;
    let inspect = docker
        .inspect_container(&pause_id, None)
        .await
        .map_err(|e| format!("failed to inspect the sandbox: {e}"))?;
    let endpoint = inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.into_values().next());
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let (pod_ip, host_ip) = if host_network {
        ("127.0.0.1".to_owned(), "127.0.0.1".to_owned())
    } else {
        let ip = endpoint
            .as_ref()
            .and_then(|e| e.ip_address.clone())
            .filter(|i| !i.is_empty())
            .unwrap_or_default();
        let gateway = endpoint
            .as_ref()
            .and_then(|e| e.gateway.clone())
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        (ip, gateway)
    };
    Ok(Sandbox {
        pause_id,
        volumes,
        pod_ip,
        host_ip,
    })
}

fn host_path(host: &Value) -> Result<Backing, String> {
    let path = host
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let exists = std::path::Path::new(&path);
    match host.get("type").and_then(Value::as_str).unwrap_or("") {
        "DirectoryOrCreate" => std::fs::create_dir_all(&path)
            .map_err(|e| format!("failed to create hostPath directory {path}: {e}"))?,
        "FileOrCreate" if !exists.exists() => {
            std::fs::write(&path, b"")
                .map_err(|e| format!("failed to create hostPath file {path}: {e}"))?;
        }
        "Directory" if !exists.is_dir() => {
            return Err(format!(
                "hostPath type check failed: {path} is not a directory"
            ));
        }
        "File" if !exists.is_file() => {
            return Err(format!("hostPath type check failed: {path} is not a file"));
        }
        "Socket" | "CharDevice" | "BlockDevice" if !exists.exists() => {
            return Err(format!("hostPath type check failed: {path} does not exist"));
        }
        _ => {}
    }
    Ok(Backing::Host { path })
}

async fn create_volume(
    docker: &Docker,
    labels: &Labels,
    name: &str,
    medium: &str,
    claim: bool,
) -> Result<String, String> {
    let mut driver_opts = HashMap::new();
    if medium == "Memory" {
        driver_opts.insert("type".to_owned(), "tmpfs".to_owned());
        driver_opts.insert("device".to_owned(), "tmpfs".to_owned());
    }
    let mut volume_labels = labels.base();
    if claim {
        // A claim outlives the pod: only the instance label, so the pod's cleanup keeps it.
        volume_labels.retain(|k, _| k == super::node::LABEL_INSTANCE);
    }
    let request = VolumeCreateRequest {
        name: Some(name.to_owned()),
        driver_opts: (!driver_opts.is_empty()).then_some(driver_opts),
        labels: Some(volume_labels),
        ..Default::default()
    };
    let volume = docker
        .create_volume(request)
        .await
        .map_err(|e| format!("failed to create volume {name}: {e}"))?;
    Ok(volume.mountpoint)
}

async fn create_pause(
    docker: &Docker,
    labels: &Labels,
    pod: &Value,
    spec: &Value,
    mounts: Vec<Mount>,
    image: &str,
) -> Result<String, String> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("pod");
    let hostname: String = spec
        .get("hostname")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .chars()
        .take(63)
        .collect();
    let mut extra_hosts = Vec::new();
    for alias in spec
        .get("hostAliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ip = alias.get("ip").and_then(Value::as_str).unwrap_or("");
        for host in alias
            .get("hostnames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            extra_hosts.push(format!("{host}:{ip}"));
        }
    }
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let dns = |key: &str| -> Option<Vec<String>> {
        spec.pointer(&format!("/dnsConfig/{key}"))
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
    };
    let mut pause_labels = labels.base();
    pause_labels.insert(super::node::LABEL_CONTAINER.to_owned(), "POD".to_owned());
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec!["sleep".to_owned(), "2147483647".to_owned()]),
        hostname: (!host_network).then_some(hostname),
        labels: Some(pause_labels),
        host_config: Some(HostConfig {
            network_mode: host_network.then(|| "host".to_owned()),
            ipc_mode: Some("shareable".to_owned()),
            extra_hosts: (!extra_hosts.is_empty()).then_some(extra_hosts),
            dns: dns("nameservers"),
            dns_search: dns("searches"),
            mounts: Some(mounts),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(&labels.container_name("POD"))
        .build();
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| format!("failed to create the pod sandbox: {e}"))?;
    docker
        .start_container(&created.id, None)
        .await
        .map_err(|e| format!("failed to start the pod sandbox: {e}"))?;
    Ok(created.id)
}

/// Writes the files of configMap, secret, projected and downwardAPI volumes. `Err` is the
/// `FailedMount` message (a missing object or key); the kubelet tries again later.
pub(crate) async fn fill(
    docker: &Docker,
    sandbox: &Sandbox,
    store_view: &Store,
    pod: &Value,
    token: &str,
) -> Result<(), String> {
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let mut archives = Vec::new();
    for volume in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
        let mut files = Vec::new();
        if let Some(source) = volume.get("configMap") {
            object_files(
                store_view,
                namespace,
                Kind::ConfigMap,
                source,
                "name",
                &mut files,
            )?;
        } else if let Some(source) = volume.get("secret") {
            object_files(
                store_view,
                namespace,
                Kind::Secret,
                source,
                "secretName",
                &mut files,
            )?;
        } else if let Some(source) = volume.get("downwardAPI") {
            downward_files(pod, source, &mut files);
        } else if let Some(projected) = volume.get("projected") {
            for source in projected
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(s) = source.get("configMap") {
                    object_files(
                        store_view,
                        namespace,
                        Kind::ConfigMap,
                        s,
                        "name",
                        &mut files,
                    )?;
                } else if let Some(s) = source.get("secret") {
                    object_files(store_view, namespace, Kind::Secret, s, "name", &mut files)?;
                } else if let Some(s) = source.get("downwardAPI") {
                    downward_files(pod, s, &mut files);
                } else if let Some(s) = source.get("serviceAccountToken") {
                    let path = s.get("path").and_then(Value::as_str).unwrap_or("token");
                    files.push((path.to_owned(), token.as_bytes().to_vec(), 0o644));
                }
            }
        } else {
            continue;
        }
        archives.push((name.to_owned(), tar_of(&files)?));
    }
    for (name, archive) in archives {
        let options = UploadToContainerOptionsBuilder::default()
            .path(&format!("{STAGING}/{name}"))
            .build();
        docker
            .upload_to_container(
                &sandbox.pause_id,
                Some(options),
                bollard::body_full(Bytes::from(archive)),
            )
            .await
            .map_err(|e| format!("MountVolume.SetUp failed for volume \"{name}\" : {e}"))?;
    }
    Ok(())
}

type File = (String, Vec<u8>, u32);

fn object_files(
    store: &Store,
    namespace: &str,
    kind: Kind,
    source: &Value,
    name_key: &str,
    files: &mut Vec<File>,
) -> Result<(), String> {
    let name = source.get(name_key).and_then(Value::as_str).unwrap_or("");
    let optional = source.get("optional").and_then(Value::as_bool) == Some(true);
    let default_mode = source
        .get("defaultMode")
        .and_then(Value::as_u64)
        .unwrap_or(0o644) as u32;
    let word = if kind == Kind::Secret {
        "secret"
    } else {
        "configmap"
    };
    let Some(object) = store.get(kind, namespace, name) else {
        return if optional {
            Ok(())
        } else {
            Err(format!(
                "MountVolume.SetUp failed for volume : {word} \"{name}\" not found"
            ))
        };
    };
    let data = data_of(kind, object);
    match source.get("items").and_then(Value::as_array) {
        None => files.extend(
            data.into_iter()
                .map(|(k, v)| (k, v.into_bytes(), default_mode)),
        ),
        Some(items) => {
            for item in items {
                let key = item.get("key").and_then(Value::as_str).unwrap_or("");
                let path = item.get("path").and_then(Value::as_str).unwrap_or(key);
                let mode = item
                    .get("mode")
                    .and_then(Value::as_u64)
                    .map_or(default_mode, |m| m as u32);
                match data.iter().find(|(k, _)| k == key) {
                    Some((_, value)) => {
                        files.push((path.to_owned(), value.clone().into_bytes(), mode))
                    }
                    None if optional => {}
                    None if kind == Kind::Secret => {
                        return Err(format!("references non-existent secret key: {key}"));
                    }
                    None => {
                        return Err(format!(
                            "configmap references non-existent config key: {key}"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn downward_files(pod: &Value, source: &Value, files: &mut Vec<File>) {
    let default_mode = source
        .get("defaultMode")
        .and_then(Value::as_u64)
        .unwrap_or(0o644) as u32;
    for item in source
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = item.get("path").and_then(Value::as_str).unwrap_or("");
        let field = item
            .pointer("/fieldRef/fieldPath")
            .and_then(Value::as_str)
            .unwrap_or("");
        let map_lines = |key: &str| {
            pod.pointer(&format!("/metadata/{key}"))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}={}\n",
                                Value::String(v.as_str().unwrap_or("").to_owned())
                            )
                        })
                        .collect::<String>()
                })
                .unwrap_or_default()
        };
        let content = match field {
            "metadata.labels" => map_lines("labels"),
            "metadata.annotations" => map_lines("annotations"),
            other => {
                let key = other.strip_prefix("metadata.").unwrap_or(other);
                pod.pointer(&format!("/metadata/{key}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            }
        };
        let mode = item
            .get("mode")
            .and_then(Value::as_u64)
            .map_or(default_mode, |m| m as u32);
        files.push((path.to_owned(), content.into_bytes(), mode));
    }
}

fn tar_of(files: &[File]) -> Result<Vec<u8>, String> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _, _) in files {
        let mut parent = std::path::Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    let fail = |e: std::io::Error| format!("failed to write the volume archive: {e}");
    for dir in dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder
            .append_data(&mut header, &dir, std::io::empty())
            .map_err(fail)?;
    }
    for (path, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_size(content.len() as u64);
        builder
            .append_data(&mut header, path, content.as_slice())
            .map_err(fail)?;
    }
    builder.into_inner().map_err(fail)
}
