//! Rewriting `config.toml` for register, unregister and token rotation. Unlike gitlab-runner,
//! which re-encodes its whole struct, the file is edited in place with `toml_edit`, so the
//! user's comments, order and unknown keys survive. Files are written with mode 0600 through a
//! temporary file and a rename, so a reader never sees half a file.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::load::{ConfigError, Position};
use super::types::RunnerConfig;

/// A config file opened for editing.
#[derive(Debug)]
pub struct ConfigEditor {
    path: PathBuf,
    document: toml_edit::DocumentMut,
}

impl ConfigEditor {
    /// Opens `path`; a missing file starts as gitlab-runner's new file (`concurrent = 1`,
    /// `check_interval = 0`).
    pub fn open(path: &Path) -> Result<Self, ConfigError> {
        let source = match std::fs::read_to_string(path) {
            Ok(source) => source,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                "concurrent = 1\ncheck_interval = 0\nshutdown_timeout = 0\n".to_owned()
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let document = source.parse::<toml_edit::DocumentMut>().map_err(|err| {
            let offset = err.span().map_or(0, |span| span.start);
            let loaded_position = position_of(path, &source, offset);
            ConfigError::Invalid {
                position: loaded_position,
                message: err.message().to_owned(),
            }
        })?;
        Ok(Self {
            path: path.to_owned(),
            document,
        })
    }

    /// Appends a `[[runners]]` entry.
    pub fn add_runner(&mut self, runner: &RunnerConfig) {
        #[derive(Serialize)]
        struct Wrapper<'a> {
            runners: [&'a RunnerConfig; 1],
        }
        let text = toml::to_string(&Wrapper { runners: [runner] })
            .expect("a RunnerConfig always serializes to TOML");
        let fresh: toml_edit::DocumentMut = text.parse().expect("toml's own output is valid TOML");
        let Some(table) = fresh
            .get("runners")
            .and_then(toml_edit::Item::as_array_of_tables)
            .and_then(|tables| tables.get(0))
        else {
            return;
        };
        let runners = self
            .document
            .entry("runners")
            .or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
        if let Some(tables) = runners.as_array_of_tables_mut() {
            tables.push(table.clone());
        }
    }

    /// Removes every `[[runners]]` entry for which `remove(name, token)` is true, and returns
    /// how many were removed.
    pub fn remove_runners(&mut self, mut remove: impl FnMut(&str, &str) -> bool) -> usize {
        let Some(tables) = self
            .document
            .get_mut("runners")
            .and_then(toml_edit::Item::as_array_of_tables_mut)
        else {
            return 0;
        };
        let before = tables.len();
        tables.retain(|table| {
            let name = table
                .get("name")
                .and_then(toml_edit::Item::as_str)
                .unwrap_or("");
            let token = table
                .get("token")
                .and_then(toml_edit::Item::as_str)
                .unwrap_or("");
            !remove(name, token)
        });
        before - tables.len()
    }

    /// Replaces a runner's token and its timestamps (token rotation).
    pub fn set_token(
        &mut self,
        old_token: &str,
        new_token: &str,
        obtained_at: Option<toml::value::Datetime>,
        expires_at: Option<toml::value::Datetime>,
    ) -> Result<(), ConfigError> {
        let no_runner = || ConfigError::NoSuchRunner {
            path: self.path.clone(),
        };
        let tables = self
            .document
            .get_mut("runners")
            .and_then(toml_edit::Item::as_array_of_tables_mut)
            .ok_or_else(no_runner)?;
        let table = tables
            .iter_mut()
            .find(|table| table.get("token").and_then(toml_edit::Item::as_str) == Some(old_token))
            .ok_or_else(no_runner)?;
        table["token"] = toml_edit::value(new_token);
        for (key, at) in [
            ("token_obtained_at", obtained_at),
            ("token_expires_at", expires_at),
        ] {
            if let Some(at) = at {
                table[key] = toml_edit::value(toml_datetime(at));
            }
        }
        Ok(())
    }

    /// The document as it would be written.
    pub fn to_text(&self) -> String {
        self.document.to_string()
    }

    /// Writes the file atomically with mode 0600, creating its directory (0700) if needed.
    pub fn save(&self) -> Result<(), ConfigError> {
        write_private(&self.path, self.to_text().as_bytes()).map_err(|source| ConfigError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

fn toml_datetime(at: toml::value::Datetime) -> toml_edit::Datetime {
    at.to_string()
        .parse()
        .expect("a toml datetime reparses as a toml_edit datetime")
}

fn position_of(path: &Path, source: &str, offset: usize) -> Position {
    let before = source.get(..offset.min(source.len())).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    Position {
        path: path.to_owned(),
        line,
        column,
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename; the
/// file is created with mode 0600 and its directory with 0700.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
    }
    let file_name = path
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_os_string());
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(&file_name);
    temp_name.push(format!(".tmp{}", std::process::id()));
    let temp = dir.join(temp_name);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::ConfigEditor;
    use crate::config::types::RunnerConfig;

    #[test]
    fn adding_a_runner_keeps_comments_and_unknown_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "# my runners\nconcurrent = 4 # four\nfancy_new_key = true\n",
        )
        .expect("write");
        let mut editor = ConfigEditor::open(&path).expect("open");
        editor.add_runner(&RunnerConfig {
            name: "r1".into(),
            url: "https://gitlab.example.com/".into(),
            token: "glrt-abc".into(),
            executor: "shell".into(),
            ..RunnerConfig::default()
        });
        editor.save().expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# my runners\nconcurrent = 4 # four\nfancy_new_key = true\n"));
        assert!(text.contains("[[runners]]\nname = \"r1\""), "{text}");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn removing_a_runner_keeps_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[[runners]]\nname = \"a\"\ntoken = \"t1\"\n\n# keep me\n[[runners]]\nname = \"b\"\ntoken = \"t2\"\n",
        )
        .expect("write");
        let mut editor = ConfigEditor::open(&path).expect("open");
        assert_eq!(editor.remove_runners(|name, _| name == "a"), 1);
        let text = editor.to_text();
        assert!(!text.contains("\"a\""));
        assert!(text.contains("# keep me"), "{text}");
    }
}
