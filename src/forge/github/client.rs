//! The GitHub REST client: App authentication, retries, rate limits and write pacing.
//!
//! One [`GitHubClient`] serves every installation of the App. It does not know any endpoint:
//! callers build the path from ids ([`repo_path`], [`encode_segment`]) and the JSON body, and
//! get back an [`ApiResponse`]. What it adds over a bare HTTP client:
//!
//! - **Authentication.** With [`GitHubAuth::App`] it signs a short-lived RS256 JWT and mints
//!   one installation token per installation (`POST /app/installations/{id}/access_tokens`),
//!   cached until [`TOKEN_REFRESH_MARGIN`] before its `expires_at`. Concurrent callers for the
//!   same installation wait for one mint. Tokens are opaque strings of any length (GitHub's
//!   2026 stateless tokens are ~520 characters with dots): never parsed or length-checked.
//! - **Retries** ([`RetryPolicy`]). Reads and idempotent writes are retried on 5xx and network
//!   errors with exponential backoff and full jitter. Content-creating POSTs are *not* retried
//!   once they may have reached GitHub: the result is [`GitHubError::Unconfirmed`].
//! - **Rate limits** ([`WriteLimits`]). A 403/429 rate-limit answer is waited out (`retry-after`,
//!   else `x-ratelimit-reset` when `x-ratelimit-remaining` is 0, else at least
//!   `secondary_min_wait` with exponential backoff) and then retried, POSTs included: a
//!   rate-limited request was not processed. The wait pauses every request of the same
//!   installation, not only the one that was refused. Total waiting per request is capped by
//!   `max_wait`, after which the result is [`GitHubError::RateLimited`] with the time still to
//!   wait: the job queue defers the job rather than hold a worker that long.
//! - **Write pacing.** Writes of one installation are spaced `min_spacing` apart, and
//!   content-creating ones are kept under `per_minute` and `per_hour`. Those budgets are shared
//!   fairly: the writes of one pull request's reviews (the task's
//!   [`current_review`](crate::forge::budget::current_review)) may use at most
//!   `review_share_percent` of them, and `check_reserve_percent` is kept for the requests marked
//!   [`Budget::Reserved`] (opening and concluding checks), which no other write may use.
//!
//! Retries, path checks and segment encoding, redirects and `Link` headers follow the rules
//! shared with GitLab's client ([`crate::forge::http`]): URLs are always `api_base_url` + a
//! path the caller built; a URL found in a payload or a `Link` header is followed only if it
//! points below `api_base_url`. No token, key or JWT ever
//! reaches a log line or an error message, and error paths never carry the query string.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
pub use reqwest::Method;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, IF_NONE_MATCH};
use serde::Deserialize;
use serde_json::Value;

use super::reply::InstallationToken;

use crate::forge::Secret;
use crate::forge::http::{
    self, Retry, describe as describe_reqwest_error, display_path, display_url, parse_body,
    truncate,
};
pub use crate::forge::http::{Budget, RetryPolicy, WriteKind, encode_segment, parse_link_header};

/// github.com's REST API.
pub const DEFAULT_API_BASE_URL: &str = "https://api.github.com";
/// Sent as `X-GitHub-Api-Version`.
pub const API_VERSION: &str = "2022-11-28";
/// Default `Accept` header.
pub const ACCEPT_JSON: &str = "application/vnd.github+json";
/// An installation token is replaced this long before its `expires_at`.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// The App JWT's `iat` is this far in the past, against clock drift (GitHub's advice).
const JWT_BACKDATE_SECS: u64 = 60;
/// The App JWT's `exp` is this far in the future; GitHub refuses more than 10 minutes.
const JWT_LIFETIME_SECS: u64 = 9 * 60;
/// Assumed token lifetime when `expires_at` cannot be read (GitHub documents one hour).
const FALLBACK_TOKEN_LIFETIME: Duration = Duration::from_secs(55 * 60);
/// Rate-limit answers tolerated per request, whatever `max_wait` allows.
const MAX_RATE_LIMIT_RETRIES: u32 = 10;
/// Pages [`GitHubClient::paginate`] follows before giving up.
pub const MAX_PAGES: usize = 1000;
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// How the client authenticates.
#[derive(Clone, Debug)]
pub enum GitHubAuth {
    /// A GitHub App. Requests name an installation and use its installation token;
    /// [`GitHubClient::app_request`] uses the App JWT itself.
    App {
        /// The numeric App ID or the App's client ID (GitHub recommends the client ID); the
        /// JWT's `iss`.
        app_id: String,
        /// The App's private key, PEM (PKCS#1 or PKCS#8).
        private_key_pem: Secret,
    },
    /// A fixed token (tests, GitHub Enterprise Server, personal tokens): sent as-is for every
    /// request, whatever installation is named.
    Token(Secret),
}

/// Write pacing and rate-limit waiting. The defaults are GitHub's documented limits.
#[derive(Clone, Debug)]
pub struct WriteLimits {
    /// Content-creating requests per installation in any 60 s window (0 = no limit).
    pub per_minute: u32,
    /// Content-creating requests per installation in any hour (0 = no limit).
    pub per_hour: u32,
    /// Most of `per_minute` and of `per_hour`, in percent, that the writes of one pull
    /// request's reviews may use (100: no cap of its own), so one heavy review cannot spend
    /// the installation's budget and leave the others without comments.
    pub review_share_percent: u32,
    /// Part of `per_minute` and of `per_hour`, in percent, kept for [`Budget::Reserved`]
    /// writes (opening and concluding checks): every pull request gets its check however much
    /// the others wrote. At most 50.
    pub check_reserve_percent: u32,
    /// The windows of `per_minute` and `per_hour`: a minute and an hour, GitHub's. Only tests
    /// shorten them.
    pub minute: Duration,
    pub hour: Duration,
    /// Least time between two writes (any method but GET) of one installation.
    pub min_spacing: Duration,
    /// First wait after a secondary rate limit that names no time; doubles on each repeat.
    pub secondary_min_wait: Duration,
    /// Most time one request may spend waiting for rate limits and pacing, all waits
    /// together. A wait that would exceed it fails the request with
    /// [`GitHubError::RateLimited`] at once, naming the wait, so the queue defers the job
    /// instead of a worker sleeping through it.
    pub max_wait: Duration,
}

impl Default for WriteLimits {
    fn default() -> Self {
        Self {
            per_minute: 80,
            per_hour: 500,
            review_share_percent: 25,
            check_reserve_percent: 10,
            minute: MINUTE,
            hour: HOUR,
            min_spacing: Duration::from_secs(1),
            secondary_min_wait: Duration::from_secs(60),
            // Pacing within a minute's window is waited out; anything longer (an hour's
            // window, a secondary rate limit's minute) defers the job.
            max_wait: Duration::from_secs(30),
        }
    }
}

impl WriteLimits {
    fn validate(&self) -> Result<(), GitHubError> {
        if !(1..=100).contains(&self.review_share_percent) {
            return Err(GitHubError::Config(format!(
                "a review's share of the content-write budget must be 1 to 100 percent, not {}",
                self.review_share_percent
            )));
        }
        if self.check_reserve_percent > 50 {
            return Err(GitHubError::Config(format!(
                "the part of the content-write budget kept for checks must be 0 to 50 percent, not {}",
                self.check_reserve_percent
            )));
        }
        if self.minute.is_zero() || self.hour.is_zero() {
            return Err(GitHubError::Config(
                "the pacing windows must not be empty".into(),
            ));
        }
        Ok(())
    }

    /// Of `limit` content writes in a window, how many all but reserved writes may use.
    fn shared_part(&self, limit: u32) -> usize {
        let limit = limit as usize;
        let reserve = match self.check_reserve_percent {
            0 => 0,
            percent => (limit * percent as usize / 100).max(1),
        };
        limit - reserve.min(limit.saturating_sub(1))
    }

    /// Of `limit` content writes in a window, how many one pull request's reviews may use.
    fn review_part(&self, limit: u32) -> usize {
        let share = (limit as usize * self.review_share_percent as usize / 100).max(1);
        share.min(self.shared_part(limit))
    }
}

/// Everything [`GitHubClient::new`] needs.
#[derive(Clone, Debug)]
pub struct GitHubClientConfig {
    /// `https://api.github.com`, `https://HOST/api/v3` (GHES), or a test server. No trailing
    /// path segments beyond the API root, no query.
    pub api_base_url: String,
    pub auth: GitHubAuth,
    /// GitHub requires a `User-Agent`; use the App's name.
    pub user_agent: String,
    pub retry: RetryPolicy,
    pub limits: WriteLimits,
}

impl GitHubClientConfig {
    /// A configuration with default retry and limits.
    pub fn new(
        api_base_url: impl Into<String>,
        auth: GitHubAuth,
        user_agent: impl Into<String>,
    ) -> Self {
        Self {
            api_base_url: api_base_url.into(),
            auth,
            user_agent: user_agent.into(),
            retry: RetryPolicy::default(),
            limits: WriteLimits::default(),
        }
    }
}

/// One request, for [`GitHubClient::send_request`]; [`GitHubClient::send`] covers the usual case.
#[derive(Clone, Debug)]
pub struct ApiRequest<'a> {
    pub method: Method,
    /// Path below `api_base_url`, starting with `/`, query allowed.
    pub path: &'a str,
    pub body: Option<&'a Value>,
    pub kind: WriteKind,
    /// Overrides `Accept` (default [`ACCEPT_JSON`]).
    pub accept: Option<&'a str>,
    /// Sent as `If-None-Match`; a `304` is returned as `Ok` with a `Null` body.
    pub if_none_match: Option<&'a str>,
    /// The part of the content-write budget a content-creating request draws on.
    pub budget: Budget,
}

impl<'a> ApiRequest<'a> {
    pub fn new(method: Method, path: &'a str, kind: WriteKind) -> Self {
        Self {
            method,
            path,
            body: None,
            kind,
            accept: None,
            if_none_match: None,
            budget: Budget::Shared,
        }
    }

    pub fn get(path: &'a str) -> Self {
        Self::new(Method::GET, path, WriteKind::Read)
    }

    pub fn body(mut self, body: &'a Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// The response headers callers need.
#[derive(Clone, Debug, Default)]
pub struct ResponseHeaders {
    pub link: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub location: Option<String>,
    /// `x-github-request-id`, for support requests and logs.
    pub request_id: Option<String>,
    /// `retry-after`, in seconds.
    pub retry_after: Option<u64>,
    pub ratelimit_limit: Option<u64>,
    pub ratelimit_remaining: Option<u64>,
    /// `x-ratelimit-reset`, Unix seconds.
    pub ratelimit_reset: Option<u64>,
    /// `x-ratelimit-resource` (`core`, `search`, `graphql`, ...).
    pub ratelimit_resource: Option<String>,
}

impl ResponseHeaders {
    fn from_map(h: &HeaderMap) -> Self {
        let text = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_owned())
        };
        let num = |name: &str| text(name).and_then(|s| s.parse::<u64>().ok());
        Self {
            link: text("link"),
            etag: text("etag"),
            last_modified: text("last-modified"),
            location: text("location"),
            request_id: text("x-github-request-id"),
            retry_after: num("retry-after"),
            ratelimit_limit: num("x-ratelimit-limit"),
            ratelimit_remaining: num("x-ratelimit-remaining"),
            ratelimit_reset: num("x-ratelimit-reset"),
            ratelimit_resource: text("x-ratelimit-resource"),
        }
    }
}

/// A successful (2xx or 304) response.
#[derive(Clone, Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: ResponseHeaders,
    /// The JSON body; `Null` when empty (204, 304), a `String` when the body is not JSON
    /// (for example with a custom `Accept`).
    pub body: Value,
}

impl ApiResponse {
    /// The `rel="next"` URL of the `Link` header, as GitHub sent it (not yet checked).
    pub fn next_link(&self) -> Option<String> {
        self.headers
            .link
            .as_deref()
            .and_then(|l| parse_link_header(l, "next"))
    }
}

/// Why a request failed. No variant ever holds a token, key or JWT, and paths are shown
/// without their query string.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitHubError {
    #[error("invalid GitHub client configuration: {0}")]
    Config(String),
    /// The path was refused before sending (not below the API root, dot segments, ...).
    #[error("refused API path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// The App JWT could not be made, or the mint answer was unusable.
    #[error("GitHub App authentication failed: {0}")]
    Auth(String),
    /// GitHub answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// A content-creating request may or may not have been applied: GitHub answered 5xx, or
    /// the connection failed after the request was sent. It was **not** retried, because a
    /// blind retry can post twice. List what exists (e.g. the comments carrying your marker,
    /// the check runs for the head SHA) and decide whether to send it again.
    #[error(
        "{method} {path}: outcome unknown ({detail}); not retried, check whether it was applied"
    )]
    Unconfirmed {
        method: String,
        path: String,
        status: Option<u16>,
        detail: String,
    },
    /// Rate-limited, and waiting longer would exceed `max_wait` (or the retry count).
    #[error("{method} {path}: rate limited ({detail}); waited {waited:?}")]
    RateLimited {
        method: String,
        path: String,
        /// Time already spent waiting in this request.
        waited: Duration,
        /// How long GitHub (or the pacing) still asked to wait, when known.
        retry_after: Option<Duration>,
        detail: String,
    },
    /// Network errors on every attempt (or one that cannot be retried). `sent` is false when
    /// no attempt got as far as sending (connection refused, DNS, TLS).
    #[error("{method} {path}: network error after {attempts} attempt(s): {detail}")]
    Network {
        method: String,
        path: String,
        attempts: u32,
        sent: bool,
        detail: String,
    },
    /// A 2xx answer without what it should contain.
    #[error("{method} {path}: unexpected response: {detail}")]
    Decode {
        method: String,
        path: String,
        detail: String,
    },
    /// A list longer than [`MAX_PAGES`] pages: a truncated list would pass for the whole one.
    /// The same as [`http::ApiError::TooManyPages`], which it becomes for the publishers.
    #[error("GET {path}: more than {pages} pages of {per_page}")]
    TooManyPages {
        path: String,
        pages: usize,
        per_page: usize,
    },
    /// A `Link` header pointed outside `api_base_url`; pagination stopped.
    #[error(
        "{method} {path}: refused to follow a pagination link outside the API base URL: {link}"
    )]
    ForeignLink {
        method: String,
        path: String,
        link: String,
    },
}

/// GitHub's answer to a request that failed with an error status.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub method: String,
    /// Without the query string.
    pub path: String,
    pub status: u16,
    /// GitHub's `message` (the status reason when the body is not GitHub's JSON).
    pub message: String,
    /// GitHub's `errors[]` (strings or `{resource, field, code, message}` objects), mostly on 422.
    pub errors: Vec<Value>,
    pub documentation_url: Option<String>,
    /// `x-github-request-id`.
    pub request_id: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: HTTP {}: {}",
            self.method,
            self.path,
            self.status,
            api_error_text(&self.message, &self.errors)
        )
    }
}

impl GitHubError {
    /// The HTTP status GitHub answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GitHubError::Api(e) => Some(e.status),
            GitHubError::Unconfirmed { status, .. } => *status,
            _ => None,
        }
    }

    /// 422 Unprocessable Entity: the request was understood and refused (a review line not in
    /// the diff, a description too long, ...). Retrying it unchanged cannot help.
    pub fn is_unprocessable(&self) -> bool {
        self.status() == Some(422)
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, GitHubError::Api(e) if e.status == 404)
    }

    pub fn is_unconfirmed(&self) -> bool {
        matches!(self, GitHubError::Unconfirmed { .. })
    }

    pub fn is_rate_limited(&self) -> bool {
        matches!(self, GitHubError::RateLimited { .. })
    }

    /// `message` followed by each entry of `errors[]` as text (empty for non-API errors).
    pub fn error_messages(&self) -> Vec<String> {
        match self {
            GitHubError::Api(e) => std::iter::once(e.message.clone())
                .filter(|m| !m.is_empty())
                .chain(e.errors.iter().map(error_entry_text))
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn error_entry_text(e: &Value) -> String {
    match e {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            if let Some(m) = o.get("message").and_then(Value::as_str) {
                return m.to_owned();
            }
            let part = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
            let mut s = [part("resource"), part("field")]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(".");
            let code = part("code");
            if !code.is_empty() {
                if !s.is_empty() {
                    s.push_str(": ");
                }
                s.push_str(code);
            }
            s
        }
        other => other.to_string(),
    }
}

fn api_error_text(message: &str, errors: &[Value]) -> String {
    let mut text = if message.is_empty() {
        "(no message)".to_owned()
    } else {
        message.to_owned()
    };
    let details: Vec<String> = errors
        .iter()
        .map(error_entry_text)
        .filter(|e| !e.is_empty())
        .collect();
    if !details.is_empty() {
        text.push_str(" [");
        text.push_str(&details.join("; "));
        text.push(']');
    }
    truncate(text, 2000)
}

/// Counters for metrics, since the client was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Times a request slept because GitHub rate-limited it or its installation.
    pub rate_limit_waits: u64,
    /// Times a write slept for pacing (`min_spacing`, `per_minute`, `per_hour`).
    pub pacing_waits: u64,
    /// Retries after a 5xx or network error.
    pub retries: u64,
    /// Content-creating requests that ended [`GitHubError::Unconfirmed`].
    pub unconfirmed: u64,
    /// Installation tokens minted.
    pub token_mints: u64,
}

#[derive(Default)]
struct Counters {
    rate_limit_waits: AtomicU64,
    pacing_waits: AtomicU64,
    retries: AtomicU64,
    unconfirmed: AtomicU64,
    token_mints: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Who a request is made as: the key of token caching, pacing and rate-limit pauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Principal {
    App,
    Installation(u64),
    Token,
}

enum Credentials {
    App { app_id: String, key: EncodingKey },
    Token(Secret),
}

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Pacing and pause state of one principal.
#[derive(Default)]
struct Pacing {
    /// No request before this instant (a rate limit was hit).
    pause_until: Option<Instant>,
    /// Slot of the latest write (may be in the future: reserved).
    last_write: Option<Instant>,
    /// Slots of recent content-creating writes, oldest first.
    created: VecDeque<Instant>,
    /// The same, of the writes on the shared budget only.
    shared: VecDeque<Instant>,
    /// The same per review (its shared writes), for its share.
    by_review: HashMap<String, VecDeque<Instant>>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    /// Where [`super::api::GRAPHQL_PATH`] goes: `{base}/graphql`, or `https://HOST/api/graphql` on GHES.
    graphql_url: String,
    credentials: Credentials,
    retry: RetryPolicy,
    limits: WriteLimits,
    tokens: Mutex<HashMap<u64, TokenSlot>>,
    pacing: Mutex<HashMap<Principal, Pacing>>,
    counters: Counters,
}

/// The GitHub REST client. Cheap to clone; clones share token cache, pacing and counters.
#[derive(Clone)]
pub struct GitHubClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.inner.credentials {
            Credentials::App { app_id, .. } => format!("App({app_id})"),
            Credentials::Token(_) => "Token([redacted])".to_owned(),
        };
        f.debug_struct("GitHubClient")
            .field("api_base_url", &self.inner.base)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

/// Request context for errors and logs.
struct Ctx {
    method: String,
    path: String,
}

impl GitHubClient {
    /// Builds the client. Checks the base URL and, for App auth, that the key can sign a JWT.
    pub fn new(config: GitHubClientConfig) -> Result<Self, GitHubError> {
        let base = normalize_base_url(&config.api_base_url)?;
        config.limits.validate()?;
        let credentials = match config.auth {
            GitHubAuth::App {
                app_id,
                private_key_pem,
            } => {
                if app_id.trim().is_empty() {
                    return Err(GitHubError::Config("the App ID is empty".into()));
                }
                let key = EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes()).map_err(
                    |e| {
                        GitHubError::Config(format!(
                            "the App private key is not an RSA PEM key ({:?})",
                            e.kind()
                        ))
                    },
                )?;
                sign_app_jwt(&app_id, &key)?;
                Credentials::App { app_id, key }
            }
            GitHubAuth::Token(token) => {
                bearer(&token).ok_or_else(|| {
                    GitHubError::Config("the token is empty or not a valid header value".into())
                })?;
                Credentials::Token(token)
            }
        };
        if config.user_agent.trim().is_empty() {
            return Err(GitHubError::Config("GitHub requires a User-Agent".into()));
        }
        let mut default_headers = HeaderMap::new();
        default_headers.insert(
            "x-github-api-version",
            HeaderValue::from_static(API_VERSION),
        );
        // Redirects (renamed or transferred repositories) are followed only below the API
        // root, like every other URL this client uses.
        let http = http::http_client(&base, &config.user_agent, default_headers, &config.retry)
            .map_err(GitHubError::Config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                graphql_url: graphql_url(&base),
                base,
                credentials,
                retry: config.retry,
                limits: config.limits,
                tokens: Mutex::new(HashMap::new()),
                pacing: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        })
    }

    /// The API root, without trailing slash.
    pub fn api_base_url(&self) -> &str {
        &self.inner.base
    }

    /// Sends one request as `installation` (ignored with [`GitHubAuth::Token`]; required with
    /// [`GitHubAuth::App`]). `path` is below `api_base_url` and starts with `/`.
    ///
    /// Retries, rate-limit waits and pacing follow `kind`; see [`WriteKind`]. For
    /// [`WriteKind::CreatesContent`], [`GitHubError::Unconfirmed`] means "maybe applied".
    pub async fn send(
        &self,
        installation: Option<u64>,
        method: Method,
        path: &str,
        body: Option<&Value>,
        kind: WriteKind,
    ) -> Result<ApiResponse, GitHubError> {
        let request = ApiRequest {
            body,
            ..ApiRequest::new(method, path, kind)
        };
        self.send_request(installation, &request).await
    }

    /// [`GitHubClient::send`] with the extra options of [`ApiRequest`].
    pub async fn send_request(
        &self,
        installation: Option<u64>,
        request: &ApiRequest<'_>,
    ) -> Result<ApiResponse, GitHubError> {
        let principal = self.principal_for(installation)?;
        self.execute(principal, request, true).await
    }

    /// `GET path` as `installation`, returning the JSON body.
    pub async fn get_json(
        &self,
        installation: Option<u64>,
        path: &str,
    ) -> Result<Value, GitHubError> {
        Ok(self
            .send(installation, Method::GET, path, None, WriteKind::Read)
            .await?
            .body)
    }

    /// Every item of a paginated list, following `Link: rel="next"` (adds `per_page=100` when
    /// the path has no `per_page`). Pages that are objects (`{"total_count":…, "check_runs":[…]}`)
    /// contribute their single array field. A next link outside `api_base_url` stops with
    /// [`GitHubError::ForeignLink`]; more than [`MAX_PAGES`] pages is an error.
    pub async fn paginate(
        &self,
        installation: Option<u64>,
        path: &str,
    ) -> Result<Vec<Value>, GitHubError> {
        let principal = self.principal_for(installation)?;
        self.paginate_as(principal, path).await
    }

    /// A request authenticated with the App JWT itself (`/app`, `/app/installations`,
    /// `/app/hook/deliveries`, ...). Only with [`GitHubAuth::App`].
    pub async fn app_request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        kind: WriteKind,
    ) -> Result<ApiResponse, GitHubError> {
        self.require_app()?;
        let request = ApiRequest {
            body,
            ..ApiRequest::new(method, path, kind)
        };
        self.execute(Principal::App, &request, true).await
    }

    /// [`GitHubClient::paginate`] with the App JWT (e.g. `/app/hook/deliveries`, which pages
    /// with a cursor in its `Link` header).
    pub async fn app_paginate(&self, path: &str) -> Result<Vec<Value>, GitHubError> {
        self.require_app()?;
        self.paginate_as(Principal::App, path).await
    }

    /// The installation's token, minted or from the cache: for git over HTTPS
    /// (`x-access-token:<token>`). With [`GitHubAuth::Token`], the fixed token.
    pub async fn installation_token(&self, installation: u64) -> Result<Secret, GitHubError> {
        match &self.inner.credentials {
            Credentials::Token(t) => Ok(t.clone()),
            Credentials::App { .. } => self.cached_installation_token(installation).await,
        }
    }

    /// Drops the cached token of `installation` (e.g. after the installation was removed).
    pub fn forget_installation(&self, installation: u64) {
        lock(&self.inner.tokens).remove(&installation);
        lock(&self.inner.pacing).remove(&Principal::Installation(installation));
    }

    /// How many times a request slept because of a rate limit.
    pub fn rate_limit_waits(&self) -> u64 {
        self.inner.counters.rate_limit_waits.load(Ordering::Relaxed)
    }

    /// All counters.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            rate_limit_waits: c.rate_limit_waits.load(Ordering::Relaxed),
            pacing_waits: c.pacing_waits.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            unconfirmed: c.unconfirmed.load(Ordering::Relaxed),
            token_mints: c.token_mints.load(Ordering::Relaxed),
        }
    }

    fn require_app(&self) -> Result<(), GitHubError> {
        match self.inner.credentials {
            Credentials::App { .. } => Ok(()),
            Credentials::Token(_) => Err(GitHubError::Config(
                "App-authenticated requests need GitHubAuth::App".into(),
            )),
        }
    }

    fn principal_for(&self, installation: Option<u64>) -> Result<Principal, GitHubError> {
        match (&self.inner.credentials, installation) {
            (Credentials::Token(_), _) => Ok(Principal::Token),
            (Credentials::App { .. }, Some(id)) => Ok(Principal::Installation(id)),
            (Credentials::App { .. }, None) => Err(GitHubError::Config(
                "with App authentication a request needs an installation id (use app_request for App endpoints)".into(),
            )),
        }
    }

    async fn paginate_as(
        &self,
        principal: Principal,
        path: &str,
    ) -> Result<Vec<Value>, GitHubError> {
        let mut next = with_per_page(path);
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let ctx = Ctx {
                method: "GET".into(),
                path: display_path(&next),
            };
            let response = self
                .execute(principal, &ApiRequest::get(&next), true)
                .await?;
            let link = response.next_link();
            match response.body {
                Value::Array(page) => items.extend(page),
                Value::Object(mut obj) => {
                    let arrays: Vec<String> = obj
                        .iter()
                        .filter(|(_, v)| v.is_array())
                        .map(|(k, _)| k.clone())
                        .collect();
                    match arrays.as_slice() {
                        [only] => {
                            if let Some(Value::Array(page)) = obj.remove(only) {
                                items.extend(page);
                            }
                        }
                        _ => {
                            return Err(
                                ctx.decode("a page is an object without exactly one array field")
                            );
                        }
                    }
                }
                Value::Null => {}
                _ => return Err(ctx.decode("a page is neither an array nor an object")),
            }
            let Some(link) = link else { return Ok(items) };
            let Some(path) = self.path_below_base(&link) else {
                return Err(GitHubError::ForeignLink {
                    method: ctx.method,
                    path: ctx.path,
                    link: display_url(&link),
                });
            };
            if !seen.insert(path.clone()) {
                return Err(ctx.decode("the next link repeats an earlier page"));
            }
            next = path;
        }
        Err(GitHubError::TooManyPages {
            path: display_path(path),
            pages: MAX_PAGES,
            per_page: per_page_of(&with_per_page(path)),
        })
    }

    /// `url` relative to the API root, if it is below it.
    fn path_below_base(&self, url: &str) -> Option<String> {
        http::path_below(&self.inner.base, url)
    }

    /// The `rel="next"` page of a response as a path below the API root, for
    /// [`crate::forge::http::list_pages`]; a link elsewhere is dropped.
    pub(crate) fn next_page(&self, response: &ApiResponse) -> Option<String> {
        let link = response.next_link()?;
        let path = self.path_below_base(&link);
        if path.is_none() {
            tracing::warn!(link = %display_url(&link), "ignoring a pagination link outside the API");
        }
        path
    }

    /// The request loop: pause, pace, authenticate, send, classify, maybe wait and retry.
    async fn execute(
        &self,
        principal: Principal,
        request: &ApiRequest<'_>,
        paced: bool,
    ) -> Result<ApiResponse, GitHubError> {
        let ctx = Ctx {
            method: request.method.to_string(),
            path: display_path(request.path),
        };
        http::validate_path(request.path).map_err(|reason| GitHubError::InvalidPath {
            path: ctx.path.clone(),
            reason,
        })?;
        let url = if request.path == super::api::GRAPHQL_PATH {
            self.inner.graphql_url.clone()
        } else {
            format!("{}{}", self.inner.base, request.path)
        };
        let kind = request.kind;
        let retry = &self.inner.retry;
        let limits = &self.inner.limits;

        let mut transient_retries = 0u32;
        let mut rate_limit_hits = 0u32;
        let mut secondary_hits = 0u32;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;

        loop {
            self.wait_out_pause(principal, &mut waited, &ctx).await?;
            if paced && kind != WriteKind::Read {
                self.pace_write(principal, kind, request.budget, &mut waited, &ctx)
                    .await?;
            }
            let token = self.credential(principal).await?;
            let authorization = bearer(&token)
                .ok_or_else(|| GitHubError::Auth("the token is not a valid header value".into()))?;

            let mut builder = self
                .inner
                .http
                .request(request.method.clone(), &url)
                .header(AUTHORIZATION, authorization)
                .header(ACCEPT, request.accept.unwrap_or(ACCEPT_JSON));
            if let Some(etag) = request.if_none_match {
                builder = builder.header(IF_NONE_MATCH, etag);
            }
            if let Some(body) = request.body {
                builder = builder.json(body);
            }
            tracing::debug!(method = %ctx.method, path = %ctx.path, "github request");

            let outcome = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = ResponseHeaders::from_map(response.headers());
                    match response.bytes().await {
                        Ok(bytes) => Ok((status, headers, bytes)),
                        Err(e) => Err((e, true, Some(status.as_u16()))),
                    }
                }
                Err(e) => {
                    // A connect error means nothing was sent: safe to retry, even a POST.
                    let sent = !e.is_connect();
                    Err((e, sent, None))
                }
            };

            let (status, headers, bytes) = match outcome {
                Ok(answer) => answer,
                Err((error, sent, answered)) => {
                    let detail = describe_reqwest_error(error);
                    match retry.may_retry(kind, sent, transient_retries) {
                        Retry::Unconfirmed => {
                            bump(&self.inner.counters.unconfirmed);
                            tracing::warn!(method = %ctx.method, path = %ctx.path, %detail, "content-creating request unconfirmed");
                            return Err(GitHubError::Unconfirmed {
                                method: ctx.method,
                                path: ctx.path,
                                status: answered,
                                detail,
                            });
                        }
                        Retry::Again(delay) => {
                            transient_retries += 1;
                            bump(&self.inner.counters.retries);
                            tracing::warn!(method = %ctx.method, path = %ctx.path, %detail, ?delay, attempt = transient_retries, "github network error, retrying");
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        Retry::GiveUp => {
                            return Err(GitHubError::Network {
                                method: ctx.method,
                                path: ctx.path,
                                attempts: transient_retries + 1,
                                sent,
                                detail,
                            });
                        }
                    }
                }
            };

            let code = status.as_u16();
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                return Ok(ApiResponse {
                    status: code,
                    headers,
                    body: parse_body(&bytes),
                });
            }
            let error_body = ErrorBody::parse(&bytes, status);

            if code == 401
                && !reauthenticated
                && let Principal::Installation(id) = principal
            {
                // The cached token may have been revoked; an unauthenticated request was not
                // processed, so one retry with a fresh token is safe.
                reauthenticated = true;
                self.invalidate_token(id, &token).await;
                continue;
            }

            if let Some((wait, why)) = rate_limit_wait(
                code,
                &headers,
                &error_body.message,
                secondary_hits,
                limits,
                unix_now_f64(),
            ) {
                rate_limit_hits += 1;
                if why == RateLimitKind::Secondary {
                    secondary_hits += 1;
                }
                let shared = why != RateLimitKind::Primary
                    || headers
                        .ratelimit_resource
                        .as_deref()
                        .is_none_or(|r| r == "core");
                // Paused even when this request gives up: the installation's other requests
                // must not keep hitting GitHub meanwhile (it may ban an integration that does).
                if shared {
                    self.pause(principal, wait);
                }
                if rate_limit_hits > MAX_RATE_LIMIT_RETRIES || waited + wait > limits.max_wait {
                    return Err(GitHubError::RateLimited {
                        method: ctx.method,
                        path: ctx.path,
                        waited,
                        retry_after: Some(wait),
                        detail: format!("HTTP {code}, {}: {}", why.describe(), error_body.message),
                    });
                }
                bump(&self.inner.counters.rate_limit_waits);
                tracing::warn!(method = %ctx.method, path = %ctx.path, status = code, ?wait, kind = why.describe(), "github rate limit, waiting");
                tokio::time::sleep(wait).await;
                waited += wait;
                continue;
            }

            if status.is_server_error() {
                match retry.may_retry(kind, true, transient_retries) {
                    Retry::Unconfirmed => {
                        bump(&self.inner.counters.unconfirmed);
                        tracing::warn!(method = %ctx.method, path = %ctx.path, status = code, "content-creating request unconfirmed");
                        return Err(GitHubError::Unconfirmed {
                            method: ctx.method,
                            path: ctx.path,
                            status: Some(code),
                            detail: format!("HTTP {code}: {}", error_body.message),
                        });
                    }
                    Retry::Again(delay) => {
                        transient_retries += 1;
                        bump(&self.inner.counters.retries);
                        tracing::warn!(method = %ctx.method, path = %ctx.path, status = code, ?delay, attempt = transient_retries, "github server error, retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    Retry::GiveUp => {}
                }
            }

            return Err(GitHubError::Api(Box::new(ApiError {
                method: ctx.method,
                path: ctx.path,
                status: code,
                message: error_body.message,
                errors: error_body.errors,
                documentation_url: error_body.documentation_url,
                request_id: headers.request_id,
            })));
        }
    }

    /// Sleeps while the principal is paused by a rate limit.
    async fn wait_out_pause(
        &self,
        principal: Principal,
        waited: &mut Duration,
        ctx: &Ctx,
    ) -> Result<(), GitHubError> {
        loop {
            let until = lock(&self.inner.pacing)
                .get(&principal)
                .and_then(|p| p.pause_until);
            let now = Instant::now();
            let Some(until) = until.filter(|u| *u > now) else {
                return Ok(());
            };
            let wait = until - now;
            if *waited + wait > self.inner.limits.max_wait {
                return Err(ctx.rate_limited(
                    *waited,
                    wait,
                    "the installation is paused by an earlier rate limit",
                ));
            }
            bump(&self.inner.counters.rate_limit_waits);
            tokio::time::sleep(wait).await;
            *waited += wait;
        }
    }

    fn pause(&self, principal: Principal, wait: Duration) {
        let until = Instant::now() + wait;
        let mut pacing = lock(&self.inner.pacing);
        let state = pacing.entry(principal).or_default();
        state.pause_until = Some(state.pause_until.map_or(until, |u| u.max(until)));
    }

    /// Reserves the next write slot of the principal and sleeps until it.
    async fn pace_write(
        &self,
        principal: Principal,
        kind: WriteKind,
        budget: Budget,
        waited: &mut Duration,
        ctx: &Ctx,
    ) -> Result<(), GitHubError> {
        let review = crate::forge::budget::current_review();
        let write = Write {
            creates: kind == WriteKind::CreatesContent,
            budget,
            review: review.as_deref(),
        };
        let limits = &self.inner.limits;
        let (slot, now) = {
            let mut pacing = lock(&self.inner.pacing);
            let state = pacing.entry(principal).or_default();
            let now = Instant::now();
            prune(state, now, limits);
            let (slot, bound) = next_write_slot(state, now, limits, &write);
            let wait = slot.saturating_duration_since(now);
            if *waited + wait > limits.max_wait {
                return Err(ctx.rate_limited(*waited, wait, bound.describe()));
            }
            record(state, slot, &write);
            (slot, now)
        };
        if slot > now {
            bump(&self.inner.counters.pacing_waits);
            tokio::time::sleep_until(tokio::time::Instant::from_std(slot)).await;
            *waited += slot - now;
        }
        Ok(())
    }

    /// The secret to send as `Bearer` for this principal.
    async fn credential(&self, principal: Principal) -> Result<Secret, GitHubError> {
        match (principal, &self.inner.credentials) {
            (Principal::Token, Credentials::Token(token)) => Ok(token.clone()),
            (Principal::App, Credentials::App { app_id, key }) => sign_app_jwt(app_id, key),
            (Principal::Installation(id), Credentials::App { .. }) => {
                self.cached_installation_token(id).await
            }
            _ => Err(GitHubError::Config(
                "authentication mode does not match the request".into(),
            )),
        }
    }

    fn token_slot(&self, installation: u64) -> TokenSlot {
        lock(&self.inner.tokens)
            .entry(installation)
            .or_default()
            .clone()
    }

    /// The cached token, or a new one. The per-installation lock is held across the mint, so
    /// concurrent callers share one mint.
    async fn cached_installation_token(&self, installation: u64) -> Result<Secret, GitHubError> {
        let slot = self.token_slot(installation);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.token.clone());
        }
        let fresh = Box::pin(self.mint_installation_token(installation)).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn invalidate_token(&self, installation: u64, used: &Secret) {
        let slot = self.token_slot(installation);
        let mut cached = slot.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.token.expose() == used.expose())
        {
            *cached = None;
        }
    }

    async fn mint_installation_token(&self, installation: u64) -> Result<CachedToken, GitHubError> {
        let path = format!("/app/installations/{installation}/access_tokens");
        // Not paced (one mint per installation per hour is no content), retried like an
        // idempotent write: a second token does no harm.
        let request = ApiRequest::new(Method::POST, &path, WriteKind::Idempotent);
        let response = self.execute(Principal::App, &request, false).await?;
        bump(&self.inner.counters.token_mints);
        let minted = InstallationToken::deserialize(&response.body)
            .ok()
            .filter(|t| !t.token.is_empty());
        let Some(minted) = minted else {
            return Err(GitHubError::Auth(format!(
                "the token mint for installation {installation} returned no token"
            )));
        };
        let token = minted.token.as_str();
        let now_unix = unix_now();
        let lifetime = match minted.expires_at.as_deref().and_then(unix_seconds) {
            Some(expires) => Duration::from_secs(expires.saturating_sub(now_unix)),
            None => {
                tracing::warn!(
                    installation,
                    "installation token without a readable expires_at; assuming 55 minutes"
                );
                FALLBACK_TOKEN_LIFETIME
            }
        };
        tracing::debug!(installation, ?lifetime, "minted installation token");
        Ok(CachedToken {
            token: Secret::new(token),
            refresh_at: Instant::now() + lifetime.saturating_sub(TOKEN_REFRESH_MARGIN),
        })
    }
}

impl Ctx {
    fn decode(&self, detail: &str) -> GitHubError {
        GitHubError::Decode {
            method: self.method.clone(),
            path: self.path.clone(),
            detail: detail.to_owned(),
        }
    }

    fn rate_limited(&self, waited: Duration, wait: Duration, detail: &str) -> GitHubError {
        GitHubError::RateLimited {
            method: self.method.clone(),
            path: self.path.clone(),
            waited,
            retry_after: Some(wait),
            detail: detail.to_owned(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bearer(secret: &Secret) -> Option<HeaderValue> {
    if secret.is_empty() {
        return None;
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[derive(serde::Serialize)]
struct AppClaims<'a> {
    iat: u64,
    exp: u64,
    iss: &'a str,
}

/// The App JWT: RS256, `iat` 60 s in the past, `exp` 9 minutes ahead, `iss` the App ID.
fn sign_app_jwt(app_id: &str, key: &EncodingKey) -> Result<Secret, GitHubError> {
    let now = unix_now();
    let claims = AppClaims {
        iat: now.saturating_sub(JWT_BACKDATE_SECS),
        exp: now + JWT_LIFETIME_SECS,
        iss: app_id,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
        .map(Secret::new)
        .map_err(|e| GitHubError::Auth(format!("cannot sign the App JWT ({:?})", e.kind())))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RateLimitKind {
    RetryAfter,
    Primary,
    Secondary,
}

impl RateLimitKind {
    fn describe(self) -> &'static str {
        match self {
            RateLimitKind::RetryAfter => "retry-after",
            RateLimitKind::Primary => "primary rate limit",
            RateLimitKind::Secondary => "secondary rate limit",
        }
    }
}

/// Whether a 403/429 is a rate limit, and how long to wait (GitHub's documented order:
/// `retry-after`; else `x-ratelimit-reset` when `x-ratelimit-remaining` is 0; else at least
/// `secondary_min_wait`, doubling per repeat). A 403 that is none of these (a missing
/// permission) is not a rate limit.
fn rate_limit_wait(
    status: u16,
    headers: &ResponseHeaders,
    message: &str,
    secondary_hits: u32,
    limits: &WriteLimits,
    now_unix: f64,
) -> Option<(Duration, RateLimitKind)> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(seconds) = headers.retry_after {
        return Some((Duration::from_secs(seconds), RateLimitKind::RetryAfter));
    }
    if headers.ratelimit_remaining == Some(0)
        && let Some(reset) = headers.ratelimit_reset
    {
        let wait = (reset as f64 - now_unix).max(0.0);
        return Some((Duration::from_secs_f64(wait), RateLimitKind::Primary));
    }
    let lower = message.to_ascii_lowercase();
    if status == 429
        || headers.ratelimit_remaining == Some(0)
        || lower.contains("rate limit")
        || lower.contains("abuse")
    {
        let wait = limits
            .secondary_min_wait
            .saturating_mul(2u32.saturating_pow(secondary_hits.min(16)));
        return Some((wait, RateLimitKind::Secondary));
    }
    None
}

/// A write being paced.
struct Write<'a> {
    creates: bool,
    budget: Budget,
    /// The review it belongs to, if any.
    review: Option<&'a str>,
}

/// What holds a write back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    Spacing,
    /// The installation's whole content budget.
    Installation,
    /// The shared part (what is not kept for checks).
    Shared,
    /// The review's share.
    Review,
}

impl Bound {
    fn describe(self) -> &'static str {
        match self {
            Bound::Spacing => "write pacing (the spacing between writes)",
            Bound::Installation => "write pacing (the installation's content-write budget)",
            Bound::Shared => {
                "write pacing (the installation's content-write budget, but for the part kept for checks)"
            }
            Bound::Review => {
                "write pacing (this pull request's share of the installation's content-write budget)"
            }
        }
    }
}

/// Drops pacing history nobody needs any more.
fn prune(state: &mut Pacing, now: Instant, limits: &WriteLimits) {
    let keep = limits.per_minute.max(limits.per_hour) as usize;
    let horizon = now.checked_sub(limits.hour.max(limits.minute));
    let trim = |slots: &mut VecDeque<Instant>| {
        if let Some(horizon) = horizon {
            while slots.front().is_some_and(|t| *t <= horizon) {
                slots.pop_front();
            }
        }
        while slots.len() > keep {
            slots.pop_front();
        }
    };
    trim(&mut state.created);
    trim(&mut state.shared);
    for slots in state.by_review.values_mut() {
        trim(slots);
    }
    state.by_review.retain(|_, slots| !slots.is_empty());
    if state.pause_until.is_some_and(|u| u <= now) {
        state.pause_until = None;
    }
}

/// The earliest instant ≥ `now` at which a write may start, and what holds it back there:
/// `min_spacing` after the last write, and for content creation, in the minute's and the hour's
/// windows before it, fewer than the limit of all content writes, fewer than the shared part of
/// it for a write on the shared budget, and fewer than the review's share for a review's write.
/// (The n-th most recent slot of the kind must have left the window; slots are reserved in
/// order, so every list is sorted.)
fn next_write_slot(
    state: &Pacing,
    now: Instant,
    limits: &WriteLimits,
    write: &Write<'_>,
) -> (Instant, Bound) {
    let mut slot = (now, Bound::Spacing);
    let mut at_least = |at: Instant, bound: Bound| {
        if at > slot.0 {
            slot = (at, bound);
        }
    };
    if let Some(last) = state.last_write {
        at_least(last + limits.min_spacing, Bound::Spacing);
    }
    if !write.creates {
        return slot;
    }
    let review = write.review.and_then(|r| state.by_review.get(r));
    for (limit, window) in [
        (limits.per_minute, limits.minute),
        (limits.per_hour, limits.hour),
    ] {
        if limit == 0 {
            continue;
        }
        let mut bounded = |slots: &VecDeque<Instant>, n: usize, bound: Bound| {
            if n > 0 && slots.len() >= n {
                at_least(slots[slots.len() - n] + window, bound);
            }
        };
        bounded(&state.created, limit as usize, Bound::Installation);
        if write.budget == Budget::Shared {
            bounded(&state.shared, limits.shared_part(limit), Bound::Shared);
            if let Some(review) = review {
                bounded(review, limits.review_part(limit), Bound::Review);
            }
        }
    }
    slot
}

/// Takes `slot` for `write`.
fn record(state: &mut Pacing, slot: Instant, write: &Write<'_>) {
    state.last_write = Some(slot);
    if !write.creates {
        return;
    }
    state.created.push_back(slot);
    if write.budget == Budget::Shared {
        state.shared.push_back(slot);
        if let Some(review) = write.review {
            state
                .by_review
                .entry(review.to_owned())
                .or_default()
                .push_back(slot);
        }
    }
}

/// GitHub's error body.
struct ErrorBody {
    message: String,
    errors: Vec<Value>,
    documentation_url: Option<String>,
}

impl ErrorBody {
    fn parse(bytes: &[u8], status: StatusCode) -> Self {
        let fallback = || status.canonical_reason().unwrap_or("error").to_owned();
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(o)) => Self {
                message: o
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(fallback, |m| truncate(m.to_owned(), 1000)),
                errors: match o.get("errors") {
                    Some(Value::Array(a)) => a.iter().take(50).cloned().collect(),
                    Some(other) if !other.is_null() => vec![other.clone()],
                    _ => Vec::new(),
                },
                documentation_url: o
                    .get("documentation_url")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
            // HTML error pages and the like: the status says enough.
            _ => Self {
                message: fallback(),
                errors: Vec::new(),
                documentation_url: None,
            },
        }
    }
}

/// GitHub's GraphQL endpoint for a REST root: `https://api.github.com/graphql`, and on GHES
/// `https://HOST/api/graphql` for `https://HOST/api/v3` (the rule octokit's clients follow).
fn graphql_url(base: &str) -> String {
    use super::api::GRAPHQL_PATH;
    match base.strip_suffix("/api/v3") {
        Some(host) => format!("{host}/api/graphql"),
        None => format!("{base}{GRAPHQL_PATH}"),
    }
}

fn normalize_base_url(raw: &str) -> Result<String, GitHubError> {
    http::normalize_root_url(raw).map_err(|why| GitHubError::Config(format!("api_base_url {why}")))
}

/// The `per_page` a paginated path asks for.
fn per_page_of(path: &str) -> usize {
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .find_map(|p| p.strip_prefix("per_page="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(http::PER_PAGE)
}

fn with_per_page(path: &str) -> String {
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    if query.split('&').any(|p| p.starts_with("per_page=")) {
        path.to_owned()
    } else if path.contains('?') {
        format!("{path}&per_page=100")
    } else {
        format!("{path}?per_page=100")
    }
}

/// `/repos/{owner}/{repo}{rest}` with owner and repo encoded as single segments
/// ([`encode_segment`]). `rest` is appended as given (a leading `/` is added if missing); build
/// it from numbers or encode its parts too.
pub fn repo_path(owner: &str, repo: &str, rest: &str) -> String {
    let separator = if rest.is_empty() || rest.starts_with(['/', '?']) {
        ""
    } else {
        "/"
    };
    format!(
        "/repos/{}/{}{separator}{rest}",
        encode_segment(owner),
        encode_segment(repo)
    )
}

/// Unix seconds of an RFC 3339 timestamp (`2026-05-20T12:00:00Z`, fractions and offsets
/// allowed); `None` before 1970 or when it is not one.
fn unix_seconds(s: &str) -> Option<u64> {
    let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_lives_beside_the_rest_root_on_ghes() {
        assert_eq!(
            graphql_url("https://api.github.com"),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            graphql_url("https://ghe.example.com/api/v3"),
            "https://ghe.example.com/api/graphql"
        );
        assert_eq!(
            graphql_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/graphql"
        );
    }

    /// The budget as one pool: no share per review, nothing kept for checks.
    fn limits(per_minute: u32, per_hour: u32, spacing_ms: u64) -> WriteLimits {
        WriteLimits {
            per_minute,
            per_hour,
            review_share_percent: 100,
            check_reserve_percent: 0,
            min_spacing: Duration::from_millis(spacing_ms),
            ..WriteLimits::default()
        }
    }

    /// Reserves a write slot at `now`, as `pace_write` does.
    fn reserve(state: &mut Pacing, now: Instant, limits: &WriteLimits, creates: bool) -> Instant {
        let write = Write {
            creates,
            budget: Budget::Shared,
            review: None,
        };
        reserve_for(state, now, limits, &write).0
    }

    fn reserve_for(
        state: &mut Pacing,
        now: Instant,
        limits: &WriteLimits,
        write: &Write<'_>,
    ) -> (Instant, Bound) {
        prune(state, now, limits);
        let (slot, bound) = next_write_slot(state, now, limits, write);
        record(state, slot, write);
        (slot, bound)
    }

    #[test]
    fn a_review_gets_its_share_and_checks_keep_their_reserve() {
        // 10 a minute: 4 for one review (40 %), 2 kept for checks (20 %).
        let l = WriteLimits {
            review_share_percent: 40,
            check_reserve_percent: 20,
            ..limits(10, 0, 0)
        };
        assert_eq!((l.review_part(10), l.shared_part(10)), (4, 8));
        let heavy = |budget| Write {
            creates: true,
            budget,
            review: Some("github:1:1"),
        };
        let light = Write {
            review: Some("github:1:2"),
            ..heavy(Budget::Shared)
        };
        let t0 = Instant::now();
        // Where a write would go, without booking it (a wait past `max_wait` books nothing).
        let peek = |s: &Pacing, write: &Write<'_>| next_write_slot(s, t0, &l, write);
        let mut s = Pacing::default();
        for _ in 0..4 {
            assert_eq!(reserve_for(&mut s, t0, &l, &heavy(Budget::Shared)).0, t0);
        }
        // The heavy review has had its share of this minute; another review has not.
        assert_eq!(
            peek(&s, &heavy(Budget::Shared)),
            (t0 + MINUTE, Bound::Review)
        );
        for _ in 0..4 {
            assert_eq!(reserve_for(&mut s, t0, &l, &light).0, t0);
        }
        // Eight shared writes in the minute: the rest is for checks only.
        let third = Write {
            review: Some("github:1:3"),
            ..light
        };
        assert_eq!(peek(&s, &third), (t0 + MINUTE, Bound::Shared));
        for _ in 0..2 {
            assert_eq!(reserve_for(&mut s, t0, &l, &heavy(Budget::Reserved)).0, t0);
        }
        // Not beyond the whole budget, though.
        assert_eq!(
            peek(&s, &heavy(Budget::Reserved)),
            (t0 + MINUTE, Bound::Installation)
        );
        // Once the minute has passed, all of it is there again.
        let later = t0 + MINUTE;
        prune(&mut s, later, &l);
        assert_eq!(next_write_slot(&s, later, &l, &third).0, later);
        // Writes outside any review only meet the shared part.
        let anonymous = Write {
            review: None,
            ..light
        };
        let mut s = Pacing::default();
        for _ in 0..8 {
            assert_eq!(reserve_for(&mut s, t0, &l, &anonymous).0, t0);
        }
        assert_eq!(peek(&s, &anonymous).1, Bound::Shared);
    }

    #[test]
    fn shares_and_reserves_round_sensibly() {
        let l = WriteLimits::default();
        assert_eq!((l.review_part(80), l.shared_part(80)), (20, 72));
        assert_eq!((l.review_part(500), l.shared_part(500)), (125, 450));
        // A tiny budget still lets a review write, and keeps one for checks.
        assert_eq!((l.review_part(3), l.shared_part(3)), (1, 2));
        assert_eq!(l.shared_part(1), 1, "nothing to keep from a budget of one");
        let no_reserve = WriteLimits {
            check_reserve_percent: 0,
            review_share_percent: 100,
            ..WriteLimits::default()
        };
        assert_eq!(
            (no_reserve.review_part(80), no_reserve.shared_part(80)),
            (80, 80)
        );
        assert!(
            WriteLimits {
                review_share_percent: 0,
                ..WriteLimits::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            WriteLimits {
                check_reserve_percent: 60,
                ..WriteLimits::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn spacing_applies_to_all_writes() {
        let l = limits(80, 500, 1000);
        let mut s = Pacing::default();
        let t0 = Instant::now();
        assert_eq!(reserve(&mut s, t0, &l, false), t0);
        assert_eq!(reserve(&mut s, t0, &l, true), t0 + Duration::from_secs(1));
        assert_eq!(reserve(&mut s, t0, &l, false), t0 + Duration::from_secs(2));
        // Idempotent writes do not count against the content limits.
        assert_eq!(s.created.len(), 1);
    }

    #[test]
    fn per_minute_window() {
        let l = limits(3, 500, 0);
        let mut s = Pacing::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(reserve(&mut s, t0, &l, true), t0);
        }
        assert_eq!(reserve(&mut s, t0, &l, true), t0 + MINUTE);
        // Non-content writes pass.
        assert_eq!(reserve(&mut s, t0 + MINUTE, &l, false), t0 + MINUTE);
    }

    #[test]
    fn per_hour_window() {
        let l = limits(0, 4, 0);
        let mut s = Pacing::default();
        let t0 = Instant::now();
        let mut t = t0;
        for _ in 0..4 {
            assert_eq!(reserve(&mut s, t, &l, true), t);
            t += Duration::from_secs(600);
        }
        // The fifth must wait until the first is an hour old.
        assert_eq!(reserve(&mut s, t, &l, true), t0 + HOUR);
    }

    #[test]
    fn rate_limit_classification() {
        let l = WriteLimits {
            secondary_min_wait: Duration::from_secs(60),
            ..WriteLimits::default()
        };
        let h = |f: fn(&mut ResponseHeaders)| {
            let mut h = ResponseHeaders::default();
            f(&mut h);
            h
        };
        let retry = h(|h| h.retry_after = Some(7));
        assert_eq!(
            rate_limit_wait(403, &retry, "", 0, &l, 0.0),
            Some((Duration::from_secs(7), RateLimitKind::RetryAfter))
        );
        let primary = h(|h| {
            h.ratelimit_remaining = Some(0);
            h.ratelimit_reset = Some(1000);
        });
        assert_eq!(
            rate_limit_wait(403, &primary, "API rate limit exceeded", 0, &l, 990.0),
            Some((Duration::from_secs(10), RateLimitKind::Primary))
        );
        assert_eq!(
            rate_limit_wait(403, &primary, "", 0, &l, 2000.0),
            Some((Duration::ZERO, RateLimitKind::Primary))
        );
        let none = ResponseHeaders {
            ratelimit_remaining: Some(4000),
            ..ResponseHeaders::default()
        };
        let msg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
        assert_eq!(
            rate_limit_wait(403, &none, msg, 0, &l, 0.0),
            Some((Duration::from_secs(60), RateLimitKind::Secondary))
        );
        assert_eq!(
            rate_limit_wait(403, &none, msg, 2, &l, 0.0),
            Some((Duration::from_secs(240), RateLimitKind::Secondary))
        );
        assert_eq!(
            rate_limit_wait(429, &none, "", 0, &l, 0.0),
            Some((Duration::from_secs(60), RateLimitKind::Secondary))
        );
        // A permission problem is not a rate limit.
        assert_eq!(
            rate_limit_wait(
                403,
                &none,
                "Resource not accessible by integration",
                0,
                &l,
                0.0
            ),
            None
        );
        assert_eq!(rate_limit_wait(500, &retry, "", 0, &l, 0.0), None);
    }

    #[test]
    fn timestamps() {
        let parse_rfc3339 = unix_seconds;
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2016-07-11T22:14:10Z"), Some(1_468_275_250));
        assert_eq!(
            parse_rfc3339("2016-07-11T22:14:10.123Z"),
            Some(1_468_275_250)
        );
        assert_eq!(
            parse_rfc3339("2016-07-12T00:14:10+02:00"),
            Some(1_468_275_250)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_rfc3339("2016-07-11 22:14"), None);
        assert_eq!(parse_rfc3339("2016-13-11T22:14:10Z"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(per_page_of("/x?state=all&per_page=50"), 50);
        assert_eq!(per_page_of("/x"), 100);
        assert_eq!(with_per_page("/x"), "/x?per_page=100");
        assert_eq!(with_per_page("/x?state=all"), "/x?state=all&per_page=100");
        assert_eq!(with_per_page("/x?per_page=50"), "/x?per_page=50");
    }

    #[test]
    fn segments() {
        assert_eq!(encode_segment("my.repo-1_x~"), "my.repo-1_x~");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(
            repo_path("octo", "hello", "/pulls/1"),
            "/repos/octo/hello/pulls/1"
        );
        assert_eq!(
            repo_path("octo", "hello", "pulls"),
            "/repos/octo/hello/pulls"
        );
        assert_eq!(repo_path("octo", "hello", ""), "/repos/octo/hello");
        assert!(http::validate_path(&repo_path("..", "x", "")).is_err());
        assert!(http::validate_path(&repo_path("", "x", "")).is_err());
        assert!(http::validate_path(&repo_path("o/../../app", "x", "")).is_ok());
    }
}
