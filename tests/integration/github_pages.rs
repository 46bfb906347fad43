//! Listing every page fails loudly at its page limit: a list still going on past the last page
//! allowed is an error, not a silently shortened list. The fake GitHub serves the pages.

use kubeward::forge::github::api::{ApiError, GitHubApi, PER_PAGE, list_pages};
use kubeward::forge::github::fake::FakeGitHub;

const COMMENTS: &str = "/repos/octo/shop/pulls/7/comments";

fn with_comments(n: usize) -> FakeGitHub {
    let fake = FakeGitHub::new("kubeward[bot]");
    for i in 0..n {
        fake.add_review_comment_by("dev", None, &format!("comment {i}"));
    }
    fake
}

fn pages_asked(fake: &FakeGitHub) -> Vec<String> {
    fake.request_log()
}

fn page(n: usize) -> String {
    format!("GET {COMMENTS}?per_page={PER_PAGE}&page={n}")
}

#[tokio::test]
async fn a_list_longer_than_the_page_limit_is_an_error_naming_it() {
    let fake = with_comments(2 * PER_PAGE + 50);
    let error = list_pages(&fake as &dyn GitHubApi, 1, COMMENTS, None, 2)
        .await
        .expect_err("three pages, two allowed");
    assert!(
        matches!(error, ApiError::TooManyPages { pages: 2, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("GET {COMMENTS}: more than 2 pages of {PER_PAGE}")
    );
    assert_eq!(pages_asked(&fake), [page(1), page(2), page(3)]);
}

#[tokio::test]
async fn a_list_that_ends_on_the_last_page_allowed_is_whole() {
    let fake = with_comments(2 * PER_PAGE);
    let all = list_pages(&fake as &dyn GitHubApi, 1, COMMENTS, None, 2)
        .await
        .expect("exactly two full pages");
    assert_eq!(all.len(), 2 * PER_PAGE);
    // The third page is only asked for to learn that there is none.
    assert_eq!(pages_asked(&fake), [page(1), page(2), page(3)]);
}

#[tokio::test]
async fn a_short_page_still_ends_the_list_without_another_request() {
    let fake = with_comments(PER_PAGE + 1);
    let all = list_pages(&fake as &dyn GitHubApi, 1, COMMENTS, None, 2)
        .await
        .expect("two pages");
    assert_eq!(all.len(), PER_PAGE + 1);
    assert_eq!(pages_asked(&fake), [page(1), page(2)]);
}

/// The real client against a GitHub that links its pages: the `Link` header is followed, and
/// the list fails at its limit as soon as the last page allowed links another.
#[tokio::test]
async fn the_client_follows_link_headers_and_fails_at_the_limit() {
    use kubeward::forge::Secret;
    use kubeward::forge::github::client::{GitHubAuth, GitHubClient, GitHubClientConfig};
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let link = |page: u32| {
        format!(
            "<{}{COMMENTS}?per_page=100&page={page}>; rel=\"next\", <{}{COMMENTS}?per_page=100&page=9>; rel=\"last\"",
            server.uri(),
            server.uri()
        )
    };
    for page in 1..=3u32 {
        Mock::given(method("GET"))
            .and(path(COMMENTS))
            .and(query_param("page", page.to_string()))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Link", link(page + 1).as_str())
                    .set_body_json(serde_json::json!([{"id": page}])),
            )
            .mount(&server)
            .await;
    }
    kubeward::bot::serve::install_crypto();
    let client = GitHubClient::new(GitHubClientConfig::new(
        server.uri(),
        GitHubAuth::Token(Secret::new("ghs_pages")),
        "kubeward-tests",
    ))
    .expect("client");
    let api = &client as &dyn GitHubApi;
    let error = list_pages(api, 1, COMMENTS, None, 2)
        .await
        .expect_err("the last page allowed links another");
    assert!(
        matches!(error, ApiError::TooManyPages { pages: 2, .. }),
        "{error:?}"
    );
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        2
    );
    // Allowed enough pages, the links are followed to the end: page 4 links nothing.
    Mock::given(method("GET"))
        .and(path(COMMENTS))
        .and(query_param("page", "4"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([{"id": 4}])))
        .mount(&server)
        .await;
    let all = list_pages(api, 1, COMMENTS, None, 10)
        .await
        .expect("four linked pages");
    assert_eq!(all.len(), 4);
}
