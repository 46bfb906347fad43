//! GitLab (gitlab.com or self-managed): webhook events, a REST client, the [`Forge`](crate::forge::Forge) adapter
//! and idempotent publishing of a [`ReviewPlan`](crate::review::ReviewPlan) on a merge request.
//!
//! Everything here talks to GitLab through the narrow [`GitLabApi`] trait, so the same
//! publishing code runs against the real [`client::GitLabClient`] and the tests' fake GitLab. Paths are always built by [`project_path`] from
//! numeric ids: nothing a webhook payload says ever becomes part of a URL.

pub mod adapter;
pub mod client;
pub mod events;
pub mod publish;
pub mod reply;

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

/// GitLab's REST API lives below this path of the instance URL.
pub const API_PREFIX: &str = "/api/v4";

/// The request, reply and error types are the forge-neutral ones of [`crate::forge::http`]:
/// every POST creates something ([`Request::post`]), and once it may have reached GitLab it is
/// never re-sent blindly, see [`ApiError::Unconfirmed`].
pub use crate::forge::http::{
    ApiError, MAX_PAGES, Method, PER_PAGE, Reply, Request, WriteKind, encode_segment,
};

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

/// Every page of a list endpoint, [`PER_PAGE`] at a time; at most [`MAX_PAGES`] pages.
pub async fn list_all(api: &dyn GitLabApi, path: &str) -> Result<Vec<Value>, ApiError> {
    list_pages(api, path, MAX_PAGES).await
}

/// [`list_all`] reading at most `max_pages` pages, following GitLab's `Link: rel="next"`
/// (see [`crate::forge::http::list_pages`]); a longer list is [`ApiError::TooManyPages`],
/// not a truncated one.
pub async fn list_pages(
    api: &dyn GitLabApi,
    path: &str,
    max_pages: usize,
) -> Result<Vec<Value>, ApiError> {
    crate::forge::http::list_pages(path, None, max_pages, |page| api.call(Request::get(page))).await
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
