//! gitlab-runner's `config.toml`: its types, reading with positions, and in-place rewriting.

mod edit;
mod executors;
mod load;
mod types;

pub use edit::{ConfigEditor, write_private};
pub use executors::{
    CustomConfig, DockerConfig, DockerService, KubernetesConfig, ParallelsConfig, SshConfig,
    VirtualBoxConfig,
};
pub use load::{ConfigError, Loaded, Position, UnknownKey, default_config_path, load, parse};
pub use types::{
    ArtifactConfig, CacheAzure, CacheConfig, CacheGcs, CacheS3, Config, CustomBuildDir,
    RunnerConfig, SessionServer, short_token,
};
