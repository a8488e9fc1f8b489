//! Copying the job's directories between the runner's host and the pod as a tar stream, the
//! way `kubectl cp` does: `runnel helper pack` and `runnel helper unpack` in the helper
//! container read and write the archive on the exec stream's standard input and output; the
//! same two functions run on the host side. The archive format and its rules are
//! [`runnel_exec::dir_tar`]'s, shared with the SSH executor.

use std::io::{self, Read, Write};
use std::path::Path;

pub use runnel_exec::dir_tar::Owner;
use runnel_exec::dir_tar::{self, Unpack};

/// Writes a tar archive of the directories `names` under `parent` to `out`; names that do not
/// exist are left out.
pub fn pack(parent: &Path, names: &[&str], out: impl Write) -> io::Result<()> {
    let dirs: Vec<_> = names.iter().map(|name| parent.join(name)).collect();
    let entries: Vec<(&Path, &str)> = dirs
        .iter()
        .zip(names)
        .map(|(dir, name)| (dir.as_path(), *name))
        .collect();
    dir_tar::pack(&entries, out)?.flush()
}

/// Extracts the archive on `input` into `parent`, replacing each top-level directory it holds.
/// With `owner`, everything extracted is given to that user.
pub fn unpack(input: impl Read, parent: &Path, owner: Option<Owner>) -> io::Result<()> {
    dir_tar::unpack(input, parent, Unpack { only: None, owner })
}
