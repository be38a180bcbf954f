//! Work for the pool: tasks are programs (argv, environment, working
//! directory, cores, time limit, retry budget) with dependencies between
//! them. `engine` is the scheduler's book of tasks, `runner` runs one on a
//! worker, `graph` reads graph files and draws them. The task messages
//! themselves are part of the wire protocol (`protocol`), re-exported here.

mod ask;
mod busy;
mod demand;
mod departures;
mod engine;
mod error;
mod fit;
pub mod graph;
mod image;
mod limits;
mod memory_growth;
pub mod outputs;
pub mod placeholders;
mod ready;
pub mod runner;

pub use crate::protocol::{
    Assignment, Completion, Dep, TaskCounts, TaskId, TaskInfo, TaskList, TaskOutput, TaskSpec,
    TaskState,
};
pub use ask::Ask;
pub use busy::{BusyBook, Spent};
pub use engine::{env_name, Engine, SubmitError, LOST_WORKER_RETRIES};
pub use fit::Room;
pub use image::{EngineImage, ImageError, TaskImage};
pub use limits::{MAX_RETRIES, MAX_TASK_CORES, MAX_TASK_MEMORY, MAX_TIME_LIMIT_MS};
