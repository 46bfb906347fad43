//! The narrow view of GitHub's REST API the publisher needs, so the same publishing logic runs
//! against the real client, the dry-run recorder of `kubeward testdrive`, and test doubles.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

pub use super::client::{Budget, WriteKind};

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    pub method: Method,
    /// Path and query below the API base URL, built from ids only.
    pub path: String,
    pub body: Option<Value>,
    /// How it may be retried and paced: a read (a GET, a GraphQL query) is retried freely; a
    /// POST that creates something (a comment, a review, a check run) is never re-sent blindly.
    pub kind: WriteKind,
    /// Which part of the installation's content-write budget it draws on.
    pub budget: Budget,
}

/// The path that stands for GitHub's GraphQL endpoint (the client knows where it lives).
pub const GRAPHQL_PATH: &str = "/graphql";

impl ApiRequest {
    pub fn get(path: impl Into<String>) -> ApiRequest {
        ApiRequest {
            method: Method::Get,
            path: path.into(),
            body: None,
            kind: WriteKind::Read,
            budget: Budget::Shared,
        }
    }

    pub fn post(path: impl Into<String>, body: Value) -> ApiRequest {
        ApiRequest {
            method: Method::Post,
            path: path.into(),
            body: Some(body),
            kind: WriteKind::CreatesContent,
            budget: Budget::Shared,
        }
    }

    pub fn patch(path: impl Into<String>, body: Value) -> ApiRequest {
        ApiRequest {
            method: Method::Patch,
            path: path.into(),
            body: Some(body),
            kind: WriteKind::Idempotent,
            budget: Budget::Shared,
        }
    }

    /// A PATCH that adds to what is there (check-run annotations append on every update): like
    /// a POST, never re-sent blindly; a lost answer is [`ApiError::Unconfirmed`].
    pub fn patch_appending(path: impl Into<String>, body: Value) -> ApiRequest {
        ApiRequest {
            kind: WriteKind::CreatesContent,
            ..ApiRequest::patch(path, body)
        }
    }

    /// Draws on the part of the budget kept for opening and concluding checks, so a pull
    /// request gets its check however much other reviews of the installation wrote.
    pub fn reserved(self) -> ApiRequest {
        ApiRequest {
            budget: Budget::Reserved,
            ..self
        }
    }

    /// A GraphQL query; names and numbers go in `variables`, never into the query text.
    pub fn graphql_query(query: &str, variables: Value) -> ApiRequest {
        ApiRequest {
            kind: WriteKind::Read,
            ..ApiRequest::graphql_mutation(query, variables)
        }
    }

    /// A GraphQL mutation that is safe to repeat (resolving a resolved thread changes nothing).
    pub fn graphql_mutation(mutation: &str, variables: Value) -> ApiRequest {
        ApiRequest {
            method: Method::Post,
            path: GRAPHQL_PATH.to_owned(),
            body: Some(serde_json::json!({"query": mutation, "variables": variables})),
            kind: WriteKind::Idempotent,
            budget: Budget::Shared,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiReply {
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request may or may not have taken effect (5xx or network error on a write).
    #[error("{0}: the outcome is unknown")]
    Unconfirmed(String),
    #[error("{method} {path}: HTTP {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    /// Not sent (or refused by GitHub) for a rate limit: GitHub's, or our pacing of the
    /// installation's writes. Waiting `retry_after` would be longer than a request may wait,
    /// so the job is deferred until then rather than failed.
    #[error("{message}")]
    RateLimited {
        retry_after: Duration,
        message: String,
    },
    /// A 2xx reply without what we read from it (an id, a token): GitHub changed its shape.
    #[error(transparent)]
    Reply(#[from] crate::forge::reply::UnexpectedReply),
    /// A list longer than we read: a truncated list would pass for the whole one.
    #[error("GET {path}: more than {pages} pages of {per_page}")]
    TooManyPages {
        path: String,
        pages: usize,
        per_page: usize,
    },
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

    /// How long to wait before trying again, for a rate limit.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

pub type ApiFuture<'a> = Pin<Box<dyn Future<Output = Result<ApiReply, ApiError>> + Send + 'a>>;

/// One call to GitHub as an installation. Implementations handle auth, retries of safe
/// requests and rate limits; a non-2xx answer is an [`ApiError::Status`].
pub trait GitHubApi: Send + Sync {
    fn call(&self, installation: u64, request: ApiRequest) -> ApiFuture<'_>;
}

/// Sends a GraphQL request and returns its `data`. GraphQL reports errors in a 200 answer:
/// any entry in `errors` fails the call, so partial data is never taken for the whole.
pub async fn graphql(
    api: &dyn GitHubApi,
    installation: u64,
    request: ApiRequest,
) -> Result<Value, ApiError> {
    let reply = api.call(installation, request).await?;
    if let Some(errors) = reply.body.get("errors").and_then(Value::as_array)
        && !errors.is_empty()
    {
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|e| e.get("message").and_then(Value::as_str))
            .take(3)
            .collect();
        return Err(ApiError::Other(format!("GraphQL: {}", messages.join("; "))));
    }
    reply
        .body
        .get("data")
        .cloned()
        .filter(|d| !d.is_null())
        .ok_or_else(|| ApiError::Other("GraphQL: the answer has no data".into()))
}

/// Pages [`list_all`] reads (10,000 items) before failing with [`ApiError::TooManyPages`].
pub const MAX_PAGES: usize = 100;
/// Items per page asked of [`list_all`]: GitHub's largest page.
pub const PER_PAGE: usize = 100;

/// Every page of a list endpoint (`per_page=100`), for endpoints returning an array or an
/// object holding one under `key`; at most [`MAX_PAGES`] pages.
pub async fn list_all(
    api: &dyn GitHubApi,
    installation: u64,
    path: &str,
    key: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    list_pages(api, installation, path, key, MAX_PAGES).await
}

/// [`list_all`] reading at most `max_pages` pages. A short page ends the list; when the last
/// page allowed is full, one more page is read, and if it holds anything the list is longer
/// than allowed: [`ApiError::TooManyPages`], not a truncated list.
pub async fn list_pages(
    api: &dyn GitHubApi,
    installation: u64,
    path: &str,
    key: Option<&str>,
    max_pages: usize,
) -> Result<Vec<Value>, ApiError> {
    let mut all = Vec::new();
    let separator = if path.contains('?') { '&' } else { '?' };
    for page in 1..=max_pages + 1 {
        let reply = api
            .call(
                installation,
                ApiRequest::get(format!("{path}{separator}per_page={PER_PAGE}&page={page}")),
            )
            .await?;
        let items = match key {
            Some(k) => reply.body.get(k).and_then(Value::as_array).cloned(),
            None => reply.body.as_array().cloned(),
        }
        .unwrap_or_default();
        if page > max_pages {
            if items.is_empty() {
                break;
            }
            return Err(ApiError::TooManyPages {
                path: path.split('?').next().unwrap_or("").to_owned(),
                pages: max_pages,
                per_page: PER_PAGE,
            });
        }
        let done = items.len() < PER_PAGE;
        all.extend(items);
        if done {
            break;
        }
    }
    Ok(all)
}

/// `/repos/{owner}/{repo}{rest}` with owner and repository encoded as single path segments.
pub fn repo_path(owner: &str, repo: &str, rest: &str) -> String {
    format!("/repos/{}/{}{rest}", segment(owner), segment(repo))
}

/// A path segment: anything outside GitHub's name alphabet is percent-encoded, so a name can
/// never add segments or a query.
pub fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_')
            || (b == b'.' && text != "." && text != "..")
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_their_segment() {
        assert_eq!(
            repo_path("octo", "shop", "/pulls/1"),
            "/repos/octo/shop/pulls/1"
        );
        assert_eq!(segment("../x"), "..%2Fx");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a?b#c"), "a%3Fb%23c");
    }
}
