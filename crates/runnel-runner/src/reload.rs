//! Hot reload of `config.toml`: a notify watcher on the file's directory (editors and
//! ConfigMaps replace the file rather than write it) plus gitlab-runner's 3-second mtime check
//! as a fallback (`commands/multi.go`). An invalid edit is logged with its position and the
//! last good config stays in force; the failed mtime is remembered so it is not retried.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::Watcher;
use tokio::sync::{mpsc, watch};

use crate::config::{Config, load};
use crate::metrics::Metrics;

/// gitlab-runner's reload check interval.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(3);

/// The modification time and size of `path`, to compare with later ones. The size catches
/// edits within one tick of the file system's coarse clock.
pub fn mtime(path: &Path) -> Option<(SystemTime, u64)> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.len())))
}

/// Watches `path` and publishes each valid new config on `sender` until the receivers are
/// gone. `loaded` is the modification time of the config already in force (read before it was
/// loaded, so an edit made while loading is not missed). `force` (SIGHUP) reloads at once.
pub async fn watch_config(
    path: PathBuf,
    loaded: Option<(SystemTime, u64)>,
    sender: watch::Sender<Arc<Config>>,
    metrics: Arc<Metrics>,
    mut force: mpsc::Receiver<()>,
) {
    let (events_tx, mut events) = mpsc::channel::<()>(16);
    let watcher = start_watcher(&path, events_tx);
    let mut seen = loaded;
    loop {
        let forced = tokio::select! {
            () = tokio::time::sleep(RELOAD_CHECK_INTERVAL) => false,
            Some(()) = events.recv() => false,
            Some(()) = force.recv() => true,
            () = sender.closed() => break,
        };
        let current = mtime(&path);
        if !forced && current == seen {
            continue;
        }
        seen = current;
        match load(&path) {
            Ok(loaded) => {
                for key in &loaded.unknown_keys {
                    tracing::warn!("{key}");
                }
                metrics.config_loaded(true);
                tracing::info!(path = %path.display(), "configuration reloaded");
                sender.send_replace(Arc::new(loaded.config));
            }
            Err(err) => {
                metrics.config_loaded(false);
                tracing::error!(
                    "failed to reload the configuration, keeping the last good one: {err}"
                );
            }
        }
    }
    drop(watcher);
}

fn start_watcher(path: &Path, events: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let file_name = path.file_name()?.to_os_string();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // A plain write first reports `Access(Open)`: only changes count.
        let relevant = matches!(
            event.kind,
            notify::EventKind::Modify(_)
                | notify::EventKind::Create(_)
                | notify::EventKind::Remove(_)
        ) && event
            .paths
            .iter()
            .any(|p| p.file_name() == Some(file_name.as_os_str()));
        if relevant {
            let _ = events.try_send(());
        }
    })
    .ok()?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some(watcher)
}
