//! The exit codes of `runnel`, chosen in one place (documented in `runnel --help` and the
//! README).

use runnel_runner::config::ConfigError;
use runnel_runner::register::RegisterError;

use crate::user_error::UserError;

/// The pipeline passed, or the configuration is valid.
pub(crate) const SUCCESS: u8 = 0;
/// The pipeline failed, or `runnel lint` found errors in the configuration.
pub(crate) const FAILURE: u8 = 1;
/// A mistake in the user's input: a flag, a file it names (`--variables-file`), `config.toml`,
/// or (for `runnel exec`) `.gitlab-ci.yml`. The same code as clap's usage errors.
pub(crate) const USER_ERROR: u8 = 2;
/// runnel itself failed (I/O, a bug): not the user's pipeline.
pub(crate) const INTERNAL_ERROR: u8 = 101;
/// `runnel exec` was interrupted (Ctrl-C): 128 + SIGINT, as shells report it.
pub(crate) const INTERRUPTED: u8 = 130;

/// The documentation of the exit codes, for `runnel --help`.
pub(crate) const HELP: &str = "Exit codes:
  0    success: the pipeline passed, the configuration is valid
  1    the pipeline failed, or `runnel lint` found errors in the configuration
  2    a mistake in the input: a flag, a file it names, config.toml, .gitlab-ci.yml (exec)
  101  runnel itself failed (I/O, a bug)
  130  interrupted (Ctrl-C)";

/// The exit code of a command that ended with `err`: [`USER_ERROR`] when the user's input
/// caused it, [`INTERNAL_ERROR`] otherwise.
pub(crate) fn of_error(err: &anyhow::Error) -> u8 {
    let user_input = err.chain().any(|cause| {
        if cause.is::<UserError>() || cause.is::<crate::log::LogConfigError>() {
            return true;
        }
        if let Some(config) = cause.downcast_ref::<ConfigError>() {
            return is_user_config_error(config);
        }
        match cause.downcast_ref::<RegisterError>() {
            // A failed request to GitLab is not the user's input.
            Some(RegisterError::Client(_)) | None => false,
            Some(RegisterError::Config(config)) => is_user_config_error(config),
            Some(_) => true,
        }
    });
    if user_input {
        USER_ERROR
    } else {
        INTERNAL_ERROR
    }
}

/// Whether a `config.toml` error is about its content (or a file the user named) rather than
/// runnel failing to write it.
fn is_user_config_error(err: &ConfigError) -> bool {
    !matches!(err, ConfigError::Write { .. })
}
