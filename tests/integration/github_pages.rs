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
