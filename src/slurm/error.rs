//! Slurm's failures, classified once, here: the rest of drover matches on
//! these kinds and never on Slurm's words. The words are kept verbatim for
//! the user.

use crate::exit::{ExitStatus, FAILURE, USAGE};

/// Why Slurm refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Job arrays are not allowed, or not this large (`MaxArraySize`).
    Arrays,
    /// A per-user, QOS or association limit, or a busy controller: the
    /// same request may pass later.
    Limit,
    /// The partition does not exist or may not be used.
    Partition,
    /// The account or QOS does not exist or may not be used.
    Account,
    /// The job asks for more than the partition's nodes can give.
    Resources,
    /// Anything else Slurm said no to.
    Other,
}

/// A Slurm request that failed, with Slurm's own words.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// Slurm's controller does not answer: down, restarting or overloaded
    /// (or the command outlived drover's time limit). Nothing about the
    /// jobs can be concluded from this.
    #[error("Slurm is not answering: `{command}`: {message}")]
    Unreachable {
        /// The command.
        command: String,
        /// Slurm's message, verbatim, or the time limit that ran out.
        message: String,
    },
    /// Slurm answered, and refused.
    #[error("`{command}` failed ({status}): {message}")]
    Refused {
        /// The command.
        command: String,
        /// Its exit status.
        status: String,
        /// What kind of refusal.
        refusal: Refusal,
        /// Slurm's message, verbatim.
        message: String,
    },
    /// The command could not be started at all.
    #[error("cannot run `{command}`: {cause} (is Slurm installed and on PATH?)")]
    Spawn {
        /// The command.
        command: String,
        /// The operating system's reason, kept for the message.
        cause: std::io::Error,
    },
    /// Slurm did not take our credentials (an expired or foreign token):
    /// as with no answer, nothing about the jobs can be concluded.
    #[error("Slurm does not accept our credentials: {message}")]
    Unauthorized {
        /// What was wrong, and how to mend it.
        message: String,
    },
    /// How drover was told to reach Slurm cannot work (no slurmrestd
    /// address, no token, no API version both sides speak).
    #[error("{message}")]
    Config {
        /// What is wrong, naming the setting.
        message: String,
    },
    /// The command's output was not what it documents.
    #[error("`{command}` printed something unexpected: {output}")]
    Unexpected {
        /// The command.
        command: String,
        /// What it printed.
        output: String,
    },
}

impl ExitStatus for SlurmError {
    fn exit_code(&self) -> u8 {
        match self {
            SlurmError::Refused {
                refusal: Refusal::Partition | Refusal::Account | Refusal::Resources,
                ..
            }
            | SlurmError::Config { .. } => USAGE,
            SlurmError::Refused { .. }
            | SlurmError::Unauthorized { .. }
            | SlurmError::Unreachable { .. }
            | SlurmError::Spawn { .. }
            | SlurmError::Unexpected { .. } => FAILURE,
        }
    }
}

impl SlurmError {
    /// A command that exited unsuccessfully, classified by what it printed.
    pub fn failed(command: String, status: String, stderr: String) -> SlurmError {
        match classify(&stderr) {
            None => SlurmError::Unreachable {
                command,
                message: stderr,
            },
            Some(refusal) => SlurmError::Refused {
                command,
                status,
                refusal,
                message: stderr,
            },
        }
    }

    /// Whether Slurm did not answer (as opposed to answering no): it was
    /// away, or would not hear us (credentials it does not take).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            SlurmError::Unreachable { .. } | SlurmError::Unauthorized { .. }
        )
    }

    /// The kind of refusal, when Slurm refused.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            SlurmError::Refused { refusal, .. } => Some(*refusal),
            _ => None,
        }
    }

    /// Whether the same request may succeed later without any change:
    /// Slurm was away, or a limit held it back.
    pub fn is_transient(&self) -> bool {
        self.is_unreachable() || self.refusal() == Some(Refusal::Limit)
    }
}

/// What Slurm's message means: `None` when the controller did not answer
/// at all, else the kind of refusal. Order matters: a message that says
/// the controller is unreachable also quotes the request (`--array=0-3`),
/// so unreachability is recognised first.
pub(crate) fn classify(message: &str) -> Option<Refusal> {
    const UNREACHABLE: &[&str] = &[
        "Unable to contact slurm controller",
        "Socket timed out",
        "Connection refused",
        "Zero Bytes were transmitted or received",
        "backup controller in standby mode",
        "Communication connection failure",
    ];
    const KINDS: &[(Refusal, &[&str])] = &[
        (
            Refusal::Limit,
            &[
                "MaxSubmit",
                "MaxJobs",
                "QOSMax",
                "AssocMax",
                "JobLimit",
                "job limit",
                "Job violates accounting/QOS policy",
                "Resource temporarily unavailable",
                "Slurm temporarily unable to accept job",
            ],
        ),
        (
            Refusal::Arrays,
            &[
                "Invalid job array specification",
                "job array",
                "MaxArraySize",
            ],
        ),
        (
            Refusal::Partition,
            &["invalid partition", "Invalid partition"],
        ),
        (
            Refusal::Account,
            &[
                "Invalid account",
                "Invalid qos",
                "Invalid QOS",
                "account/partition combination",
            ],
        ),
        (
            Refusal::Resources,
            &[
                "Requested node configuration is not available",
                "More processors requested than permitted",
                "Memory required by task is not available",
                "Node count specification invalid",
                "Requested partition configuration not available",
            ],
        ),
    ];
    if UNREACHABLE.iter().any(|t| message.contains(t)) {
        return None;
    }
    Some(
        KINDS
            .iter()
            .find(|(_, texts)| texts.iter().any(|t| message.contains(t)))
            .map(|(kind, _)| *kind)
            .unwrap_or(Refusal::Other),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(stderr: &str) -> Option<Refusal> {
        SlurmError::failed("sbatch".into(), "exit status: 1".into(), stderr.into()).refusal()
    }

    #[test]
    fn an_unreachable_controller_is_not_a_refused_array() {
        // What sbatch printed while slurmctld was down: it quotes the array.
        let e = SlurmError::failed(
            "sbatch --parsable --array=0-3".into(),
            "exit status: 1".into(),
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)".into(),
        );
        assert!(e.is_unreachable() && e.is_transient());
        assert_eq!(e.refusal(), None);
    }

    #[test]
    fn refusals_are_told_apart_by_slurms_words() {
        assert_eq!(
            kind("sbatch: error: Batch job submission failed: Invalid job array specification"),
            Some(Refusal::Arrays)
        );
        assert_eq!(
            kind("sbatch: error: QOSMaxSubmitJobPerUserLimit"),
            Some(Refusal::Limit)
        );
        assert_eq!(
            kind("sbatch: error: Batch job submission failed: Invalid partition name specified"),
            Some(Refusal::Partition)
        );
        assert_eq!(
            kind("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"),
            Some(Refusal::Account)
        );
        assert_eq!(
            kind("sbatch: error: Batch job submission failed: Requested node configuration is not available"),
            Some(Refusal::Resources)
        );
        assert_eq!(kind("sbatch: error: something new"), Some(Refusal::Other));
        let limit =
            SlurmError::failed("sbatch".into(), "1".into(), "AssocMaxSubmitJobLimit".into());
        assert!(limit.is_transient() && !limit.is_unreachable());
        assert_eq!(limit.exit_code(), FAILURE);
        let partition = SlurmError::failed("sbatch".into(), "1".into(), "invalid partition".into());
        assert_eq!(partition.exit_code(), USAGE);
    }
}
