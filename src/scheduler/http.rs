//! The scheduler's HTTP face: routes, token check, long polls. Every body
//! is a type from `protocol`; the work is done by the shared operations.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::control::RouteError;
use super::registry::PollStart;
use super::{ControlRequest, Shared};
use crate::journal::PoolMode;
use crate::protocol::{
    paths, AdaptRequest, ClusterStatus, Completion, DeregisterRequest, Instruction, PollQuery,
    RegisterRequest, RegisterResponse, RetireAllResponse, RetireRequest, ScaleRequest,
    SubmitRequest, SubmitResponse, TaskId, TaskInfo, TaskList, TaskListQuery, WorkerId, WorkerList,
    WorkerListQuery, TASK_PAGE,
};

/// The router for `shared`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::REGISTER, post(register))
        .route(paths::WORKERS, get(workers))
        .route(paths::POLL, get(poll))
        .route(paths::SESSION, get(super::session::open))
        .route(paths::DEREGISTER, post(deregister))
        .route(paths::RETIRE, post(retire))
        .route(paths::RETIRE_ALL, post(retire_all))
        .route(paths::DONE, post(done))
        .route(paths::TASKS, post(submit_tasks).get(list_tasks))
        .route(paths::TASK, get(task_info))
        .route(paths::TASK_CANCEL, post(cancel_task))
        .route(paths::CLUSTER, get(cluster_status))
        .route(paths::CLUSTER_SCALE, post(cluster_scale))
        .route(paths::CLUSTER_ADAPT, post(cluster_adapt))
        .route(paths::CLUSTER_CLOSE, post(cluster_close))
        .route(paths::REPORT, get(report))
        .route(paths::DASHBOARD_CODE, post(super::page::dashboard_code))
        // Above every extractor's own limit: a body this large is refused
        // before it is read whole. Reports are split to fit (`client`).
        .layer(DefaultBodyLimit::max(paths::MAX_BODY))
        .layer(middleware::from_fn_with_state(shared.clone(), durable))
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        // The status page has its own way in (a session cookie).
        .merge(super::page::router(shared.clone()))
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

/// With a journal, an answer leaves only once every change made up to it
/// is on disk: a worker told to run a task, or whose report was taken,
/// finds the same after a restart. One sync covers every answer waiting
/// (the journal writes in batches). A journal that cannot be written (a
/// full disk) fails the request with why, and the change is not
/// acknowledged.
async fn durable(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    match shared.durable().await {
        Ok(()) => response,
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// Refuses any request without the cluster's token, comparing in constant
/// time and logging the refusal without the token.
async fn authenticate(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let presented = bearer(request.headers());
    if presented.is_some_and(|t| shared.is_token(t)) {
        return next.run(request).await;
    }
    // A flood of refused requests must not become a flood of log lines.
    shared.refusals.note(|suppressed| {
        tracing::warn!(
            %peer,
            path = %request.uri().path(),
            token = if presented.is_some() { "wrong" } else { "missing" },
            suppressed,
            "refused unauthenticated request"
        )
    });
    (StatusCode::UNAUTHORIZED, "missing or wrong cluster token\n").into_response()
}

/// The token a request presents (`Authorization: Bearer ...`), if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// A registration whose offer (GPUs, resources, group) is malformed is
/// refused with why: those names end up in every placement decision.
async fn register(
    State(shared): State<Arc<Shared>>,
    Json(req): Json<RegisterRequest>,
) -> Result<Json<RegisterResponse>, (StatusCode, String)> {
    req.offer
        .check()
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")))?;
    Ok(Json(shared.register(req)))
}

/// One page of workers (or only their counts): a pool of 100,000 lists
/// in pages, never in one answer built under the registry's lock.
async fn workers(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<WorkerListQuery>,
) -> Result<Json<WorkerList>, (StatusCode, String)> {
    let limit = q
        .page_size()
        .map_err(|why| (StatusCode::BAD_REQUEST, format!("{why}\n")))?;
    let registry = shared.registry();
    let counts = registry.counts();
    let (workers, more) = match q.summary {
        true => (Vec::new(), false),
        false => registry.page(q.after, limit),
    };
    Ok(Json(WorkerList {
        counts,
        workers,
        more,
    }))
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
    let holding = q.holding.as_deref().and_then(crate::protocol::parse_runs);
    let start = shared.registry().poll(id, q.draining, holding);
    let wake = match start {
        None => return Err(StatusCode::NOT_FOUND),
        Some(PollStart::Now(i)) => return Ok(Json(i).into_response()),
        Some(PollStart::Wait(wake)) => wake,
    };
    let interval = shared.config.heartbeat_interval;
    let held = shared.held_polls.fetch_add(1, Ordering::Relaxed);
    let guard = Held(&shared.held_polls);
    // Held polls may take at most three quarters of the connections, so
    // that workers polling without holding, and tools, still get in.
    let bound = shared
        .config
        .max_held_polls
        .min(shared.limits.max_connections / 4 * 3);
    if held >= bound {
        // Enough polls are held: this worker comes back after an interval,
        // and its connection closes meanwhile so it costs no buffers.
        drop(guard);
        let next = Instruction::Continue {
            next_poll_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
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
    match shared.deregister(WorkerId(id), &req.reason, req.departure) {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_FOUND,
    }
}

fn reason(body: Option<Json<RetireRequest>>) -> String {
    body.and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "asked to retire".into())
}

async fn retire(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    body: Option<Json<RetireRequest>>,
) -> StatusCode {
    match shared.retire(WorkerId(id), &reason(body)) {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_FOUND,
    }
}

async fn retire_all(
    State(shared): State<Arc<Shared>>,
    body: Option<Json<RetireRequest>>,
) -> Json<RetireAllResponse> {
    Json(RetireAllResponse {
        retiring: shared.retire_all(&reason(body)),
    })
}

/// The most workers a scale request may ask for (a pool's own bound).
const MAX_SCALE: usize = 100_000;

const NO_CLUSTER: (StatusCode, &str) =
    (StatusCode::NOT_FOUND, "this scheduler serves no cluster\n");

async fn cluster_status(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<ClusterStatus>, (StatusCode, &'static str)> {
    let source = shared.cluster_status.lock().clone();
    source.and_then(|f| f()).map(Json).ok_or(NO_CLUSTER)
}

async fn report(State(shared): State<Arc<Shared>>) -> Json<crate::protocol::Report> {
    Json(shared.report())
}

/// A control request refused, with why.
pub(crate) type Refused = (StatusCode, String);

fn no_cluster() -> Refused {
    (NO_CLUSTER.0, NO_CLUSTER.1.to_string())
}

async fn cluster_scale(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<ScaleRequest>,
) -> Result<StatusCode, Refused> {
    scale_to(&shared, body.group.as_deref(), body.workers).map(|()| StatusCode::ACCEPTED)
}

/// Asks the pool (or its `group`) for `workers`: over the API, and from
/// the page.
pub(crate) fn scale_to(
    shared: &Shared,
    group: Option<&str>,
    workers: usize,
) -> Result<(), Refused> {
    if workers > MAX_SCALE {
        let why = "workers: accepted: 0 to 100000\n".to_string();
        return Err((StatusCode::BAD_REQUEST, why));
    }
    let controls = shared.control.lock();
    let control = controls.route(group).map_err(|e| match e {
        RouteError::NoCluster => no_cluster(),
        e => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    })?;
    // The new size is recorded here, so that the answer (which waits for
    // the journal) leaves only once a restart would hold it.
    let jobs = control.per_job.jobs_for_workers(workers);
    shared
        .registry()
        .set_pool_mode(control.group.as_deref(), PoolMode::Fixed { jobs });
    match control.tx.send(ControlRequest::Scale(workers)) {
        Ok(()) => Ok(()),
        Err(_) => Err(no_cluster()),
    }
}

async fn cluster_adapt(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<AdaptRequest>,
) -> Result<StatusCode, Refused> {
    if body.max > MAX_SCALE || body.min > body.max {
        let why = "min and max: accepted: 0 <= min <= max <= 100000\n".to_string();
        return Err((StatusCode::BAD_REQUEST, why));
    }
    let controls = shared.control.lock();
    let control = controls.route(body.group.as_deref()).map_err(|e| match e {
        RouteError::NoCluster => no_cluster(),
        e => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    })?;
    // The pool records the mode (with its own idle timeout when none is
    // given) as it takes it.
    let request = ControlRequest::Adapt {
        min: body.min,
        max: body.max,
        idle: body.idle_timeout_ms.map(std::time::Duration::from_millis),
    };
    match control.tx.send(request) {
        Ok(()) => Ok(StatusCode::ACCEPTED),
        Err(_) => Err(no_cluster()),
    }
}

async fn cluster_close(State(shared): State<Arc<Shared>>) -> Result<StatusCode, Refused> {
    let controls = shared.control.lock();
    match controls.first().map(|c| c.tx.send(ControlRequest::Close)) {
        Some(Ok(())) => Ok(StatusCode::ACCEPTED),
        _ => Err(no_cluster()),
    }
}

async fn done(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    Json(reports): Json<Vec<Completion>>,
) -> StatusCode {
    shared.complete(WorkerId(id), reports);
    StatusCode::NO_CONTENT
}

async fn submit_tasks(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<SubmitRequest>,
) -> Result<Json<SubmitResponse>, (StatusCode, String)> {
    shared
        .submit(body.tasks)
        .map(|ids| Json(SubmitResponse { ids }))
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
}

async fn list_tasks(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<TaskListQuery>,
) -> Result<Json<TaskList>, (StatusCode, String)> {
    if q.ids.as_ref().is_some_and(|ids| ids.len() > TASK_PAGE) {
        let why = format!("at most {TASK_PAGE} task ids per request");
        return Err((StatusCode::BAD_REQUEST, why));
    }
    let registry = shared.registry();
    let counts = registry.tasks.counts();
    let (tasks, more) = match q.summary {
        true => (Vec::new(), false),
        false => registry.tasks.page(q.ids.as_deref(), q.after),
    };
    Ok(Json(TaskList {
        counts,
        tasks,
        more,
    }))
}

async fn task_info(
    State(shared): State<Arc<Shared>>,
    Path(task): Path<u64>,
) -> Result<Json<TaskInfo>, (StatusCode, &'static str)> {
    shared
        .registry()
        .tasks
        .info(TaskId(task))
        .map(Json)
        .ok_or((StatusCode::NOT_FOUND, "no such task\n"))
}

async fn cancel_task(State(shared): State<Arc<Shared>>, Path(task): Path<u64>) -> StatusCode {
    match shared.cancel_task(TaskId(task)) {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_FOUND,
    }
}
