//! Exit statuses. Every error type of the library says which status it
//! means, matching its own variants exhaustively, so the command line
//! never guesses: bad input exits 2 (as clap's usage errors do), anything
//! that went wrong at run time exits 1.

/// The status for bad input: a flag, a file or a value the user gave.
pub const USAGE: u8 = 2;
/// The status for a failure at run time.
pub const FAILURE: u8 = 1;

/// An error that knows the process exit status it stands for.
pub trait ExitStatus {
    /// `USAGE` when the user's input was at fault, else `FAILURE`.
    fn exit_code(&self) -> u8;
}

impl ExitStatus for std::io::Error {
    fn exit_code(&self) -> u8 {
        FAILURE
    }
}

impl ExitStatus for serde_json::Error {
    fn exit_code(&self) -> u8 {
        FAILURE
    }
}
