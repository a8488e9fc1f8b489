//! The coordinator HTTP client: GitLab's runner API (`/api/v4/runners*`, `/api/v4/jobs*`)
//! with gitlab-runner's headers, retries and status handling.

mod artifacts;
mod coordinator;
mod error;
mod jobs;
mod tls;
mod transport;

pub use artifacts::{ArtifactUpload, UploadOutcome};
pub use coordinator::{Coordinator, api_base, http_client, http_client_for};
pub use error::ClientError;
pub use jobs::{JobRequestOutcome, PatchOutcome, UpdateOutcome};
pub use tls::TlsFiles;
pub use transport::{Endpoint, go_arch, go_os, user_agent};
pub(crate) use transport::{RequestLabels, days_from_civil};
