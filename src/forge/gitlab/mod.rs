//! GitLab (gitlab.com or self-managed): webhook events, a REST client, an in-memory fake, and
//! idempotent publishing of a [`ReviewPlan`](crate::review::ReviewPlan) on a merge request.
//!
//! Everything here talks to GitLab through the narrow [`GitLabApi`] trait, so the same
//! publishing code runs against the real [`client::GitLabClient`], the in-memory
//! [`fake::FakeGitLab`] and test doubles. Paths are always built by [`project_path`] from
//! numeric ids: nothing a webhook payload says ever becomes part of a URL.

pub mod client;
pub mod events;
pub mod publish;
pub mod reply;

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

/// GitLab's REST API lives below this path of the instance URL.
pub const API_PREFIX: &str = "/api/v4";
/// GitLab's largest page size.
pub const PER_PAGE: usize = 100;
/// Pages [`list_all`] reads (10,000 items) before failing with [`ApiError::TooManyPages`].
pub const MAX_PAGES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// One API call: a method, a path below [`API_PREFIX`] (query allowed), an optional JSON body.
///
/// Every POST is treated as creating something (a note, a discussion, a status): once it may
/// have reached GitLab it is never re-sent blindly, see [`ApiError::Unconfirmed`].
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Request {
        Request {
            method: Method::Get,
            path: path.into(),
            body: None,
        }
    }

    pub fn post(path: impl Into<String>, body: Value) -> Request {
        Request {
            method: Method::Post,
            path: path.into(),
            body: Some(body),
        }
    }

    pub fn put(path: impl Into<String>, body: Option<Value>) -> Request {
        Request {
            method: Method::Put,
            path: path.into(),
            body,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// Why a call failed. Messages name the method and the path without its query, never a token.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A POST may or may not have taken effect (5xx or a network error after sending): look
    /// before sending it again.
    #[error("{method} {path}: the outcome is unknown ({detail})")]
    Unconfirmed {
        method: &'static str,
        path: String,
        detail: String,
    },
    /// GitLab answered with an error status.
    #[error("{method} {path}: HTTP {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    /// Still rate limited after waiting as long as allowed; the queue retries the job later.
    #[error("{method} {path}: rate limited, gave up after waiting {waited_secs}s")]
    RateLimited {
        method: &'static str,
        path: String,
        waited_secs: u64,
    },
    /// No answer after the retries (connection refused, timeouts).
    #[error("{method} {path}: {detail}")]
    Network {
        method: &'static str,
        path: String,
        detail: String,
    },
    /// A 2xx reply without what we read from it (an id): GitLab changed its shape.
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
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// GitLab's error message, when it sent one.
    pub fn message(&self) -> Option<&str> {
        match self {
            ApiError::Status { message, .. } => Some(message),
            _ => None,
        }
    }
}

pub type ApiFuture<'a> = Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send + 'a>>;

/// One call to GitLab with the bot's token. Implementations handle authentication, retries
/// of safe requests and rate limits; any non-2xx answer is an [`ApiError::Status`].
pub trait GitLabApi: Send + Sync {
    fn call(&self, request: Request) -> ApiFuture<'_>;
}

/// `/projects/{id}{rest}`: projects are addressed by numeric id only, never by a path a
/// payload could choose.
pub fn project_path(project_id: u64, rest: &str) -> String {
    format!("/projects/{project_id}{rest}")
}

/// `/projects/{id}/merge_requests/{iid}{rest}`.
pub fn merge_request_path(project_id: u64, iid: u64, rest: &str) -> String {
    project_path(project_id, &format!("/merge_requests/{iid}{rest}"))
}

/// Every page of a list endpoint, [`PER_PAGE`] at a time, until a short page; at most
/// [`MAX_PAGES`] pages.
pub async fn list_all(api: &dyn GitLabApi, path: &str) -> Result<Vec<Value>, ApiError> {
    list_pages(api, path, MAX_PAGES).await
}

/// [`list_all`] reading at most `max_pages` pages. A short page ends the list; when the last
/// page allowed is full, one more page is read, and if it holds anything the list is longer
/// than allowed: [`ApiError::TooManyPages`], not a truncated list. (A full page announces the
/// next: [`Reply`] carries no `x-next-page` header to ask.)
pub async fn list_pages(
    api: &dyn GitLabApi,
    path: &str,
    max_pages: usize,
) -> Result<Vec<Value>, ApiError> {
    let mut all = Vec::new();
    let separator = if path.contains('?') { '&' } else { '?' };
    for page in 1..=max_pages + 1 {
        let reply = api
            .call(Request::get(format!(
                "{path}{separator}per_page={PER_PAGE}&page={page}"
            )))
            .await?;
        let items = reply.body.as_array().cloned().unwrap_or_default();
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

/// A string field of a JSON value, following `path`.
pub(crate) fn str_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(value, |v, k| v.get(k))?.as_str()
}

/// An unsigned integer field of a JSON value, following `path`.
pub(crate) fn u64_at(value: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(value, |v, k| v.get(k))?.as_u64()
}

/// Whether the project path `path` lies in the group `group` (or a subgroup of it), by whole
/// path segments: `platform-evil/x` is not in `platform`. GitLab paths are case-insensitive.
pub fn in_group(path: &str, group: &str) -> bool {
    let group = group.trim_matches('/');
    !group.is_empty()
        && path.len() > group.len()
        && path.as_bytes()[group.len()] == b'/'
        && path.as_bytes()[..group.len()].eq_ignore_ascii_case(group.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_from_ids() {
        assert_eq!(
            project_path(42, "/statuses/abc"),
            "/projects/42/statuses/abc"
        );
        assert_eq!(
            merge_request_path(42, 7, "/discussions"),
            "/projects/42/merge_requests/7/discussions"
        );
    }

    #[test]
    fn errors_name_the_request_not_the_query() {
        let e = ApiError::Status {
            method: "GET",
            path: "/projects/1".into(),
            status: 404,
            message: "404 Project Not Found".into(),
        };
        assert_eq!(
            e.to_string(),
            "GET /projects/1: HTTP 404: 404 Project Not Found"
        );
        assert_eq!(e.status(), Some(404));
    }
}
