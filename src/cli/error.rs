//! The binary's error: any library error with the exit status it carries
//! (`ExitStatus`, matched exhaustively in the library), plus context added
//! here. No list of downcasts: the status is taken when the error is made.

use std::fmt::Display;

use drover::exit::{ExitStatus, FAILURE, USAGE};

/// An error on its way to the user, with the status drover exits with.
#[derive(Debug)]
pub struct CliError {
    code: u8,
    error: anyhow::Error,
}

impl CliError {
    /// Bad input the command line could not refuse by itself: exit 2.
    pub fn usage(message: impl Display) -> Self {
        CliError {
            code: USAGE,
            error: anyhow::anyhow!("{message}"),
        }
    }

    /// Something that went wrong at run time: exit 1.
    pub fn failure(message: impl Display) -> Self {
        CliError {
            code: FAILURE,
            error: anyhow::anyhow!("{message}"),
        }
    }

    /// The exit status.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The error with its context, for the user.
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }
}

impl<E> From<E> for CliError
where
    E: ExitStatus + std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Self {
        CliError {
            code: e.exit_code(),
            error: e.into(),
        }
    }
}

/// `.context()` for results whose errors carry an exit status.
pub trait Context<T> {
    /// Says what was being done, keeping the exit status.
    fn context<C: Display + Send + Sync + 'static>(self, context: C) -> Result<T, CliError>;

    /// Like `context`, computed only on failure.
    fn with_context<C: Display + Send + Sync + 'static>(
        self,
        context: impl FnOnce() -> C,
    ) -> Result<T, CliError>;
}

impl<T, E: Into<CliError>> Context<T> for Result<T, E> {
    fn context<C: Display + Send + Sync + 'static>(self, context: C) -> Result<T, CliError> {
        self.map_err(|e| {
            let e = e.into();
            CliError {
                code: e.code,
                error: e.error.context(context),
            }
        })
    }

    fn with_context<C: Display + Send + Sync + 'static>(
        self,
        context: impl FnOnce() -> C,
    ) -> Result<T, CliError> {
        self.map_err(|e| {
            let e = e.into();
            CliError {
                code: e.code,
                error: e.error.context(context()),
            }
        })
    }
}

/// The result of a command.
pub type CliResult = Result<std::process::ExitCode, CliError>;
