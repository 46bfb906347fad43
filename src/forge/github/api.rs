//! The narrow view of GitHub's REST API the publisher needs, so the same publishing logic runs
//! against the real client, the dry-run recorder of `kubeward testdrive`, and test doubles.
//!
//! The request, reply and error types are the forge-neutral ones of [`crate::forge::http`],
//! under the names the GitHub code has always used.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

pub use crate::forge::http::{
    ApiError, Budget, MAX_PAGES, Method, PER_PAGE, WriteKind, encode_segment as segment,
};

/// A call to GitHub: [`crate::forge::http::Request`].
pub type ApiRequest = crate::forge::http::Request;
/// GitHub's 2xx answer: [`crate::forge::http::Reply`].
pub type ApiReply = crate::forge::http::Reply;

/// The path that stands for GitHub's GraphQL endpoint (the client knows where it lives).
pub const GRAPHQL_PATH: &str = "/graphql";

/// GitHub's own requests: GraphQL goes to one endpoint, names and numbers in `variables`.
impl crate::forge::http::Request {
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

/// [`list_all`] reading at most `max_pages` pages, following `Link: rel="next"` (see
/// [`crate::forge::http::list_pages`]); a longer list is [`ApiError::TooManyPages`], not a
/// truncated one.
pub async fn list_pages(
    api: &dyn GitHubApi,
    installation: u64,
    path: &str,
    key: Option<&str>,
    max_pages: usize,
) -> Result<Vec<Value>, ApiError> {
    crate::forge::http::list_pages(path, key, max_pages, |page| {
        api.call(installation, ApiRequest::get(page))
    })
    .await
}

/// `/repos/{owner}/{repo}{rest}` with owner and repository encoded as single path segments.
pub fn repo_path(owner: &str, repo: &str, rest: &str) -> String {
    format!("/repos/{}/{}{rest}", segment(owner), segment(repo))
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
