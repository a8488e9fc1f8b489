//! The exit codes of `runnel`, chosen in one place.

/// The pipeline passed, or the configuration is valid.
#[allow(dead_code)]
pub(crate) const SUCCESS: u8 = 0;
/// The pipeline failed, or `runnel lint` found errors in the configuration.
pub(crate) const FAILURE: u8 = 1;
/// runnel itself failed (I/O, a bug): not the user's pipeline.
pub(crate) const INTERNAL_ERROR: u8 = 101;
/// `runnel exec` was interrupted (Ctrl-C): 128 + SIGINT, as shells report it.
pub(crate) const INTERRUPTED: u8 = 130;
