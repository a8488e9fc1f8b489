//! The exit codes of `runnel`, chosen in one place.

/// The pipeline passed, or the configuration is valid.
#[allow(dead_code)]
pub(crate) const SUCCESS: u8 = 0;
/// The pipeline failed, or `runnel lint` found errors in the configuration.
pub(crate) const FAILURE: u8 = 1;
/// runnel itself failed (I/O, a bug): not the user's pipeline.
pub(crate) const INTERNAL_ERROR: u8 = 101;
