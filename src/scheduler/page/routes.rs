//! The page's HTTP face: the login, the page and the update it polls for,
//! a worker's page and its log, each behind a session (or the token).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{login, render, view, Shared};
use crate::private_fs::read;
use crate::protocol::{paths, DashboardCode, LogQuery, PageUpdateQuery};

/// The longest worker or job name looked up.
const MAX_NAME: usize = 256;

/// The page's routes (the scheduler's router gives them their state).
pub(crate) fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    let behind_login = Router::new()
        .route(paths::UI, get(index))
        .route(
            paths::UI_UPDATE,
            // The one response that repeats every refresh, and the one
            // that grows with the jobs: gzipped for a browser that takes
            // it. Nothing secret is in it (the action token is only in
            // the page itself, which is not compressed: no length to
            // read a secret from).
            get(live_update).layer(tower_http::compression::CompressionLayer::new()),
        )
        .route(paths::UI_SCRIPT, get(script))
        .route(paths::UI_STYLE, get(style))
        .route(paths::UI_WORKER, get(worker_page))
        .route(paths::UI_WORKER_LOG, get(worker_log))
        .route(paths::UI_ACTION, post(super::actions::act))
        .layer(middleware::from_fn_with_state(shared.clone(), logged_in));
    Router::new()
        .route(paths::UI_LOGIN, get(login))
        .merge(behind_login)
        .layer(middleware::map_response(guarded))
}

/// `POST /v1/dashboard/code` (with the token): a one-time login code.
pub(crate) async fn dashboard_code(State(shared): State<Arc<Shared>>) -> Json<DashboardCode> {
    let code = shared
        .page
        .logins
        .lock()
        .new_code(std::time::Instant::now());
    Json(DashboardCode {
        code: code.expose().to_string(),
        expires_in_s: login::CODE_LIFETIME.as_secs(),
    })
}

/// Headers that keep the page to itself: its own scripts and styles
/// only, never framed, never cached, no referrer (a login URL carries a
/// code).
async fn guarded(mut response: Response) -> Response {
    let h = response.headers_mut();
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
               img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Lets through a request with a live session cookie, or the token.
async fn logged_in(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let token = super::super::http::bearer(request.headers()).is_some_and(|t| shared.is_token(t));
    if token || has_session(&shared, request.headers()) {
        return next.run(request).await;
    }
    refused(&shared, peer, request.uri().path(), "no session")
}

/// Whether `headers` carry this cluster's cookie with a live session.
pub(crate) fn has_session(shared: &Shared, headers: &axum::http::HeaderMap) -> bool {
    login::session_id(&shared.cluster_id, headers).is_some_and(|s| {
        shared
            .page
            .logins
            .lock()
            .is_session(&s, std::time::Instant::now())
    })
}

fn refused(shared: &Shared, peer: SocketAddr, path: &str, why: &'static str) -> Response {
    shared.refusals.note(
        |suppressed| tracing::warn!(%peer, path, why, suppressed, "refused a status page request"),
    );
    let text =
        "Not logged in: run `drover dashboard --scheduler-file FILE` and open the URL it prints.\n";
    (StatusCode::UNAUTHORIZED, text).into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    code: String,
    /// The page to show once logged in (one of the status page's own).
    next: Option<String>,
}

/// Trades a one-time code for a session cookie, then shows the page.
async fn login(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let session = (q.code.len() <= 128)
        .then(|| {
            shared
                .page
                .logins
                .lock()
                .redeem(&q.code, std::time::Instant::now())
        })
        .flatten();
    let Some(session) = session else {
        return refused(
            &shared,
            peer,
            paths::UI_LOGIN,
            "unknown, used or expired code",
        );
    };
    let cookie = login::set_cookie(
        &login::cookie_name(&shared.cluster_id),
        &session,
        shared.page.tls,
    );
    let next = q.next.filter(|n| login::is_page_path(n));
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::LOCATION,
                next.unwrap_or_else(|| paths::UI.to_string()),
            ),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

/// The page's facts now, and the pool's sample for this instant.
fn look(shared: &Shared) -> (view::View, crate::protocol::Sample) {
    let now = super::Now::of(shared);
    // A pool's workers are in its jobs; a bare scheduler lists its own.
    let workers = match now.cluster {
        Some(_) => Vec::new(),
        None => shared.registry().list(),
    };
    let current = now.sample();
    let rate = shared
        .page
        .timeline
        .lock()
        .rate_per_minute(&current, 60_000);
    let mut view = view::view(
        now.cluster.as_ref(),
        &workers,
        now.tasks,
        rate,
        current.at_ms,
    );
    view.cost = Some(super::cost::cost_view(&shared.report()));
    (view, current)
}

async fn index(State(shared): State<Arc<Shared>>, headers: axum::http::HeaderMap) -> Html<String> {
    let (view, current) = look(&shared);
    let mut samples = shared.page.timeline.lock().all();
    samples.push(current);
    let actions = super::actions::token_for_page(&shared, &headers);
    let refresh = shared.config.page_refresh;
    Html(render::index(&view, &samples, refresh, actions.as_deref()))
}

/// The live update a page at version `since` polls for: the live part
/// is rendered once a refresh however many pages are open, and each
/// answer made once a refresh per version asked from (`versions.rs`).
fn update(shared: &Shared, since: Option<u64>) -> Arc<str> {
    let fresh = shared.config.page_refresh / 2;
    if shared.page.live.lock().stale(fresh) {
        let (view, current) = look(shared);
        let html = render::live(&view);
        shared.page.live.lock().refreshed(html, current);
    }
    // The diff is worked out of the lock.
    let ask = match shared.page.live.lock().ask(since) {
        Ok(answer) => return answer,
        Err(ask) => ask,
    };
    let answer = ask.answer();
    shared.page.live.lock().answered(&ask, answer.clone());
    answer
}

/// `GET /ui/update?since=N`: what an open page polls for, every
/// `page-refresh`: what changed since its version `N`.
async fn live_update(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<PageUpdateQuery>,
) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        update(&shared, q.since).to_string(),
    )
        .into_response()
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        render::SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        render::STYLE,
    )
}

const NOT_FOUND: (StatusCode, &str) = (StatusCode::NOT_FOUND, "no such worker or job\n");

/// The job behind a worker's (or job's) name, as its page shows it, and
/// its log; `None` when the pool knows no such name.
fn job_of(shared: &Shared, name: &str) -> Option<(view::JobView, std::path::PathBuf)> {
    if name.len() > MAX_NAME {
        return None;
    }
    let cluster = shared.cluster_status.lock().clone().and_then(|f| f())?;
    let job = cluster.job_for(name)?;
    Some((
        view::job_view(job, crate::protocol::unix_ms()),
        job.log.clone(),
    ))
}

async fn worker_page(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Html<String>, (StatusCode, &'static str)> {
    let (job, path) = job_of(&shared, &name).ok_or(NOT_FOUND)?;
    let log = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || crate::protocol::LogChunk::from(read::tail(&path)))
            .await
            .map_err(|_| NOT_FOUND)?
    };
    let shown = path.display().to_string();
    Ok(Html(render::worker(&name, Some(&job), &shown, &log)))
}

async fn worker_log(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<crate::protocol::LogChunk>, (StatusCode, &'static str)> {
    let (_, out) = job_of(&shared, &name).ok_or(NOT_FOUND)?;
    let path = match q.err {
        true => out.with_extension("err"),
        false => out,
    };
    tokio::task::spawn_blocking(move || read::read_from(&path, q.from, read::MAX_CHUNK).into())
        .await
        .map(Json)
        .map_err(|_| NOT_FOUND)
}
