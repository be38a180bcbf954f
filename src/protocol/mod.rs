//! The control-plane protocol, in one place: the ids and secret of a
//! cluster, every request and response the scheduler, its workers and its
//! clients exchange (typed, with enums for states and actions), the HTTP
//! paths they travel on, and the scheduler file that says where to go.
//! The server (`scheduler/http.rs`) and the client (`client.rs`) use only
//! these types.

mod cluster;
mod file;
mod ids;
mod page;
pub mod paths;
mod pool_state;
mod report;
mod resources;
pub mod session;
mod tasks;
pub mod text;
mod worker;
mod worker_list;

pub use cluster::{
    AdaptRequest, ClusterStatus, DaskStatus, JobAction, JobEnd, JobStatus, MemoryGrowthStatus,
    ScaleRequest,
};
pub use file::{DaskEndpoint, DaskTls, SchedulerFile, SchedulerFileError};
pub use ids::{ClusterId, IdError, TaskId, Token, WorkerId};
pub use page::{
    short_duration, DashboardCode, LineEdit, LiveChange, LogChunk, LogQuery, PageAction,
    PageUpdate, PageUpdateQuery, Sample,
};
pub use pool_state::{
    AdaptDecision, AdaptHold, AdaptStatus, Demand, HoldReason, Holdback, PoolError, PoolPhase,
    StartupFailure, StopCause,
};
pub use report::{Report, ReportSource, Usage};
pub use resources::{
    check_name, check_resources, parse_gpus, parse_resource, Offer, ResourceError, WorkerShape,
    MAX_GPUS, NAME_FORM,
};
pub use tasks::{
    Assignment, Completion, Dep, SubmitRequest, SubmitResponse, TaskCounts, TaskInfo, TaskList,
    TaskListQuery, TaskOutput, TaskSpec, TaskState, MAX_TASKS_PER_REQUEST, TASK_PAGE,
    TASK_PAGE_BYTES,
};
pub use worker::{
    parse_runs, runs_text, Departure, DeregisterRequest, Instruction, PollQuery, RegisterRequest,
    RegisterResponse, RetireAllResponse, RetireRequest, SlurmPlacement, TaskRun, WorkerInfo,
    WorkerState, MAX_HELD_RUNS,
};
pub use worker_list::{WorkerCounts, WorkerList, WorkerListQuery, WORKER_PAGE};

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: the clock every timestamp on the wire uses.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
