//! The fake's node: it runs each pod's containers on the Docker engine.

mod container;
mod node;
mod pod;
mod sandbox;
mod schedule;
mod start;
mod status;

pub use node::LABEL_INSTANCE;
pub(crate) use node::{Kubelet, Termination, leftovers, sweep, sweep_stale};
