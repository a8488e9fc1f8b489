//! The runner daemon: gitlab-runner's `config.toml`, the system id, the coordinator HTTP
//! client, the job manager (polling, trace patching, cancellation), metrics and hot reload.
//!
//! This crate must not parse `.gitlab-ci.yml`: jobs arrive as `runnel_api::JobPayload` and are
//! executed by `runnel-exec`.

pub mod cache;
pub mod client;
pub mod config;
pub mod custom_adapter;
pub mod daemon;
pub mod docker_adapter;
pub mod exec_adapter;
pub mod executor;
mod job;
#[cfg(feature = "kubernetes")]
pub mod kube_adapter;
pub mod metrics;
mod poller;
pub mod register;
pub mod reload;
pub mod rotation;
pub mod service;
pub mod session;
pub mod ssh_adapter;
pub mod system_id;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod trace_patch;
pub mod trim;
pub use toml;
