//! The HTTP layer both forges share: the request (with its write kind), the reply, the one
//! error type the bot sees, retry backoff, path checks and segment encoding, `Link` headers,
//! and list pagination that fails loudly at its limit.
//!
//! Each forge's client adds only what is its own on top: GitHub its App authentication, its
//! rate-limit headers and write pacing (`github/client.rs`), GitLab its `PRIVATE-TOKEN` and
//! `RateLimit-*` headers (`gitlab/client.rs`). The publishers, fakes and test doubles speak
//! [`Request`], [`Reply`] and [`ApiError`], so the same code runs against either client and
//! against the fakes.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// Items per page asked of list endpoints: both forges' largest page.
pub const PER_PAGE: usize = 100;
/// Pages [`list_pages`] reads by default (10,000 items) before failing with
/// [`ApiError::TooManyPages`].
pub const MAX_PAGES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Patch,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    pub fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Patch => reqwest::Method::PATCH,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// What a request does, which decides how it may be retried and paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// GET (or HEAD, a GraphQL query): retried on 5xx and network errors.
    Read,
    /// PATCH, PUT, DELETE, or a POST that is safe to repeat: retried like a read; GitHub
    /// spaces it by `min_spacing`.
    Idempotent,
    /// A POST that creates something (comment, note, review, check run, status), or a PATCH
    /// that adds to what is there (check-run annotations append on every update). Paced, and
    /// never re-sent once it may have reached the forge: a 5xx or an error after sending gives
    /// [`ApiError::Unconfirmed`].
    CreatesContent,
}

/// Which part of an installation's content-write budget a write draws on (GitHub paces by
/// it; GitLab has one budget per token and ignores it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Budget {
    /// The part shared by all writes, within the share of the review making it.
    #[default]
    Shared,
    /// The slice kept for opening and concluding checks, not counted against the review's
    /// share.
    Reserved,
}

/// One API call: a method, a path below the forge's API root (query allowed), an optional
/// JSON body, and what kind of write it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    /// Path and query below the API base URL, built from ids and [`encode_segment`]ed names.
    pub path: String,
    pub body: Option<Value>,
    /// How it may be retried and paced.
    pub kind: WriteKind,
    /// Which part of the content-write budget it draws on.
    pub budget: Budget,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Request {
        Request {
            method: Method::Get,
            path: path.into(),
            body: None,
            kind: WriteKind::Read,
            budget: Budget::Shared,
        }
    }

    /// A POST creates something: once it may have reached the forge it is never re-sent
    /// blindly (see [`ApiError::Unconfirmed`]).
    pub fn post(path: impl Into<String>, body: Value) -> Request {
        Request {
            method: Method::Post,
            path: path.into(),
            body: Some(body),
            kind: WriteKind::CreatesContent,
            budget: Budget::Shared,
        }
    }

    pub fn patch(path: impl Into<String>, body: Value) -> Request {
        Request {
            method: Method::Patch,
            path: path.into(),
            body: Some(body),
            kind: WriteKind::Idempotent,
            budget: Budget::Shared,
        }
    }

    /// A PATCH that adds to what is there (check-run annotations append on every update): like
    /// a POST, never re-sent blindly; a lost answer is [`ApiError::Unconfirmed`].
    pub fn patch_appending(path: impl Into<String>, body: Value) -> Request {
        Request {
            kind: WriteKind::CreatesContent,
            ..Request::patch(path, body)
        }
    }

    pub fn put(path: impl Into<String>, body: Option<Value>) -> Request {
        Request {
            method: Method::Put,
            path: path.into(),
            body,
            kind: WriteKind::Idempotent,
            budget: Budget::Shared,
        }
    }

    pub fn delete(path: impl Into<String>) -> Request {
        Request {
            method: Method::Delete,
            path: path.into(),
            body: None,
            kind: WriteKind::Idempotent,
            budget: Budget::Shared,
        }
    }

    /// Draws on the part of the budget kept for opening and concluding checks, so a pull
    /// request gets its check however much other reviews of the installation wrote.
    pub fn reserved(self) -> Request {
        Request {
            budget: Budget::Reserved,
            ..self
        }
    }
}

/// A 2xx answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// The JSON body; `Null` when empty.
    pub body: Value,
    /// The `rel="next"` page of the `Link` header, as a path below the API root (a link
    /// elsewhere is dropped): what [`list_pages`] follows.
    pub next: Option<String>,
}

impl Reply {
    /// A reply without a next page (fakes, single objects).
    pub fn new(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            next: None,
        }
    }
}

/// Why a call failed, for both forges. Messages name the method and the path without its
/// query, never a token.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A write may or may not have taken effect (5xx or a network error after sending it):
    /// look before sending it again.
    #[error("{0}: the outcome is unknown")]
    Unconfirmed(String),
    /// The forge answered with an error status.
    #[error("{method} {path}: HTTP {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    /// Not sent (or refused by the forge) for a rate limit: the forge's, or our pacing of
    /// writes. Waiting `retry_after` would be longer than a request may wait, so the worker
    /// defers the job until then rather than failing it.
    #[error("{message}")]
    RateLimited {
        retry_after: Duration,
        message: String,
    },
    /// No answer after the retries (connection refused, timeouts).
    #[error("{method} {path}: {detail}")]
    Network {
        method: &'static str,
        path: String,
        detail: String,
    },
    /// A 2xx reply without what we read from it (an id, a token): the forge changed its shape.
    #[error(transparent)]
    Reply(#[from] crate::forge::reply::UnexpectedReply),
    /// A list longer than we read: a truncated list would pass for the whole one.
    #[error("GET {path}: more than {pages} pages of {per_page}")]
    TooManyPages {
        path: String,
        pages: usize,
        per_page: usize,
    },
    /// A request we refuse to send (a path that could leave the API) or a broken setup.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Other(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The forge's error message, when it sent one.
    pub fn message(&self) -> Option<&str> {
        match self {
            ApiError::Status { message, .. } => Some(message),
            _ => None,
        }
    }

    /// How long to wait before trying again, for a rate limit.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Retries of reads and idempotent writes after 5xx answers and network errors.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before retry `n` is random in `[0, min(max_delay, base_delay * 2^n)]` (full jitter).
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Timeout of one attempt, body included. A timeout is a network error.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Full-jitter exponential backoff before retry number `retry` (0-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.max_delay);
        cap.mul_f64(rand::random::<f64>())
    }

    /// Whether a failed attempt may be retried, as decided for every forge: a write that
    /// creates something is never re-sent once it may have been received; anything else is
    /// retried while retries are left.
    pub fn may_retry(&self, kind: WriteKind, sent: bool, retries_so_far: u32) -> Retry {
        if kind == WriteKind::CreatesContent && sent {
            Retry::Unconfirmed
        } else if retries_so_far < self.max_retries {
            Retry::Again(self.backoff(retries_so_far))
        } else {
            Retry::GiveUp
        }
    }
}

/// What to do after a 5xx or a network error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Retry {
    /// Sleep this long and send it again.
    Again(Duration),
    /// A content-creating write that may have landed: report it unconfirmed, never re-send.
    Unconfirmed,
    /// Out of retries.
    GiveUp,
}

/// A reqwest client for one API root: timeouts from `retry`, and redirects followed only
/// below `api_root` (a redirect elsewhere could hand our token to another host).
pub fn http_client(
    api_root: &str,
    user_agent: &str,
    default_headers: HeaderMap,
    retry: &RetryPolicy,
) -> Result<reqwest::Client, String> {
    let redirect_base = format!("{api_root}/");
    reqwest::Client::builder()
        .user_agent(user_agent)
        .default_headers(default_headers)
        .timeout(retry.request_timeout)
        .connect_timeout(retry.request_timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() < 5 && attempt.url().as_str().starts_with(&redirect_base) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))
}

/// Checks a configured root URL (http or https, a host, no credentials, query or fragment)
/// and returns it serialized as reqwest sees it (lower-case host, default port dropped),
/// without trailing slash. The error says what is wrong, for the caller to name the setting.
pub fn normalize_root_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http or https".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Refuses anything but a plain path below the API root; the error is the reason.
pub fn validate_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("it must start with '/'");
    }
    if path.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        return Err("only printable ASCII without spaces (percent-encode the rest)");
    }
    if path.contains(['#', '\\']) {
        return Err("no '#' or '\\'");
    }
    let route = path.split('?').next().unwrap_or("");
    if route.contains("//") {
        return Err("empty path segment");
    }
    for segment in route.split('/').skip(1) {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        if decoded == "." || decoded == ".." {
            return Err("dot segment");
        }
    }
    Ok(())
}

/// Percent-encodes `s` as one path segment: only RFC 3986's unreserved `A-Z a-z 0-9 - . _ ~`
/// stay as they are, so a name can never add segments or a query. `.` and `..` cannot be
/// encoded safely; they come out as `%2E` segments that [`validate_path`] refuses, like the
/// empty segment the empty string gives.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push_str(&hex::encode_upper([b]));
        }
    }
    if out == "." || out == ".." {
        return out.replace('.', "%2E");
    }
    out
}

/// A path for errors and logs: no query string (it may carry secrets), bounded length.
pub fn display_path(path: &str) -> String {
    let route = path.split(['?', '#']).next().unwrap_or("");
    let clean: String = route.chars().filter(|c| !c.is_control()).collect();
    truncate(clean, 300)
}

/// A URL for errors and logs: no userinfo, no query.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            truncate(u.to_string(), 300)
        }
        Err(_) => display_path(url),
    }
}

/// Cuts `s` to at most `max` bytes (on a character boundary), marking the cut.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// A reqwest error as text: without its URL, with its causes.
pub fn describe(error: reqwest::Error) -> String {
    let timeout = error.is_timeout();
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if timeout && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    truncate(text, 500)
}

/// A response body as JSON: `Null` when empty (204, 304), a `String` when it is not JSON.
pub fn parse_body(bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The URL of relation `rel` in a `Link` header (`<url>; rel="next", <url>; rel="last"`).
pub fn parse_link_header(header: &str, rel: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let url = &after[..end];
        let params_all = &after[end + 1..];
        let params_end = params_all.find('<').unwrap_or(params_all.len());
        let params = params_all[..params_end].trim_end().trim_end_matches(',');
        let matches = params.split(';').any(|p| {
            let Some((key, value)) = p.split_once('=') else {
                return false;
            };
            key.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case(rel))
        });
        if matches {
            return Some(url.to_owned());
        }
        rest = &params_all[params_end..];
    }
}

/// `url` relative to `api_root`, if it lies below it.
pub fn path_below(api_root: &str, url: &str) -> Option<String> {
    let rest = url.strip_prefix(api_root)?;
    rest.starts_with('/').then(|| rest.to_owned())
}

/// The `rel="next"` link of `headers` as a path below `api_root`. A link elsewhere is
/// dropped (logged): the client never sends its token outside the API.
pub fn next_page(api_root: &str, headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    let url = parse_link_header(link, "next")?;
    let path = path_below(api_root, &url);
    if path.is_none() {
        tracing::warn!(link = %display_url(&url), "ignoring a pagination link outside the API");
    }
    path
}

/// Every page of a list endpoint, [`PER_PAGE`] at a time, through `fetch` (one GET of a
/// path): the items of each page (the page itself, or its array under `key`), at most
/// `max_pages` pages.
///
/// The first page is `path?per_page=100&page=1`; after it, a reply's `Link: rel="next"`
/// ([`Reply::next`]) is followed, and without one a full page asks for the next by number,
/// while a short page ends the list. Past the limit the list fails with
/// [`ApiError::TooManyPages`], never a truncated list: at once when the forge still links a
/// next page, and otherwise after one more page by number turns out not to be empty.
pub async fn list_pages<F, Fut>(
    path: &str,
    key: Option<&str>,
    max_pages: usize,
    mut fetch: F,
) -> Result<Vec<Value>, ApiError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Reply, ApiError>>,
{
    let separator = if path.contains('?') { '&' } else { '?' };
    let numbered = |page: usize| format!("{path}{separator}per_page={PER_PAGE}&page={page}");
    let too_many = || ApiError::TooManyPages {
        path: path.split('?').next().unwrap_or("").to_owned(),
        pages: max_pages,
        per_page: PER_PAGE,
    };
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    let mut next = numbered(1);
    let mut page = 1;
    loop {
        let reply = fetch(next.clone()).await?;
        seen.insert(next);
        let items = match key {
            Some(k) => reply.body.get(k).and_then(Value::as_array).cloned(),
            None => reply.body.as_array().cloned(),
        }
        .unwrap_or_default();
        if page > max_pages {
            // The page after the limit, asked by number: anything in it is beyond the limit.
            return if items.is_empty() {
                Ok(all)
            } else {
                Err(too_many())
            };
        }
        let full = items.len() >= PER_PAGE;
        all.extend(items);
        next = match reply.next {
            Some(_) if page == max_pages => return Err(too_many()),
            Some(link) => {
                if seen.contains(&link) {
                    return Err(ApiError::Other(format!(
                        "GET {}: the next page link repeats an earlier page",
                        display_path(path)
                    )));
                }
                link
            }
            None if !full => return Ok(all),
            None => numbered(page + 1),
        };
        page += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn one_segment_encoder() {
        assert_eq!(encode_segment("my.repo-1_x~"), "my.repo-1_x~");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment("100%"), "100%25");
        assert_eq!(encode_segment("a?b#c"), "a%3Fb%23c");
        assert_eq!(encode_segment("ü"), "%C3%BC");
        assert_eq!(encode_segment("../x"), "..%2Fx");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("."), "%2E");
        for name in ["..", ".", "", "a/../b", "x y", "ü"] {
            let path = format!("/repos/{}/r", encode_segment(name));
            let ok = validate_path(&path).is_ok();
            assert_eq!(ok, !matches!(name, ".." | "." | ""), "{name}: {path}");
        }
    }

    #[test]
    fn paths_cannot_leave_the_api() {
        assert!(validate_path("/repos/o/r/pulls?per_page=100&page=2").is_ok());
        for bad in [
            "repos/o",
            "//evil.example.com/x",
            "/repos/../app",
            "/repos/%2e%2E/x",
            "/a b",
            "/a#b",
            "/a\\b",
            "/repos//r",
            "/é",
        ] {
            assert!(validate_path(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(display_path("/x?access_token=secret"), "/x");
    }

    #[test]
    fn link_header() {
        let h = r#"<https://api.github.com/x?page=2&labels=a,b>; rel="next", <https://api.github.com/x?page=5>; rel="last""#;
        assert_eq!(
            parse_link_header(h, "next").as_deref(),
            Some("https://api.github.com/x?page=2&labels=a,b")
        );
        assert_eq!(
            parse_link_header(h, "last").as_deref(),
            Some("https://api.github.com/x?page=5")
        );
        assert_eq!(parse_link_header(h, "prev"), None);
        assert_eq!(parse_link_header("", "next"), None);
        assert_eq!(
            path_below("https://api.github.com", "https://api.github.com/x?page=2").as_deref(),
            Some("/x?page=2")
        );
        assert_eq!(
            path_below("https://api.github.com", "https://api.github.com.evil/x"),
            None
        );
    }

    #[test]
    fn root_urls_are_checked() {
        assert_eq!(
            normalize_root_url("https://Example.com/gitlab/").as_deref(),
            Ok("https://example.com/gitlab")
        );
        for bad in [
            "ftp://x",
            "https://user:pw@gitlab.com",
            "https://gitlab.com/?x=1",
            "gitlab.com",
        ] {
            assert!(normalize_root_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn creating_writes_are_never_resent() {
        let policy = RetryPolicy {
            max_retries: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.may_retry(WriteKind::CreatesContent, true, 0),
            Retry::Unconfirmed
        );
        assert!(matches!(
            policy.may_retry(WriteKind::CreatesContent, false, 0),
            Retry::Again(_)
        ));
        assert!(matches!(
            policy.may_retry(WriteKind::Read, true, 0),
            Retry::Again(_)
        ));
        assert_eq!(policy.may_retry(WriteKind::Read, true, 1), Retry::GiveUp);
    }

    /// A list served by `pages`: each GET answers the next entry, recording its path.
    async fn run_list(
        pages: Vec<(usize, Option<&str>)>,
        max_pages: usize,
    ) -> (Result<Vec<Value>, ApiError>, Vec<String>) {
        let asked = Mutex::new(Vec::new());
        let pages = Mutex::new(pages.into_iter());
        let result = list_pages("/items?state=all", None, max_pages, |path| {
            asked.lock().expect("lock").push(path);
            let (count, next) = pages.lock().expect("lock").next().unwrap_or((0, None));
            let reply = Reply {
                status: 200,
                body: Value::Array(vec![Value::Null; count]),
                next: next.map(str::to_owned),
            };
            async move { Ok(reply) }
        })
        .await;
        (result, asked.into_inner().expect("lock"))
    }

    #[tokio::test]
    async fn pagination_follows_links_and_fails_loudly_at_its_limit() {
        // Without links: by number, until a short page.
        let (items, asked) = run_list(vec![(100, None), (3, None)], 5).await;
        assert_eq!(items.expect("list").len(), 103);
        assert_eq!(
            asked,
            [
                "/items?state=all&per_page=100&page=1",
                "/items?state=all&per_page=100&page=2"
            ]
        );
        // A link is followed, even from a short page (a cursor says there is more).
        let (items, asked) = run_list(vec![(2, Some("/items?cursor=b")), (1, None)], 5).await;
        assert_eq!(items.expect("list").len(), 3);
        assert_eq!(asked[1], "/items?cursor=b");
        // A link past the last page allowed: an error at once, not a truncated list.
        let (result, asked) = run_list(vec![(100, Some("/p2")), (100, Some("/p3"))], 2).await;
        assert!(
            matches!(result, Err(ApiError::TooManyPages { pages: 2, per_page: 100, ref path }) if path == "/items"),
            "{result:?}"
        );
        assert_eq!(asked.len(), 2);
        // Without links, one more page by number decides.
        let (result, _) = run_list(vec![(100, None), (100, None), (1, None)], 2).await;
        assert!(matches!(result, Err(ApiError::TooManyPages { .. })));
        let (result, asked) = run_list(vec![(100, None), (100, None), (0, None)], 2).await;
        assert_eq!(result.expect("exactly full").len(), 200);
        assert_eq!(asked.len(), 3);
        // A link back to an earlier page would loop: an error.
        let (result, _) = run_list(vec![(1, Some("/b")), (1, Some("/b"))], 5).await;
        assert!(matches!(result, Err(ApiError::Other(_))), "{result:?}");
    }
}
