//! The GitLab REST client: the bot's token, retries, and rate limits.
//!
//! One [`GitLabClient`] talks to one GitLab instance (gitlab.com or self-managed, configured by
//! its URL) as one identity: a project or group access token, or a bot user's personal token,
//! sent in the `PRIVATE-TOKEN` header. It knows no endpoint; callers build paths from numeric
//! ids (see [`project_path`](super::project_path)).
//!
//! - **Retries.** GET, PUT and DELETE are retried on 5xx answers and network errors with
//!   exponential backoff and full jitter. A POST is retried only when it cannot have reached
//!   GitLab (the connection was refused); otherwise a 5xx or a lost answer gives
//!   [`ApiError::Unconfirmed`], and the caller looks before posting again. GitLab's notes and
//!   discussions have no idempotency key, so a blind re-POST would duplicate a comment.
//! - **Rate limits.** A 429 was not processed, so a short one is waited out and retried, POSTs
//!   included: `Retry-After` seconds, else `RateLimit-Reset` (epoch seconds), else an
//!   exponential default. GitLab's limits are per user, so the wait pauses every request of
//!   this client. A wait that would take the request past `max_rate_limit_wait` in total fails
//!   it at once with [`ApiError::RateLimited`] naming the wait, so the worker defers the job
//!   until then instead of sleeping through it.
//! - **Pacing.** POSTs are spaced `post_spacing` apart, under GitLab's default limit on note
//!   creation.
//!
//! Retries, path checks, redirects and pagination links follow the shared rules of
//! [`crate::forge::http`]: URLs are always the instance URL + [`API_PREFIX`] + a validated
//! path; redirects and `Link` headers are followed only below that root. The token never
//! reaches a log line or an error, and error paths never carry the query string.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde_json::Value;

use super::{API_PREFIX, ApiError, ApiFuture, GitLabApi, Reply, Request, WriteKind};
use crate::forge::Secret;
use crate::forge::http::{self, Retry, display_path, validate_path};

/// Rate-limit answers tolerated per request, whatever `max_rate_limit_wait` allows.
const MAX_RATE_LIMIT_RETRIES: u32 = 10;

/// How the client retries.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt, for 5xx answers and network errors.
    pub max_retries: u32,
    /// Backoff before retry `n` is random in `[0, min(max_delay, base_delay * 2^n)]`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Timeout of one attempt, body included.
    pub request_timeout: Duration,
    /// The wait after a 429 that names no time; doubles on each repeat.
    pub rate_limit_default_wait: Duration,
    /// Most time one request may spend waiting out rate limits, all waits together. A longer
    /// wait is not slept through: the request fails with [`ApiError::RateLimited`] and the job
    /// is deferred until the limit lifts.
    pub max_rate_limit_wait: Duration,
    /// Least time between two POSTs of this client. Self-managed GitLab allows 300 notes per
    /// minute per user by default (`rate_limit_on_notes_creation`); 200 ms keeps under it
    /// however many jobs publish at once.
    pub post_spacing: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            rate_limit_default_wait: Duration::from_secs(30),
            // As GitHub's `max_wait`: a short wait is waited out, anything longer defers the job.
            max_rate_limit_wait: Duration::from_secs(30),
            post_spacing: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// The retry rules shared with GitHub's client.
    fn transport(&self) -> http::RetryPolicy {
        http::RetryPolicy {
            max_retries: self.max_retries,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            request_timeout: self.request_timeout,
        }
    }
}

/// Everything [`GitLabClient::new`] needs.
#[derive(Clone, Debug)]
pub struct GitLabClientConfig {
    /// `https://gitlab.com`, or a self-managed instance, possibly below a path
    /// (`https://example.com/gitlab`). No credentials, query or fragment.
    pub instance_url: String,
    /// Project or group access token, or a bot user's personal access token (`api` scope).
    pub token: Secret,
    pub user_agent: String,
    pub retry: RetryPolicy,
}

impl GitLabClientConfig {
    pub fn new(instance_url: impl Into<String>, token: Secret) -> Self {
        GitLabClientConfig {
            instance_url: instance_url.into(),
            token,
            user_agent: "kubeward".into(),
            retry: RetryPolicy::default(),
        }
    }
}

/// The REST client. Cheap to share behind an `Arc`.
pub struct GitLabClient {
    http: reqwest::Client,
    instance: String,
    base: String,
    token: HeaderValue,
    retry: RetryPolicy,
    /// Until when every request waits, after a 429.
    paused_until: Mutex<Option<Instant>>,
    /// When the next POST may go out (see [`RetryPolicy::post_spacing`]).
    next_post: tokio::sync::Mutex<Instant>,
    rate_limit_waits: AtomicU64,
    retries: AtomicU64,
}

impl std::fmt::Debug for GitLabClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLabClient")
            .field("base", &self.base)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl GitLabClient {
    /// Builds the client; checks the instance URL and that the token can be a header value.
    pub fn new(config: GitLabClientConfig) -> Result<GitLabClient, ApiError> {
        let instance = normalize_instance_url(&config.instance_url)?;
        let base = format!("{instance}{API_PREFIX}");
        let mut token = HeaderValue::from_str(config.token.expose().trim())
            .ok()
            .filter(|_| !config.token.expose().trim().is_empty())
            .ok_or_else(|| {
                ApiError::Invalid("the GitLab token is empty or not a valid header value".into())
            })?;
        // Keeps the value out of reqwest's and hyper's debug output.
        token.set_sensitive(true);
        let http = http::http_client(
            &base,
            &config.user_agent,
            HeaderMap::new(),
            &config.retry.transport(),
        )
        .map_err(ApiError::Invalid)?;
        Ok(GitLabClient {
            http,
            instance,
            base,
            token,
            retry: config.retry,
            paused_until: Mutex::new(None),
            next_post: tokio::sync::Mutex::new(Instant::now()),
            rate_limit_waits: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    /// The instance URL, normalized, without trailing slash.
    pub fn instance_url(&self) -> &str {
        &self.instance
    }

    /// How often a rate limit made a request wait, since start.
    pub fn rate_limit_waits(&self) -> u64 {
        self.rate_limit_waits.load(Ordering::Relaxed)
    }

    /// How often a request was retried after a 5xx or a network error, since start.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Sends one request with retries and rate-limit waits.
    pub async fn send(&self, request: &Request) -> Result<Reply, ApiError> {
        let method = request.method.as_str();
        let shown = display_path(&request.path);
        validate_path(&request.path).map_err(|reason| {
            ApiError::Invalid(format!("refusing the API path {shown}: {reason}"))
        })?;
        let url = format!("{}{}", self.base, request.path);
        let http_method = request.method.to_reqwest();
        let creates = request.kind == WriteKind::CreatesContent;
        let policy = self.retry.transport();
        let mut transient = 0u32;
        let mut limited = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            self.wait_out_pause(method, &shown, &mut waited).await?;
            if creates {
                self.space_post().await;
            }
            let mut builder = self
                .http
                .request(http_method.clone(), &url)
                .header("PRIVATE-TOKEN", self.token.clone())
                .header(ACCEPT, "application/json");
            if let Some(body) = &request.body {
                builder = builder.json(body);
            }
            tracing::debug!(method, path = %shown, "gitlab request");
            let outcome = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(bytes) => Ok((status, headers, bytes)),
                        Err(e) => Err((http::describe(e), true)),
                    }
                }
                // A connect error means nothing was sent: safe to retry, even a POST.
                Err(e) => {
                    let sent = !e.is_connect();
                    Err((http::describe(e), sent))
                }
            };
            let (status, headers, bytes) = match outcome {
                Ok(answer) => answer,
                Err((detail, sent)) => match policy.may_retry(request.kind, sent, transient) {
                    Retry::Unconfirmed => {
                        tracing::warn!(method, path = %shown, %detail, "POST unconfirmed");
                        return Err(ApiError::Unconfirmed(format!(
                            "{method} {shown} ({detail})"
                        )));
                    }
                    Retry::Again(delay) => {
                        self.back_off(&mut transient, delay, method, &shown, &detail)
                            .await;
                        continue;
                    }
                    Retry::GiveUp => {
                        return Err(ApiError::Network {
                            method,
                            path: shown,
                            detail: format!("{detail} (after {} attempts)", transient + 1),
                        });
                    }
                },
            };
            if status.is_success() {
                return Ok(Reply {
                    status: status.as_u16(),
                    body: http::parse_body(&bytes),
                    next: http::next_page(&self.base, &headers),
                });
            }
            let message = error_message(&bytes, status);
            if status == StatusCode::TOO_MANY_REQUESTS {
                limited += 1;
                let wait = rate_limit_wait(
                    &headers,
                    unix_now(),
                    self.retry.rate_limit_default_wait,
                    limited,
                );
                // Paused even when this request gives up: GitLab's limit is the token's, so
                // the client's other requests would only be refused too.
                self.pause(wait);
                if limited > MAX_RATE_LIMIT_RETRIES
                    || waited + wait > self.retry.max_rate_limit_wait
                {
                    tracing::warn!(method, path = %shown, ?wait, "gitlab rate limit, deferring");
                    return Err(rate_limited(method, &shown, wait, waited, &message));
                }
                self.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(method, path = %shown, ?wait, "gitlab rate limit, waiting");
                tokio::time::sleep(wait).await;
                waited += wait;
                continue;
            }
            if status.is_server_error() {
                let detail = format!("HTTP {}: {message}", status.as_u16());
                match policy.may_retry(request.kind, true, transient) {
                    Retry::Unconfirmed => {
                        tracing::warn!(method, path = %shown, status = status.as_u16(), "POST unconfirmed");
                        return Err(ApiError::Unconfirmed(format!(
                            "{method} {shown} ({detail})"
                        )));
                    }
                    Retry::Again(delay) => {
                        self.back_off(&mut transient, delay, method, &shown, &detail)
                            .await;
                        continue;
                    }
                    Retry::GiveUp => {}
                }
            }
            return Err(ApiError::Status {
                method,
                path: shown,
                status: status.as_u16(),
                message,
            });
        }
    }

    async fn back_off(
        &self,
        transient: &mut u32,
        delay: Duration,
        method: &str,
        path: &str,
        detail: &str,
    ) {
        *transient += 1;
        self.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            method,
            path,
            detail,
            ?delay,
            attempt = *transient,
            "gitlab request failed, retrying"
        );
        tokio::time::sleep(delay).await;
    }

    /// Takes the next POST slot, sleeping until it comes.
    async fn space_post(&self) {
        let slot = {
            let mut next = self.next_post.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.retry.post_spacing;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *paused = Some(paused.map_or(until, |u| u.max(until)));
    }

    /// Sleeps while an earlier 429 pauses the client, counting it against this request's wait.
    async fn wait_out_pause(
        &self,
        method: &'static str,
        path: &str,
        waited: &mut Duration,
    ) -> Result<(), ApiError> {
        let until = *self
            .paused_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let Some(until) = until.filter(|u| *u > now) else {
            return Ok(());
        };
        let wait = until - now;
        if *waited + wait > self.retry.max_rate_limit_wait {
            return Err(rate_limited(
                method,
                path,
                wait,
                *waited,
                "paused by an earlier rate limit",
            ));
        }
        tokio::time::sleep(wait).await;
        *waited += wait;
        Ok(())
    }
}

impl GitLabApi for GitLabClient {
    fn call(&self, request: Request) -> ApiFuture<'_> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.send(&request).await;
            let status = match &result {
                Ok(reply) => reply.status.to_string(),
                Err(e) => e
                    .status()
                    .map_or_else(|| "error".to_owned(), |s| s.to_string()),
            };
            metrics::counter!("kubeward_forge_requests_total", "forge" => "gitlab", "status" => status).increment(1);
            metrics::histogram!("kubeward_forge_request_seconds", "forge" => "gitlab")
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

/// How long a 429 asks us to wait: `Retry-After` (seconds), else `RateLimit-Reset` (epoch
/// seconds) minus now, else `default * 2^(hits-1)`. At least one second, so a reset in the
/// past does not spin.
pub fn rate_limit_wait(
    headers: &HeaderMap,
    now_unix: u64,
    default: Duration,
    hits: u32,
) -> Duration {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let wait = if let Some(seconds) = number("retry-after") {
        Duration::from_secs(seconds)
    } else if let Some(reset) = number("ratelimit-reset") {
        Duration::from_secs(reset.saturating_sub(now_unix))
    } else {
        default.saturating_mul(2u32.saturating_pow(hits.saturating_sub(1).min(16)))
    };
    wait.max(Duration::from_secs(1))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// GitLab's error text: `message` (a string, or an object of field errors), else `error`,
/// else the status reason. Bounded, since it ends up in job errors and logs.
fn error_message(bytes: &[u8], status: StatusCode) -> String {
    let fallback = || status.canonical_reason().unwrap_or("error").to_owned();
    let text = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(o)) => match o.get("message").or_else(|| o.get("error")) {
            Some(Value::String(s)) => s.clone(),
            Some(other) if !other.is_null() => other.to_string(),
            _ => fallback(),
        },
        _ => fallback(),
    };
    crate::review::render::truncate(&text, 500)
}

/// Checks and normalizes the configured instance URL.
pub fn normalize_instance_url(raw: &str) -> Result<String, ApiError> {
    http::normalize_root_url(raw)
        .map_err(|why| ApiError::Invalid(format!("the GitLab instance URL {why}")))
}

/// A 429 that would take longer to wait out than a request may: the job is deferred.
fn rate_limited(
    method: &str,
    path: &str,
    wait: Duration,
    waited: Duration,
    detail: &str,
) -> ApiError {
    ApiError::RateLimited {
        retry_after: wait,
        message: format!(
            "{method} {path}: rate limited ({detail}); retry after {}s, waited {}s",
            wait.as_secs(),
            waited.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_urls_are_checked() {
        assert_eq!(
            normalize_instance_url("https://gitlab.example.com/").expect("valid"),
            "https://gitlab.example.com"
        );
        assert_eq!(
            normalize_instance_url("https://example.com/gitlab").expect("valid"),
            "https://example.com/gitlab"
        );
        for bad in [
            "ftp://x",
            "https://user:pw@gitlab.com",
            "https://gitlab.com/?x=1",
            "gitlab.com",
        ] {
            assert!(normalize_instance_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_cannot_leave_the_api() {
        assert!(validate_path("/projects/1/merge_requests/2?page=1").is_ok());
        for bad in [
            "projects/1",
            "/projects/../users",
            "/projects/%2E%2E/x",
            "//evil",
            "/a b",
        ] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
        assert_eq!(display_path("/projects/1?private_token=x"), "/projects/1");
    }

    #[test]
    fn rate_limit_waits_follow_the_headers() {
        let default = Duration::from_secs(30);
        let mut headers = HeaderMap::new();
        assert_eq!(rate_limit_wait(&headers, 100, default, 1), default);
        assert_eq!(rate_limit_wait(&headers, 100, default, 3), default * 4);
        headers.insert("ratelimit-reset", HeaderValue::from_static("160"));
        assert_eq!(
            rate_limit_wait(&headers, 100, default, 1),
            Duration::from_secs(60)
        );
        assert_eq!(
            rate_limit_wait(&headers, 500, default, 1),
            Duration::from_secs(1),
            "a reset in the past still waits a little"
        );
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(
            rate_limit_wait(&headers, 100, default, 1),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn error_messages_are_read_from_gitlab_bodies() {
        let status = StatusCode::BAD_REQUEST;
        assert_eq!(
            error_message(br#"{"message":"400 Bad request"}"#, status),
            "400 Bad request"
        );
        assert_eq!(
            error_message(
                br#"{"message":{"base":["Cannot transition status"]}}"#,
                status
            ),
            r#"{"base":["Cannot transition status"]}"#
        );
        assert_eq!(
            error_message(br#"{"error":"invalid_token"}"#, status),
            "invalid_token"
        );
        assert_eq!(error_message(b"<html>", status), "Bad Request");
    }

    #[test]
    fn the_token_is_never_printed() {
        let client = GitLabClient::new(GitLabClientConfig::new(
            "https://gitlab.example.com",
            Secret::new("glpat-very-secret"),
        ))
        .expect("client");
        assert!(!format!("{client:?}").contains("glpat"));
        assert!(
            GitLabClient::new(GitLabClientConfig::new(
                "https://gitlab.example.com",
                Secret::new(" ")
            ))
            .is_err()
        );
    }
}
