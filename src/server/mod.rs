//! `kubeward serve`: webhooks in, durable jobs out. The handler verifies, records and enqueues,
//! then answers 202 in milliseconds; workers do the reviews.
//!
//! Each forge's route lives in its own module ([`github`], [`gitlab`]): it authenticates the
//! delivery, names its id and turns the event into jobs. What they share is here and in
//! [`intake`] and [`delivery`]: the body budget before the body is read, the bounded delivery
//! key, and `enqueue`, which records the delivery with its jobs in one transaction.

pub mod delivery;
pub mod github;
pub mod gitlab;
pub mod intake;
pub mod listen;
pub mod settings;

pub use github::GitHubHooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tracing::{info, warn};

use crate::queue::{NewJob, Queue};

/// What the webhook handlers need.
#[derive(Clone)]
pub struct AppState {
    pub queue: Queue,
    pub github: Option<GitHubHooks>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// The router: webhooks, health and metrics. `max_body` caps webhook bodies (413 beyond);
/// the intake budget has its defaults (see [`router_with_limits`]).
pub fn router(state: AppState, max_body: usize, read_timeout: Duration) -> Router {
    router_with_gitlab(state, None, max_body, read_timeout)
}

/// [`router`], plus `POST /webhooks/gitlab` when GitLab is configured.
pub fn router_with_gitlab(
    state: AppState,
    gitlab: Option<gitlab::GitLabHooks>,
    max_body: usize,
    read_timeout: Duration,
) -> Router {
    let limits = intake::IntakeLimits::with_defaults(max_body, read_timeout);
    router_with_limits(state, gitlab, limits, read_timeout)
}

/// The router with these intake limits. Both webhook routes go through the one accept step
/// ([`intake::accept`]) before their body is read; GitLab's route keeps its own state (see
/// [`gitlab::routes`]) and shares the queue, the limits and the timeout.
pub fn router_with_limits(
    state: AppState,
    gitlab: Option<gitlab::GitLabHooks>,
    limits: intake::IntakeLimits,
    read_timeout: Duration,
) -> Router {
    let queue = state.queue.clone();
    let state = Arc::new(state);
    let mut webhooks = github::routes(state.clone());
    if let Some(hooks) = gitlab {
        webhooks = webhooks.merge(gitlab::routes(queue, hooks));
    }
    let webhooks = webhooks.route_layer(middleware::from_fn_with_state(
        intake::Intake::new(limits),
        intake::accept,
    ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_page))
        .with_state(state)
        .merge(webhooks)
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            read_timeout,
        ))
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.queue.stats(crate::queue::now_ms()).await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "queue unavailable").into_response(),
    }
}

async fn metrics_page(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(stats) = state.queue.stats(crate::queue::now_ms()).await {
        metrics::gauge!("kubeward_queue_depth").set(stats.queued as f64);
        metrics::gauge!("kubeward_jobs_running").set(stats.running as f64);
        metrics::gauge!("kubeward_jobs_dead").set(stats.dead as f64);
        metrics::gauge!("kubeward_queue_oldest_age_seconds")
            .set(stats.oldest_queued_age_ms.unwrap_or(0) as f64 / 1000.0);
    }
    match &state.metrics {
        Some(handle) => handle.render().into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are off").into_response(),
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Counts a delivery by forge, event and what became of it.
fn outcome(forge: &'static str, event: &str, outcome: &'static str) {
    metrics::counter!("kubeward_deliveries_total", "forge" => forge, "event" => event.to_owned(), "outcome" => outcome).increment(1);
}

/// What a forge's route made of an authenticated delivery.
enum Route {
    Ignore(&'static str),
    Jobs(Vec<NewJob>),
}

/// The last part of the accept step, the same for every forge: answer an ignored delivery, or
/// record the delivery and queue its jobs, under `delivery` (a [`delivery::delivery_key`]).
async fn enqueue(
    queue: &Queue,
    forge: &'static str,
    delivery: &str,
    event: &str,
    route: Route,
) -> Response {
    let mut jobs = match route {
        Route::Ignore(why) => {
            outcome(forge, event, "ignored");
            return reply(StatusCode::OK, json!({"status": "ignored", "reason": why}));
        }
        Route::Jobs(jobs) => jobs,
    };
    record_target(&jobs);
    // The delivery id follows the job into the worker's log lines.
    for job in &mut jobs {
        if let Some(payload) = job.payload.as_object_mut() {
            payload.insert("delivery".into(), json!(delivery));
        }
    }
    // Recording the delivery and queueing its jobs is one transaction: a redelivery after a
    // failure here is processed, a redelivery after success is not.
    match queue.enqueue_delivery(forge, delivery, jobs).await {
        Ok(None) => {
            outcome(forge, event, "duplicate");
            reply(StatusCode::OK, json!({"status": "duplicate"}))
        }
        Ok(Some(ids)) => {
            outcome(forge, event, "queued");
            info!(delivery, event = %event, jobs = ?ids, "queued");
            reply(
                StatusCode::ACCEPTED,
                json!({"status": "queued", "jobs": ids}),
            )
        }
        Err(e) => {
            warn!(delivery, error = %e, "cannot queue the delivery");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "try again"}),
            )
        }
    }
}

/// Names the repository and pull request on the delivery's span, so every later line of it
/// (and the "queued" line) says which, as the worker's lines do.
fn record_target(jobs: &[NewJob]) {
    if let Some(job) = jobs.first() {
        let span = tracing::Span::current();
        span.record("repo", job.repo_id);
        if let Some(pr) = job.pr_number {
            span.record("pr", pr);
        }
    }
}
