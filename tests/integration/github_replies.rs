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

/// GitHub's own example replies, and the fake's, for every endpoint whose reply we read as a
/// struct: both read without error, so the structs ask for nothing GitHub does not send.
#[tokio::test]
async fn githubs_example_replies_and_the_fakes_read_as_our_structs() {
    use kubeward::forge::github::fake::FakeGitHub;
    use kubeward::forge::github::reply::{
        ChangedFile, CheckRun, CollaboratorPermission, Comment, InstallationToken, parse,
    };
    use serde_json::Value;

    fn read(what: &str, kind: &str, value: &Value) {
        let one = |v: &Value| -> Result<(), String> {
            let result = match kind {
                "check run" => parse::<CheckRun>(what, v).map(drop),
                "comment" => parse::<Comment>(what, v).map(drop),
                "file" => parse::<ChangedFile>(what, v).map(drop),
                "permission" => parse::<CollaboratorPermission>(what, v).map(drop),
                "token" => parse::<InstallationToken>(what, v).map(drop),
                _ => unreachable!("{kind}"),
            };
            result.map_err(|e| e.to_string())
        };
        // Lists: each item; the check-run list holds its runs under `check_runs`.
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            v => match v.get("check_runs").and_then(Value::as_array) {
                Some(runs) => runs.iter().collect(),
                None => vec![v],
            },
        };
        for item in items {
            if let Err(e) = one(item) {
                panic!("{what}: {e}\n{item:#}");
            }
        }
    }

    let p = "/repos/octo/shop";
    let endpoints = [
        ("POST", format!("{p}/check-runs"), "check run"),
        ("GET", format!("{p}/check-runs/1"), "check run"),
        ("GET", format!("{p}/commits/{HEAD}/check-runs"), "check run"),
        ("GET", format!("{p}/pulls/7/comments"), "comment"),
        ("POST", format!("{p}/pulls/7/comments"), "comment"),
        ("GET", format!("{p}/issues/7/comments"), "comment"),
        ("POST", format!("{p}/issues/7/comments"), "comment"),
        ("GET", format!("{p}/pulls/7/files"), "file"),
        (
            "GET",
            format!("{p}/collaborators/dev/permission"),
            "permission",
        ),
        (
            "POST",
            "/app/installations/1/access_tokens".to_owned(),
            "token",
        ),
    ];
    for (method, path, kind) in &endpoints {
        let examples = crate::support::github_openapi::reply_examples(method, path)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(!examples.is_empty(), "{method} {path}: no example reply");
        for (name, example) in examples {
            read(
                &format!("{method} {path} (GitHub's example {name})"),
                kind,
                &example,
            );
        }
    }

    // The fake's replies, from a check run and comments it holds.
    let fake = FakeGitHub::new(BOT);
    fake.set_permission("dev", "write");
    fake.add_review_comment_by("dev", None, "a comment");
    let id = start_check(&fake, &target(), "kubeward:scan", true)
        .await
        .expect("a check");
    let _ = fake.handle(
        kubeward::forge::github::api::Method::Post,
        &format!("{p}/issues/7/comments"),
        Some(&json!({"body": "summary"})),
    );
    for (method, path, kind) in [
        (Method::Get, format!("{p}/check-runs/{id}"), "check run"),
        (
            Method::Get,
            format!("{p}/commits/{HEAD}/check-runs?per_page=100&page=1"),
            "check run",
        ),
        (
            Method::Get,
            format!("{p}/pulls/7/comments?per_page=100&page=1"),
            "comment",
        ),
        (
            Method::Get,
            format!("{p}/issues/7/comments?per_page=100&page=1"),
            "comment",
        ),
        (
            Method::Get,
            format!("{p}/collaborators/dev/permission"),
            "permission",
        ),
    ] {
        let (status, reply) = fake.handle(method, &path, None);
        assert!((200..300).contains(&status), "{path}: {status} {reply}");
        read(&format!("the fake's {path}"), kind, &reply);
    }
}
