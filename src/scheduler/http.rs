//! The scheduler's HTTP face: routes, token check, long polls.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::registry::PollStart;
use super::Shared;
use crate::protocol::{
    paths, DeregisterRequest, Instruction, RegisterRequest, RegisterResponse, WorkerId,
};

/// The router for `shared`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::REGISTER, post(register))
        .route(paths::WORKERS, get(workers))
        .route(paths::POLL, get(poll))
        .route(paths::DEREGISTER, post(deregister))
        .route(paths::RETIRE, post(retire))
        .route(paths::RETIRE_ALL, post(retire_all))
        .route(paths::DONE, post(done))
        .route(paths::TASKS, post(submit_tasks).get(list_tasks))
        .route(paths::TASK, get(task_info))
        .route(paths::TASK_CANCEL, post(cancel_task))
        .route(paths::CLUSTER, get(cluster_status))
        .route(paths::CLUSTER_SCALE, post(cluster_scale))
        .route(paths::CLUSTER_CLOSE, post(cluster_close))
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            refuse_when_stopped,
        ))
        .with_state(shared)
}

/// A stopped scheduler answers nothing more, even on connections opened
/// before it stopped, so its workers see it gone.
async fn refuse_when_stopped(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if shared.stopped.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONNECTION, "close")],
            "scheduler stopped",
        )
            .into_response();
    }
    next.run(request).await
}

/// Refuses any request without the cluster's token, comparing in constant
/// time and logging the refusal without the token.
async fn authenticate(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = presented
        .map(|t| bool::from(t.as_bytes().ct_eq(shared.token.expose().as_bytes())))
        .unwrap_or(false);
    if ok {
        return next.run(request).await;
    }
    tracing::warn!(
        %peer,
        path = %request.uri().path(),
        token = if presented.is_some() { "wrong" } else { "missing" },
        "refused unauthenticated request"
    );
    (StatusCode::UNAUTHORIZED, "missing or wrong cluster token\n").into_response()
}

async fn register(
    State(shared): State<Arc<Shared>>,
    Json(req): Json<RegisterRequest>,
) -> Json<RegisterResponse> {
    let (name, job, host, address) = (
        req.name.clone(),
        req.slurm.to_string(),
        req.hostname.clone(),
        req.address.clone(),
    );
    let id = shared.registry().register(req);
    shared.changed();
    tracing::info!(worker = %id, %name, %job, %host, %address, "worker registered");
    Json(RegisterResponse {
        worker_id: id,
        cluster_id: shared.cluster_id.clone(),
        heartbeat_interval_ms: shared.config.heartbeat_interval.as_millis() as u64,
    })
}

async fn workers(State(shared): State<Arc<Shared>>) -> Json<Vec<crate::protocol::WorkerInfo>> {
    Json(shared.registry().list())
}

#[derive(Deserialize)]
struct PollQuery {
    wait_ms: Option<u64>,
    #[serde(default)]
    draining: bool,
}

/// Counts a held poll for as long as it lives.
struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn poll(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    Query(q): Query<PollQuery>,
) -> Result<Response, StatusCode> {
    let id = WorkerId(id);
    let start = shared.registry().poll(id, q.draining);
    let wake = match start {
        None => return Err(StatusCode::NOT_FOUND),
        Some(PollStart::Now(i)) => return Ok(Json(i).into_response()),
        Some(PollStart::Wait(wake)) => wake,
    };
    let interval = shared.config.heartbeat_interval;
    let held = shared.held_polls.fetch_add(1, Ordering::Relaxed);
    let guard = Held(&shared.held_polls);
    if held >= shared.config.max_held_polls {
        // Enough polls are held: this worker comes back after an interval,
        // and its connection closes meanwhile so it costs no buffers.
        drop(guard);
        let next = Instruction::Continue {
            next_poll_ms: interval.as_millis() as u64,
        };
        return Ok(([(header::CONNECTION, "close")], Json(next)).into_response());
    }
    let wait = q
        .wait_ms
        .map(Duration::from_millis)
        .unwrap_or(interval)
        .min(interval);
    let sleep = tokio::time::sleep(wait);
    tokio::pin!(sleep);
    // Woken by an instruction or by tasks it may run; a wake that finds
    // nothing for it (another worker took the task) waits on.
    let told = loop {
        tokio::select! {
            _ = wake.notified() => {
                if let Some(i) = shared.registry().next_for(id) {
                    break i;
                }
            }
            _ = &mut sleep => break Instruction::Continue { next_poll_ms: 0 },
            _ = shared.stopping.notified() => return Err(StatusCode::SERVICE_UNAVAILABLE),
        }
    };
    drop(guard);
    Ok(Json(told).into_response())
}

async fn deregister(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    Json(req): Json<DeregisterRequest>,
) -> StatusCode {
    let id = WorkerId(id);
    let known = shared.registry().deregister(id, req.reason.clone());
    if !known {
        return StatusCode::NOT_FOUND;
    }
    shared.changed();
    tracing::info!(worker = %id, reason = %req.reason, "worker deregistered");
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct RetireBody {
    reason: Option<String>,
}

async fn retire(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    body: Option<Json<RetireBody>>,
) -> StatusCode {
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "asked to retire".into());
    if shared.registry().retire(WorkerId(id), &reason) {
        shared.changed();
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn retire_all(
    State(shared): State<Arc<Shared>>,
    body: Option<Json<RetireBody>>,
) -> Json<serde_json::Value> {
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "asked to retire".into());
    let n = shared.registry().retire_all(&reason);
    if n > 0 {
        shared.changed();
    }
    tracing::info!(workers = n, %reason, "retiring every worker");
    Json(serde_json::json!({ "retiring": n }))
}

async fn cluster_status(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<crate::protocol::ClusterStatus>, (StatusCode, &'static str)> {
    let source = shared
        .cluster_status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    source
        .and_then(|f| f())
        .map(Json)
        .ok_or((StatusCode::NOT_FOUND, "this scheduler serves no cluster\n"))
}

fn send_control(
    shared: &Shared,
    request: super::ControlRequest,
) -> Result<StatusCode, (StatusCode, &'static str)> {
    let control = shared.control.lock().unwrap_or_else(|e| e.into_inner());
    match control.as_ref() {
        Some(tx) if tx.send(request).is_ok() => Ok(StatusCode::ACCEPTED),
        _ => Err((StatusCode::NOT_FOUND, "this scheduler serves no cluster\n")),
    }
}

#[derive(Deserialize)]
struct ScaleBody {
    workers: usize,
}

async fn cluster_scale(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<ScaleBody>,
) -> Result<StatusCode, (StatusCode, &'static str)> {
    send_control(&shared, super::ControlRequest::Scale(body.workers))
}

async fn cluster_close(
    State(shared): State<Arc<Shared>>,
) -> Result<StatusCode, (StatusCode, &'static str)> {
    send_control(&shared, super::ControlRequest::Close)
}

async fn done(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    Json(reports): Json<Vec<crate::tasks::Completion>>,
) -> StatusCode {
    let mut changed = false;
    {
        let mut registry = shared.registry();
        for done in reports {
            let task = done.task;
            if registry.complete(WorkerId(id), done) {
                changed = true;
            } else {
                tracing::debug!(worker = id, %task, "stale task report ignored");
            }
        }
    }
    if changed {
        shared.changed();
    }
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct SubmitBody {
    tasks: Vec<crate::tasks::TaskSpec>,
}

async fn submit_tasks(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<SubmitBody>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let mut registry = shared.registry();
    let ids = registry
        .tasks
        .submit(body.tasks)
        .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    registry.wake_idle();
    drop(registry);
    shared.changed();
    Ok(Json(serde_json::json!({ "ids": ids })))
}

#[derive(Deserialize)]
struct ListQuery {
    /// Comma-separated task ids; all tasks when absent.
    ids: Option<String>,
    /// Only the counts.
    #[serde(default)]
    summary: bool,
}

async fn list_tasks(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<crate::tasks::TaskList>, (StatusCode, String)> {
    let ids = match &q.ids {
        Some(text) => Some(
            text.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<crate::tasks::TaskId>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (StatusCode::BAD_REQUEST, e))?,
        ),
        None => None,
    };
    let registry = shared.registry();
    let counts = registry.tasks.counts();
    let tasks = if q.summary {
        Vec::new()
    } else {
        registry.tasks.list(ids.as_deref())
    };
    Ok(Json(crate::tasks::TaskList { counts, tasks }))
}

async fn task_info(
    State(shared): State<Arc<Shared>>,
    Path(task): Path<u64>,
) -> Result<Json<crate::tasks::TaskInfo>, (StatusCode, &'static str)> {
    shared
        .registry()
        .tasks
        .info(crate::tasks::TaskId(task))
        .map(Json)
        .ok_or((StatusCode::NOT_FOUND, "no such task\n"))
}

async fn cancel_task(State(shared): State<Arc<Shared>>, Path(task): Path<u64>) -> StatusCode {
    let mut registry = shared.registry();
    let id = crate::tasks::TaskId(task);
    if registry.tasks.info(id).is_none() {
        return StatusCode::NOT_FOUND;
    }
    registry.tasks.cancel(id);
    registry.wake_idle();
    drop(registry);
    shared.changed();
    StatusCode::NO_CONTENT
}
