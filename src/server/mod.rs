//! `kubeward serve`: webhooks in, durable jobs out. The handler verifies, records and enqueues,
//! then answers 202 in milliseconds; workers do the reviews.

pub mod delivery;
pub mod gitlab;
pub mod intake;
pub mod listen;
pub mod settings;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tracing::{Instrument, info, warn};

use crate::bot::job::{FORGE_GITHUB, JobSpec, RepoRef};
use crate::forge::Secret;
use crate::forge::github::events::{
    CheckRunAction, CheckSuiteAction, CommentAction, InstallationAction,
    InstallationRepositoriesAction, PullRequestAction, WebhookEvent, parse_event,
};
use crate::queue::{NewJob, Queue};

/// What the webhook handlers need.
#[derive(Clone)]
pub struct AppState {
    pub queue: Queue,
    pub github: Option<GitHubHooks>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// GitHub webhook settings.
#[derive(Clone)]
pub struct GitHubHooks {
    /// Accepted secrets (several during a rotation). Chosen by configuration, never by the payload.
    pub secrets: Vec<Secret>,
    /// Our App's id: check-run events of other Apps are not ours to re-run.
    pub app_id: Option<u64>,
    /// Our own login: our comments never trigger commands.
    pub bot_login: String,
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
    let mut webhooks = Router::new()
        .route("/webhooks/github", post(github_webhook))
        .with_state(state.clone());
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

fn delivery_outcome(event: &str, outcome: &'static str) {
    metrics::counter!("kubeward_deliveries_total", "forge" => "github", "event" => event.to_owned(), "outcome" => outcome).increment(1);
}

async fn github_webhook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    // Every line logged for this delivery carries its id (bounded: see `delivery_key`).
    let span = tracing::info_span!(
        "webhook",
        forge = "github",
        delivery = %delivery::delivery_key(value("x-github-delivery")),
        event = %value("x-github-event"),
        repo = tracing::field::Empty,
        pr = tracing::field::Empty,
    );
    handle_github(state, &headers, body).instrument(span).await
}

/// Names the repository and pull request on the delivery's span, so every later line of it
/// (and the "queued" line) says which, as the worker's lines do.
pub(crate) fn record_target(jobs: &[NewJob]) {
    if let Some(job) = jobs.first() {
        let span = tracing::Span::current();
        span.record("repo", job.repo_id);
        if let Some(pr) = job.pr_number {
            span.record("pr", pr);
        }
    }
}

async fn handle_github(state: Arc<AppState>, headers: &HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(hooks) = &state.github else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": "GitHub is not configured"}),
        );
    };
    // Nothing is recorded or parsed before the signature checks out.
    if !verify::github_signature_valid(&hooks.secrets, &body, header("x-hub-signature-256")) {
        metrics::counter!("kubeward_signature_failures_total", "forge" => "github").increment(1);
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or invalid signature"}),
        );
    }
    let (Some(event), Some(delivery)) = (header("x-github-event"), header("x-github-delivery"))
    else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "missing X-GitHub-Event or X-GitHub-Delivery"}),
        );
    };
    if let Some(error) = delivery::too_long("X-GitHub-Delivery", delivery) {
        return reply(StatusCode::BAD_REQUEST, json!({ "error": error }));
    }
    let delivery = &delivery::delivery_key(delivery);
    let event = event.to_owned();
    let parsed = match parse_event(&event, &body) {
        Ok(parsed) => parsed,
        Err(e) => {
            delivery_outcome(&event, "invalid");
            return reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}));
        }
    };
    let route = match route(&state.queue, hooks, &parsed).await {
        Ok(route) => route,
        Err(e) => {
            warn!(delivery, error = %e, "cannot route the delivery");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "try again"}),
            );
        }
    };
    let mut jobs = match route {
        Route::Ignore(why) => {
            delivery_outcome(&event, "ignored");
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
    match state
        .queue
        .enqueue_delivery(FORGE_GITHUB, delivery, jobs)
        .await
    {
        Ok(None) => {
            delivery_outcome(&event, "duplicate");
            reply(StatusCode::OK, json!({"status": "duplicate"}))
        }
        Ok(Some(ids)) => {
            delivery_outcome(&event, "queued");
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

enum Route {
    Ignore(&'static str),
    Jobs(Vec<NewJob>),
}

fn repo_ref(repository: &crate::forge::github::events::Repository) -> RepoRef {
    RepoRef {
        id: repository.id as i64,
        owner: repository.owner.clone(),
        name: repository.name.clone(),
    }
}

async fn route(
    queue: &Queue,
    hooks: &GitHubHooks,
    event: &WebhookEvent,
) -> Result<Route, crate::queue::QueueError> {
    let job = |spec: JobSpec| Route::Jobs(vec![spec.to_new_job(FORGE_GITHUB)]);
    Ok(match event {
        WebhookEvent::PullRequest(pr) => {
            let Some(installation) = pr.installation_id else {
                return Ok(Route::Ignore("no installation"));
            };
            // Queued review jobs also remember which PR their head belongs to (fork PRs'
            // check re-runs do not say), in the same transaction.
            let repo = repo_ref(&pr.repository);
            let review = |trigger: &str, previous_head: Option<String>| {
                job(JobSpec::Review {
                    installation,
                    repo: repo.clone(),
                    number: pr.number,
                    head_sha: pr.head_sha.clone(),
                    trigger: trigger.to_owned(),
                    new_check_run: false,
                    previous_head,
                })
            };
            match pr.action {
                PullRequestAction::Opened => review("opened", None),
                PullRequestAction::Synchronize => review("synchronize", pr.before.clone()),
                PullRequestAction::Reopened => review("reopened", None),
                PullRequestAction::ReadyForReview => review("ready_for_review", None),
                PullRequestAction::Edited { base_changed: true } => review("base changed", None),
                PullRequestAction::Closed { .. } => {
                    queue
                        .drop_pr(FORGE_GITHUB, repo.id, pr.number as i64)
                        .await?;
                    Route::Ignore("closed: queued work dropped")
                }
                _ => Route::Ignore("action not reviewed"),
            }
        }
        WebhookEvent::IssueComment(comment) => {
            let Some(installation) = comment.installation_id else {
                return Ok(Route::Ignore("no installation"));
            };
            let Some(command) = comment.command() else {
                return Ok(Route::Ignore("not a command"));
            };
            let Some(author) = &comment.author else {
                return Ok(Route::Ignore("no author"));
            };
            // Never from bots, and never from ourselves (loops).
            if comment.action != CommentAction::Created
                || !comment.is_pull_request
                || author.is_bot()
                || comment.via_github_app
                || author.login == hooks.bot_login
            {
                return Ok(Route::Ignore("not a command we act on"));
            }
            job(JobSpec::Command {
                installation,
                repo: repo_ref(&comment.repository),
                number: comment.issue_number,
                comment_id: comment.comment_id,
                login: author.login.clone(),
                command: match command {
                    crate::forge::github::events::Command::Rescan => "rescan",
                    crate::forge::github::events::Command::Help => "help",
                }
                .to_owned(),
            })
        }
        WebhookEvent::CheckRun(run) => {
            let ours = run.name == crate::forge::github::publish::CHECK_NAME
                && hooks
                    .app_id
                    .is_none_or(|id| run.app_id.is_none_or(|a| a == id));
            match (&run.action, run.installation_id) {
                (CheckRunAction::Rerequested, Some(installation)) if ours => {
                    rerequest(
                        queue,
                        installation,
                        &run.repository,
                        &run.head_sha,
                        &run.pull_requests,
                    )
                    .await?
                }
                _ => Route::Ignore("not a re-run of our check"),
            }
        }
        WebhookEvent::CheckSuite(suite) => {
            let ours = hooks
                .app_id
                .is_none_or(|id| suite.app_id.is_none_or(|a| a == id));
            match (suite.action, suite.installation_id) {
                (CheckSuiteAction::Rerequested, Some(installation)) if ours => {
                    rerequest(
                        queue,
                        installation,
                        &suite.repository,
                        &suite.head_sha,
                        &suite.pull_requests,
                    )
                    .await?
                }
                _ => Route::Ignore("not a re-run of our suite"),
            }
        }
        WebhookEvent::Installation(installation) => {
            if installation.action == InstallationAction::Deleted {
                queue
                    .drop_installation(FORGE_GITHUB, installation.installation_id as i64)
                    .await?;
                Route::Ignore("uninstalled: queued work dropped")
            } else {
                Route::Ignore("installation event")
            }
        }
        WebhookEvent::InstallationRepositories(change) => {
            if change.action == InstallationRepositoriesAction::Removed {
                for repo in &change.removed {
                    queue.drop_repository(FORGE_GITHUB, repo.id as i64).await?;
                }
            }
            Route::Ignore("installation repositories event")
        }
        WebhookEvent::Other { .. } => Route::Ignore("event not handled"),
    })
}

async fn rerequest(
    queue: &Queue,
    installation: u64,
    repository: &crate::forge::github::events::Repository,
    head_sha: &str,
    pull_requests: &[u64],
) -> Result<Route, crate::queue::QueueError> {
    let mut numbers = pull_requests.to_vec();
    // Fork PRs arrive without pull requests: use the heads we have seen.
    if numbers.is_empty() {
        numbers = queue
            .prs_for_head(FORGE_GITHUB, repository.id as i64, head_sha)
            .await?
            .into_iter()
            .map(|n| n as u64)
            .collect();
    }
    let spec = |pull_numbers: Vec<u64>| {
        JobSpec::Rerequest {
            installation,
            repo: repo_ref(repository),
            head_sha: head_sha.to_owned(),
            pull_numbers,
        }
        .to_new_job(FORGE_GITHUB)
    };
    // One job per pull request, each queued as that PR's work; with none known yet, the worker
    // maps the head to its pull requests and hands off the same way.
    Ok(Route::Jobs(if numbers.is_empty() {
        vec![spec(Vec::new())]
    } else {
        numbers.into_iter().map(|n| spec(vec![n])).collect()
    }))
}
