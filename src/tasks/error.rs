//! Why a batch of tasks is refused: every variant names the task and the
//! accepted form, and is bad input (exit 2).

use crate::exit::{ExitStatus, USAGE};
use crate::protocol::TaskId;

/// A batch of tasks refused whole, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// A task has no program.
    #[error("task {0} has an empty command")]
    EmptyCommand(String),
    /// A task asks for no cores.
    #[error("task {0} asks for 0 cores; it needs at least 1")]
    NoCores(String),
    /// Two tasks of the batch share a name.
    #[error("two tasks are named `{0}`; names must be unique")]
    DuplicateName(String),
    /// A task names a dependency that is not in the batch.
    #[error("task {task} depends on `{name}`, which is not in this submission")]
    UnknownName {
        /// The task.
        task: String,
        /// The name it gave.
        name: String,
    },
    /// A task names a task id that does not exist.
    #[error("task {task} depends on {id}, which does not exist")]
    UnknownId {
        /// The task.
        task: String,
        /// The id it gave.
        id: TaskId,
    },
    /// A placeholder where its value could be run as code.
    #[error("task {task}: `{{{{{name}}}}}` is in argument {index} ({role}); drover will not put a result there, where it could run as code: write the command as `sh -c '... {{{{{name}}}}} ...'` (the shell then reads it from $DROVER_DEP_{var}), or read $DROVER_DEP_{var} in the program")]
    PlaceholderInCode {
        /// The task.
        task: String,
        /// The placeholder's name.
        name: String,
        /// Which argument of its command.
        index: usize,
        /// What that argument is.
        role: &'static str,
        /// Its environment variable's suffix.
        var: String,
    },
    /// Two dependencies whose results would share one variable.
    #[error("task {task}: its dependencies `{a}` and `{b}` would both be $DROVER_DEP_{var}; rename one (names differing only in `.`, `-` and `_` or in case map to one variable)")]
    DepNamesCollide {
        /// The task.
        task: String,
        /// One name.
        a: String,
        /// The other.
        b: String,
        /// The variable's suffix.
        var: String,
    },
    /// A task depends on itself.
    #[error("task {0} depends on itself")]
    SelfDependency(String),
    /// The batch's dependencies form a cycle.
    #[error("the dependencies form a cycle")]
    Cycle,
    /// A number is outside what drover accepts.
    #[error("task {task}: {field} = {value} is out of range; accepted: {accepted}")]
    OutOfRange {
        /// The task.
        task: String,
        /// The field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// What is accepted.
        accepted: String,
    },
    /// A task asks for more cores than any worker of the pool has.
    #[error("task {task} asks for {cores} cores, but the pool's workers have {max}; no worker could ever run it")]
    TooManyCores {
        /// The task.
        task: String,
        /// Cores asked for.
        cores: u32,
        /// Cores of the pool's largest worker.
        max: u32,
    },
    /// A task asks for more memory than any worker of the pool has.
    #[error("task {task} asks for {asked} of memory, but the pool's workers have {max}; no worker could ever run it")]
    TooMuchMemory {
        /// The task.
        task: String,
        /// Memory asked for.
        asked: String,
        /// Memory of the pool's largest worker.
        max: String,
    },
    /// A resource or group name, or a GPU count, drover does not accept.
    #[error("task {task}: {error}")]
    BadResource {
        /// The task.
        task: String,
        /// What is wrong, naming the field and the accepted form.
        error: crate::protocol::ResourceError,
    },
    /// No worker of the pool could ever hold the task (its GPUs, named
    /// resources or group).
    #[error("task {task} cannot run in this pool: {why}")]
    Unfit {
        /// The task.
        task: String,
        /// Why, with what the pool's workers have.
        why: String,
    },
}

impl ExitStatus for SubmitError {
    fn exit_code(&self) -> u8 {
        match self {
            SubmitError::EmptyCommand(_)
            | SubmitError::NoCores(_)
            | SubmitError::DuplicateName(_)
            | SubmitError::UnknownName { .. }
            | SubmitError::UnknownId { .. }
            | SubmitError::SelfDependency(_)
            | SubmitError::PlaceholderInCode { .. }
            | SubmitError::DepNamesCollide { .. }
            | SubmitError::Cycle
            | SubmitError::OutOfRange { .. }
            | SubmitError::TooManyCores { .. }
            | SubmitError::TooMuchMemory { .. }
            | SubmitError::BadResource { .. }
            | SubmitError::Unfit { .. } => USAGE,
        }
    }
}
