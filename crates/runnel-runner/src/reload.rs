//! Hot reload of `config.toml`: a notify watcher on the file's directory (editors and
//! ConfigMaps replace the file rather than write it) plus gitlab-runner's 3-second mtime check
//! as a fallback (`commands/multi.go`). An invalid edit is logged with its position and the
//! last good config stays in force; the failed mtime is remembered so it is not retried.
//!
//! One edit is one reload: the watcher's events are let settle before the file is read (an
//! in-place write is a truncation and a write, two events), and a file whose contents are
//! those last read is not loaded again when only its mtime moved (the mtime check seeing an
//! edit the watcher already loaded, or the stat falling between the truncation and the write).
//! SIGHUP always reloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::Watcher;
use tokio::sync::{mpsc, watch};

use crate::config::{Config, load, parse};
use crate::metrics::Metrics;

/// gitlab-runner's reload check interval.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(3);
/// How long the watcher must stay quiet after an event before the file is read.
const SETTLE: Duration = Duration::from_millis(200);

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
    // The contents last read; `None` until the first reload (the daemon read the first one).
    let mut last_source: Option<String> = None;
    loop {
        let (forced, notified) = tokio::select! {
            () = tokio::time::sleep(RELOAD_CHECK_INTERVAL) => (false, false),
            Some(()) = events.recv() => (false, true),
            Some(()) = force.recv() => (true, false),
            () = sender.closed() => break,
        };
        if notified {
            settle(&mut events).await;
        }
        let current = mtime(&path);
        if !forced && current == seen {
            continue;
        }
        seen = current;
        let source = std::fs::read_to_string(&path).ok();
        if !forced && source.is_some() && source == last_source {
            continue;
        }
        let result = match &source {
            Some(source) => parse(&path, source),
            None => load(&path),
        };
        last_source = source;
        match result {
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

/// Waits until no watcher event came for [`SETTLE`], so that the events of one edit make one
/// reload of the finished file.
async fn settle(events: &mut mpsc::Receiver<()>) {
    while let Ok(Some(())) = tokio::time::timeout(SETTLE, events.recv()).await {}
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
