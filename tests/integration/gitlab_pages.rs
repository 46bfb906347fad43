//! Listing every page fails loudly at its page limit: a list still going on past the last page
//! allowed is an error, not a silently shortened list. The fake GitLab serves the pages.

use crate::support::gitlab_fake::FakeGitLab;
use kubeward::forge::gitlab::{ApiError, GitLabApi, PER_PAGE, list_pages};

const DISCUSSIONS: &str = "/projects/1/merge_requests/2/discussions";

fn with_discussions(n: usize) -> FakeGitLab {
    let fake = FakeGitLab::new(99, "kubeward-bot");
    fake.add_project(1, "octo/shop");
    for i in 0..n {
        fake.add_note_by(1, 2, 5, "dev", &format!("note {i}"), false);
    }
    fake
}

fn page(n: usize) -> String {
    format!("GET {DISCUSSIONS}?per_page={PER_PAGE}&page={n}")
}

#[tokio::test]
async fn a_list_longer_than_the_page_limit_is_an_error_naming_it() {
    let fake = with_discussions(2 * PER_PAGE + 1);
    let error = list_pages(&fake as &dyn GitLabApi, DISCUSSIONS, 2)
        .await
        .expect_err("three pages, two allowed");
    assert!(
        matches!(error, ApiError::TooManyPages { pages: 2, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("GET {DISCUSSIONS}: more than 2 pages of {PER_PAGE}")
    );
    assert_eq!(fake.request_log(), [page(1), page(2), page(3)]);
}

#[tokio::test]
async fn a_list_that_ends_on_the_last_page_allowed_is_whole() {
    let fake = with_discussions(2 * PER_PAGE);
    let all = list_pages(&fake as &dyn GitLabApi, DISCUSSIONS, 2)
        .await
        .expect("exactly two full pages");
    assert_eq!(all.len(), 2 * PER_PAGE);
    assert_eq!(fake.request_log(), [page(1), page(2), page(3)]);
}

#[tokio::test]
async fn a_short_page_still_ends_the_list_without_another_request() {
    let fake = with_discussions(PER_PAGE - 1);
    let all = list_pages(&fake as &dyn GitLabApi, DISCUSSIONS, 2)
        .await
        .expect("one page");
    assert_eq!(all.len(), PER_PAGE - 1);
    assert_eq!(fake.request_log(), [page(1)]);
}

/// The real client against a GitLab that links its pages (`Link: <…>; rel="next"`), always
/// one more: the list fails at its limit as soon as the last page allowed links another.
#[tokio::test]
async fn the_client_follows_link_headers_and_fails_at_the_limit() {
    use kubeward::forge::Secret;
    use kubeward::forge::gitlab::client::{GitLabClient, GitLabClientConfig};
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let notes = "/api/v4/projects/1/merge_requests/2/notes";
    let link = |cursor: &str| {
        format!(
            "<{}{notes}?per_page=100&cursor={cursor}>; rel=\"next\"",
            server.uri()
        )
    };
    let one_note = serde_json::json!([{"id": 1}]);
    Mock::given(method("GET"))
        .and(path(notes))
        .and(query_param("page", "1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Link", link("b").as_str())
                .set_body_json(&one_note),
        )
        .mount(&server)
        .await;
    for (cursor, next) in [("b", "c"), ("c", "d")] {
        Mock::given(method("GET"))
            .and(path(notes))
            .and(query_param("cursor", cursor))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Link", link(next).as_str())
                    .set_body_json(&one_note),
            )
            .mount(&server)
            .await;
    }
    kubeward::bot::serve::install_crypto();
    let client = GitLabClient::new(GitLabClientConfig::new(
        server.uri(),
        Secret::new("glpat-pages"),
    ))
    .expect("client");
    let api = &client as &dyn GitLabApi;
    let notes_path = "/projects/1/merge_requests/2/notes";
    // Short pages, but each links the next: followed (a cursor says there is more).
    let error = list_pages(api, notes_path, 3)
        .await
        .expect_err("the last page allowed links another");
    assert!(
        matches!(error, ApiError::TooManyPages { pages: 3, .. }),
        "{error:?}"
    );
    let asked: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.query().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        asked,
        [
            "per_page=100&page=1",
            "per_page=100&cursor=b",
            "per_page=100&cursor=c"
        ]
    );
}
