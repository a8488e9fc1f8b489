//! Selecting files for artifacts and caches and writing zip and gzip archives; extraction is in
//! [`crate::extract`].
//!
//! GitLab: gitlab-runner `commands/helpers/file_archiver.go` (paths, `**` globs, exclude,
//! untracked, the "no matching files" warning) and `commands/helpers/archive/fastzip`.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use crate::error::ExecError;
use crate::trace::Trace;

/// Why an archive could not be made or extracted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A path of `paths:` points outside the project directory.
    #[error("path `{path}` is outside the project directory")]
    OutsideProject {
        /// The path as written.
        path: String,
    },
    /// A pattern of `paths:` or `exclude:` is not a valid glob.
    #[error("failed to parse the glob `{pattern}`")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// The cause.
        #[source]
        source: globset::Error,
    },
    /// An archive entry would escape the target directory; nothing was extracted.
    #[error("refusing to extract `{}`: entry `{entry}` {reason}", archive.display())]
    Hostile {
        /// The archive.
        archive: PathBuf,
        /// The entry name.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The archive is not a readable zip file.
    #[error("failed to read the archive `{}`", archive.display())]
    Read {
        /// The archive.
        archive: PathBuf,
        /// The cause.
        #[source]
        source: zip::result::ZipError,
    },
    /// Writing the archive failed.
    #[error("failed to write the archive `{}`", archive.display())]
    Write {
        /// The archive.
        archive: PathBuf,
        /// The cause.
        #[source]
        source: zip::result::ZipError,
    },
    /// A file operation failed.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_owned();
    move |source| ArchiveError::Io {
        action,
        path,
        source,
    }
}

/// The files chosen for an archive, and the lines to show in the trace.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// Relative paths (directories too), sorted.
    pub(crate) entries: BTreeSet<PathBuf>,
    /// `("info" | "warning", line)` in order.
    pub(crate) messages: Vec<(bool, String)>,
}

/// What to put in an archive.
#[derive(Debug, Clone, Default)]
pub(crate) struct SelectSpec<'a> {
    pub(crate) paths: &'a [String],
    pub(crate) exclude: &'a [String],
    pub(crate) untracked: Option<Vec<PathBuf>>,
}

fn glob(pattern: &str) -> Result<GlobMatcher, ArchiveError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|source| ArchiveError::BadGlob {
            pattern: pattern.to_owned(),
            source,
        })
}

fn has_glob_chars(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// Makes `path` relative to `root`, refusing anything that leaves it (lexically).
pub(crate) fn relative_inside(root: &Path, path: &str) -> Option<PathBuf> {
    let raw = Path::new(path);
    let raw = if raw.is_absolute() {
        raw.strip_prefix(root).ok()?
    } else {
        raw
    };
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// All entries below `root` (relative, not following symlinks), directories included.
fn walk(root: &Path) -> Vec<(PathBuf, bool)> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let rel = entry.path().strip_prefix(root).ok()?.to_owned();
            Some((rel, entry.file_type().is_dir()))
        })
        .collect()
}

/// [`select`] on a blocking thread, its messages written to `trace` (warnings as warnings).
pub(crate) async fn select_traced<E>(
    root: PathBuf,
    paths: Vec<String>,
    exclude: Vec<String>,
    untracked: Option<Vec<PathBuf>>,
    trace: &mut Trace,
) -> Result<BTreeSet<PathBuf>, E>
where
    E: From<ExecError> + From<ArchiveError>,
{
    let selection = tokio::task::spawn_blocking(move || {
        select(
            &root,
            &SelectSpec {
                paths: &paths,
                exclude: &exclude,
                untracked,
            },
        )
    })
    .await
    .map_err(ExecError::Join)??;
    for (warning, line) in &selection.messages {
        if *warning {
            trace.warning(line)
        } else {
            trace.println(line)
        }
    }
    Ok(selection.entries)
}

/// Chooses the files for an archive from `spec`, relative to `root`.
pub(crate) fn select(root: &Path, spec: &SelectSpec<'_>) -> Result<Selection, ArchiveError> {
    let mut selection = Selection::default();
    let mut all: Option<Vec<(PathBuf, bool)>> = None;
    let canonical_root = fs::canonicalize(root).map_err(io_err("resolve", root))?;
    for pattern in spec.paths {
        let trimmed = pattern.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "." } else { trimmed };
        let Some(rel) = relative_inside(root, trimmed) else {
            return Err(ArchiveError::OutsideProject {
                path: pattern.clone(),
            });
        };
        let rel_str = rel.to_string_lossy().into_owned();
        let mut found = 0usize;
        if has_glob_chars(&rel_str) {
            let matcher = glob(&rel_str)?;
            let entries = all.get_or_insert_with(|| walk(root));
            let mut matched_dirs = Vec::new();
            for (path, is_dir) in entries.iter() {
                if matcher.is_match(path) {
                    found += 1;
                    selection.entries.insert(path.clone());
                    if *is_dir {
                        matched_dirs.push(path.clone());
                    }
                }
            }
            for dir in matched_dirs {
                for (path, _) in entries
                    .iter()
                    .filter(|(p, _)| p.starts_with(&dir) && p != &dir)
                {
                    found += 1;
                    selection.entries.insert(path.clone());
                }
            }
        } else {
            let full = root.join(&rel);
            if let Ok(meta) = fs::symlink_metadata(&full) {
                // A literal path must not reach outside through a symlinked directory.
                let parent = full.parent().unwrap_or(root);
                let inside = fs::canonicalize(parent).is_ok_and(|p| p.starts_with(&canonical_root));
                if !inside {
                    return Err(ArchiveError::OutsideProject {
                        path: pattern.clone(),
                    });
                }
                if rel.as_os_str().is_empty() || meta.is_dir() {
                    for (path, _) in walk(&full) {
                        found += 1;
                        selection.entries.insert(rel.join(path));
                    }
                }
                if !rel.as_os_str().is_empty() {
                    found += 1;
                    selection.entries.insert(rel.clone());
                }
            }
        }
        if found == 0 {
            selection.messages.push((
                true,
                format!(
                    "{pattern}: no matching files. Ensure that the artifact path is relative to the \
                     working directory ({})",
                    root.display()
                ),
            ));
        } else {
            selection.messages.push((
                false,
                format!("{pattern}: found {found} matching artifact files and directories"),
            ));
        }
    }
    if let Some(untracked) = &spec.untracked {
        let count = untracked.len();
        selection.entries.extend(untracked.iter().cloned());
        selection
            .messages
            .push((false, format!("untracked: found {count} files")));
    }
    if !spec.exclude.is_empty() {
        let mut builder = GlobSetBuilder::new();
        for pattern in spec.exclude {
            let rel = relative_inside(root, pattern.trim_end_matches('/')).ok_or_else(|| {
                ArchiveError::OutsideProject {
                    path: pattern.clone(),
                }
            })?;
            let glob = GlobBuilder::new(&rel.to_string_lossy())
                .literal_separator(true)
                .build()
                .map_err(|source| ArchiveError::BadGlob {
                    pattern: pattern.clone(),
                    source,
                })?;
            builder.add(glob);
        }
        let set: GlobSet = builder.build().map_err(|source| ArchiveError::BadGlob {
            pattern: spec.exclude.join(", "),
            source,
        })?;
        let before = selection.entries.len();
        selection.entries.retain(|path| {
            !path
                .ancestors()
                .any(|a| !a.as_os_str().is_empty() && set.is_match(a))
        });
        let excluded = before - selection.entries.len();
        if excluded > 0 {
            selection
                .messages
                .push((false, format!("excluded {excluded} files")));
        }
    }
    Ok(selection)
}

/// Writes `entries` (relative to `root`, files only) as GitLab's `gzip` artifact format: one gzip
/// member per file, its header naming the file (base name) and its path (comment), as
/// gitlab-runner `helpers/archives/gzip_create.go`. Blocking.
pub(crate) fn write_gzip(
    root: &Path,
    entries: &BTreeSet<PathBuf>,
    archive: &Path,
) -> Result<u64, ArchiveError> {
    use std::io::Write as _;
    let mut out = io::BufWriter::new(fs::File::create(archive).map_err(io_err("create", archive))?);
    let mut count = 0;
    for rel in entries {
        let full = root.join(rel);
        let Ok(meta) = fs::metadata(&full) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| u32::try_from(d.as_secs()).ok())
            .unwrap_or_default();
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut encoder = flate2::GzBuilder::new()
            .filename(name)
            .comment(rel.to_string_lossy().into_owned())
            .mtime(mtime)
            .write(&mut out, flate2::Compression::default());
        let mut source = fs::File::open(&full).map_err(io_err("read", &full))?;
        io::copy(&mut source, &mut encoder).map_err(io_err("archive", &full))?;
        encoder.finish().map_err(io_err("write", archive))?;
        count += 1;
    }
    out.flush().map_err(io_err("write", archive))?;
    Ok(count)
}

/// A file time as a zip time (UTC, 2-second resolution); `None` outside 1980–2107.
pub(crate) fn to_zip_time(time: std::time::SystemTime) -> Option<zip::DateTime> {
    let secs = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let days = i64::try_from(secs / 86_400).ok()?;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    zip::DateTime::from_date_and_time(
        u16::try_from(year).ok()?,
        month,
        day,
        u8::try_from(rem / 3600).ok()?,
        u8::try_from(rem / 60 % 60).ok()?,
        u8::try_from(rem % 60).ok()?,
    )
    .ok()
}

/// A zip time (read as UTC, as [`to_zip_time`] writes it) as a file time.
pub(crate) fn from_zip_time(time: zip::DateTime) -> Option<std::time::SystemTime> {
    let days = days_from_civil(i64::from(time.year()), time.month(), time.day());
    let secs = days * 86_400
        + i64::from(time.hour()) * 3600
        + i64::from(time.minute()) * 60
        + i64::from(time.second());
    let secs = u64::try_from(secs).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

/// (year, month, day) → days since 1970-01-01, the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::relative_inside;

    #[test]
    fn zip_times_round_trip_at_two_second_resolution() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_288_000 + 3_723);
        let zip = super::to_zip_time(time).expect("in range");
        assert_eq!(
            (zip.year(), zip.month(), zip.day(), zip.hour(), zip.minute()),
            (2025, 11, 28, 1, 2)
        );
        assert_eq!(
            super::from_zip_time(zip),
            Some(time - std::time::Duration::from_secs(1))
        );
    }

    #[test]
    fn relative_paths_may_not_leave_the_root() {
        let root = Path::new("/b/p");
        assert_eq!(
            relative_inside(root, "a/../b").as_deref(),
            Some(Path::new("b"))
        );
        assert_eq!(
            relative_inside(root, "/b/p/x").as_deref(),
            Some(Path::new("x"))
        );
        assert!(relative_inside(root, "../x").is_none());
        assert!(relative_inside(root, "/etc/passwd").is_none());
    }
}
