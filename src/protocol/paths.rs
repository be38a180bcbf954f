//! HTTP paths of the control plane.

use super::{TaskId, WorkerId};

/// `POST`: register a worker.
pub const REGISTER: &str = "/v1/register";
/// `GET`: every worker the scheduler knows.
pub const WORKERS: &str = "/v1/workers";
/// `GET /v1/workers/{id}/poll?wait_ms=N`: heartbeat and wait for instructions.
pub const POLL: &str = "/v1/workers/{id}/poll";
/// `GET` with `Upgrade: drover-session`: a worker's session (see
/// `protocol::session`), in place of polls.
pub const SESSION: &str = "/v1/workers/{id}/session";
/// `POST`: a worker says it is leaving, and why.
pub const DEREGISTER: &str = "/v1/workers/{id}/deregister";
/// `POST`: ask one worker to retire.
pub const RETIRE: &str = "/v1/workers/{id}/retire";
/// `POST`: a worker reports that tasks ended.
pub const DONE: &str = "/v1/workers/{id}/done";
/// `POST` tasks to run; `GET` every task.
pub const TASKS: &str = "/v1/tasks";
/// `GET` one task.
pub const TASK: &str = "/v1/tasks/{task}";
/// `POST`: cancel one task (and what depends on it).
pub const TASK_CANCEL: &str = "/v1/tasks/{task}/cancel";
/// `POST`: ask every live worker to retire.
pub const RETIRE_ALL: &str = "/v1/retire";
/// `GET`: the status of the cluster (pool) the scheduler serves.
pub const CLUSTER: &str = "/v1/cluster";
/// `POST` a `ScaleRequest`: scale the cluster.
pub const CLUSTER_SCALE: &str = "/v1/cluster/scale";
/// `POST` an `AdaptRequest`: size the cluster to its tasks between bounds.
pub const CLUSTER_ADAPT: &str = "/v1/cluster/adapt";
/// `POST`: close the cluster: retire workers, cancel jobs, stop.
pub const CLUSTER_CLOSE: &str = "/v1/cluster/close";
/// `GET`: what the pool cost and used (`Report`).
pub const REPORT: &str = "/v1/report";

/// `POST`: a one-time code that logs a browser in to the status page.
pub const DASHBOARD_CODE: &str = "/v1/dashboard/code";
/// The status page (session cookie or token).
pub const UI: &str = "/ui";
/// `GET /ui/login?code=C`: trade a one-time code for a session cookie.
pub const UI_LOGIN: &str = "/ui/login";
/// `GET`: the live part of the page, as an open page polls for it.
pub const UI_UPDATE: &str = "/ui/update";
/// `GET`: the page's script.
pub const UI_SCRIPT: &str = "/ui/page.js";
/// `GET`: the page's style sheet.
pub const UI_STYLE: &str = "/ui/page.css";
/// `GET`: a worker's (or a job's) own page, with its log.
pub const UI_WORKER: &str = "/ui/workers/{name}";
/// `GET ...?from=N`: the log of a worker's job from byte N on.
pub const UI_WORKER_LOG: &str = "/ui/workers/{name}/log";
/// `POST` a `PageAction` from the status page (a session and its action
/// token, or the cluster's token).
pub const UI_ACTION: &str = "/ui/action";
/// The header a page action carries its session's action token in.
pub const ACTION_TOKEN_HEADER: &str = "x-drover-action-token";

/// A worker's path: `template` with `{id}` replaced.
pub fn worker(template: &str, id: WorkerId) -> String {
    template.replace("{id}", &id.0.to_string())
}

/// A task's path: `template` with `{task}` replaced.
pub fn task(template: &str, id: TaskId) -> String {
    template.replace("{task}", &id.0.to_string())
}

/// The largest request body the scheduler reads, in bytes. Senders split
/// what they send to fit (task reports, submissions); a body over it is
/// refused with 413 before it is read whole.
pub const MAX_BODY: usize = 8 << 20;
