//! Acting from the page (`POST /ui/action`): scale the pool or a group,
//! cancel a job, cancel a task. The session cookie is `SameSite=Strict`,
//! and every action must also carry the session's action token (in
//! `X-Drover-Action-Token`), which only a page served to that session
//! holds: a request another site makes cannot. The cluster's token (a
//! client, not a browser) needs none. The page asks for a confirmation
//! first; the journal records every action done.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use subtle::ConstantTimeEq;

use super::super::http::{bearer, scale_to, Refused};
use super::Shared;
use crate::protocol::{paths, unix_ms, PageAction, TaskId};
use crate::scheduler::ControlRequest;

/// Whether the request may act: the cluster's token, or a live session
/// whose action token it carries.
fn may_act(shared: &Shared, headers: &HeaderMap) -> bool {
    if bearer(headers).is_some_and(|t| shared.is_token(t)) {
        return true;
    }
    let presented = headers
        .get(paths::ACTION_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok());
    let expected = super::login::session_id(&shared.cluster_id, headers).and_then(|s| {
        let now = std::time::Instant::now();
        shared.page.logins.lock().actions_token(&s, now)
    });
    match (presented, expected) {
        (Some(p), Some(e)) => bool::from(p.as_bytes().ct_eq(e.expose().as_bytes())),
        _ => false,
    }
}

/// The action token of the session `headers` carry, for its page.
pub(crate) fn token_for_page(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    let session = super::login::session_id(&shared.cluster_id, headers)?;
    let now = std::time::Instant::now();
    let token = shared.page.logins.lock().actions_token(&session, now)?;
    Some(token.expose().to_string())
}

fn refused(status: StatusCode, why: impl Into<String>) -> Refused {
    (status, why.into())
}

/// `POST /ui/action`: does `action`, once allowed; answers what was done.
pub(crate) async fn act(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(action): Json<PageAction>,
) -> Result<String, Refused> {
    if !may_act(&shared, &headers) {
        let why = "this action needs the page's action token: reload the page\n";
        return Err(refused(StatusCode::FORBIDDEN, why));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return Err(refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send JSON\n"));
    }
    match &action {
        PageAction::Scale { group, workers } => scale_to(&shared, group.as_deref(), *workers)?,
        PageAction::CancelJob { job } => cancel_job(&shared, job)?,
        PageAction::CancelTask { task } => {
            if !shared.cancel_task(TaskId(*task)) {
                return Err(refused(StatusCode::NOT_FOUND, format!("no task t{task}\n")));
            }
        }
    }
    shared.registry().record_action(&action, unix_ms());
    tracing::info!(%action, "done from the status page");
    Ok(format!("{action}: asked\n"))
}

/// Cancels job `job` of the pool through the group it belongs to.
fn cancel_job(shared: &Shared, job: &str) -> Result<(), Refused> {
    let unknown = || {
        refused(
            StatusCode::NOT_FOUND,
            format!("no job {job} in this pool\n"),
        )
    };
    if job.len() > 64 {
        return Err(unknown());
    }
    let status = shared.cluster_status.lock().clone().and_then(|f| f());
    // A pool with groups lists every group's jobs, each with its group.
    let found = status
        .as_ref()
        .and_then(|s| s.job_for(job))
        .ok_or_else(unknown)?;
    let (parsed, group) = (found.job, found.group.clone());
    let controls = shared.control.lock();
    let control = controls
        .route(group.as_deref())
        .map_err(|e| refused(StatusCode::BAD_REQUEST, format!("{e}\n")))?;
    control
        .tx
        .send(ControlRequest::CancelJob(parsed))
        .map_err(|_| unknown())
}
