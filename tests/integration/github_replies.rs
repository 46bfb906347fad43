//! GitHub's replies are read as typed structs: a reply without the id we act on fails the
//! operation, naming the endpoint, and no request goes to an id we made up (`/check-runs/0`).
//! The real client against the recording GitHub stand-in.

use crate::support::mock_github::{MockGitHub, Refusal};

use std::time::Duration;

use kubeward::forge::Secret;
use kubeward::forge::github::api::{ApiError, Method};
use kubeward::forge::github::client::{
    GitHubAuth, GitHubClient, GitHubClientConfig, RetryPolicy, WriteLimits,
};
use kubeward::forge::github::publish::{Outcome, Target, conclude_unfinished_checks, start_check};
use serde_json::json;

const TOKEN: &str = "ghs_replies.tests.token.0123456789abcdef";
const BOT: &str = "kubeward[bot]";
const HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

fn client(mock: &MockGitHub) -> GitHubClient {
    GitHubClient::new(GitHubClientConfig {
        api_base_url: mock.uri(),
        auth: GitHubAuth::Token(Secret::new(TOKEN)),
        user_agent: "kubeward-tests".into(),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        limits: WriteLimits {
            min_spacing: Duration::from_millis(1),
            ..WriteLimits::default()
        },
    })
    .expect("client")
}

fn target() -> Target {
    Target {
        installation: 1,
        owner: "octo".into(),
        repo: "shop".into(),
        number: 7,
        head_sha: HEAD.into(),
        bot_login: BOT.into(),
    }
}

/// Every path the stand-in was sent, refused or not.
async fn paths_sent(mock: &MockGitHub) -> Vec<String> {
    mock.server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}

#[tokio::test]
async fn a_created_check_run_without_an_id_fails_naming_the_endpoint() {
    let mock = MockGitHub::start(BOT, TOKEN).await;
    let api = client(&mock);
    mock.refuse_once(Refusal {
        method: "POST",
        needle: "/check-runs".into(),
        status: 201,
        headers: vec![],
        body: json!({"name": "kubeward", "status": "in_progress"}),
    });
    let error = start_check(&api, &target(), "kubeward:scan", true)
        .await
        .expect_err("no id in the reply");
    assert!(matches!(error, ApiError::Reply { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("POST /repos/octo/shop/check-runs") && text.contains("`id`"),
        "{text}"
    );
    assert_eq!(
        paths_sent(&mock).await,
        ["POST /repos/octo/shop/check-runs"]
    );
    mock.assert_requests_valid();
}

#[tokio::test]
async fn a_listed_check_run_without_an_id_is_never_patched_as_run_0() {
    let mock = MockGitHub::start(BOT, TOKEN).await;
    let api = client(&mock);
    mock.refuse_once(Refusal {
        method: "GET",
        needle: "/check-runs?".into(),
        status: 200,
        headers: vec![],
        body: json!({"total_count": 1, "check_runs": [
            {"name": "kubeward", "status": "in_progress", "external_id": "kubeward:scan"}
        ]}),
    });
    let error = conclude_unfinished_checks(&api, &target(), Outcome::Cancelled, "t", "s")
        .await
        .expect_err("a run without an id");
    let text = error.to_string();
    assert!(
        text.contains(&format!("GET /repos/octo/shop/commits/{HEAD}/check-runs")),
        "{text}"
    );
    let sent = paths_sent(&mock).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        !mock
            .fake
            .requests()
            .iter()
            .any(|r| r.method == Method::Patch),
        "nothing concluded"
    );
    mock.assert_requests_valid();
}

#[tokio::test]
async fn well_formed_replies_still_carry_their_ids() {
    let mock = MockGitHub::start(BOT, TOKEN).await;
    let api = client(&mock);
    let id = start_check(&api, &target(), "kubeward:scan", false)
        .await
        .expect("a check");
    assert_ne!(id, 0);
    // Found again by its external id, not created twice.
    let again = start_check(&api, &target(), "kubeward:scan", false)
        .await
        .expect("the same check");
    assert_eq!(again, id);
    let concluded = conclude_unfinished_checks(&api, &target(), Outcome::Cancelled, "t", "s")
        .await
        .expect("concluded");
    assert_eq!(concluded, 1);
    assert!(
        paths_sent(&mock)
            .await
            .contains(&format!("PATCH /repos/octo/shop/check-runs/{id}")),
    );
    mock.assert_requests_valid();
}
