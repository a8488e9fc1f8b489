//! Mistakes in what the user gave runnel (flags, the files they name, `config.toml`,
//! `.gitlab-ci.yml`), told apart from runnel's own failures: `runnel` exits with
//! [`crate::exit_code::USER_ERROR`] for them, as clap does for a usage error, and with
//! [`crate::exit_code::INTERNAL_ERROR`] for everything else.

/// A mistake in the user's input. The message names the flag or file and what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UserError(pub(crate) String);

/// Marks an error as the user's mistake, keeping its whole message (`context: cause`).
pub(crate) trait ResultExt<T> {
    /// The error, if any, becomes a [`UserError`].
    fn user_error(self) -> anyhow::Result<T>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: Into<anyhow::Error>,
{
    fn user_error(self) -> anyhow::Result<T> {
        self.map_err(|err| {
            let err: anyhow::Error = err.into();
            anyhow::Error::new(UserError(format!("{err:#}")))
        })
    }
}
