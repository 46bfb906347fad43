//! GitLab's replies are read as typed structs: a reply without the id we act on fails the
//! operation, naming the endpoint, and no request goes to an id we made up (`/notes/0`).

use std::time::Duration;

use kubeward::forge::Secret;
use kubeward::forge::gitlab::ApiError;
use kubeward::forge::gitlab::client::{GitLabClient, GitLabClientConfig, RetryPolicy};
use kubeward::forge::gitlab::publish::{NoteTarget, upsert_note};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "glpat-replies-tests-secret";
const BOT: &str = "kubeward-bot";
const NOTES: &str = "/api/v4/projects/1/merge_requests/2/notes";

fn client(url: &str) -> GitLabClient {
    kubeward::bot::serve::install_crypto();
    GitLabClient::new(GitLabClientConfig {
        instance_url: url.to_owned(),
        token: Secret::new(TOKEN),
        user_agent: "kubeward-tests".into(),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            post_spacing: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
    })
    .expect("client")
}

fn target() -> NoteTarget<'static> {
    NoteTarget {
        project_id: 1,
        iid: 2,
        bot_username: BOT,
    }
}

async fn sent(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}

#[tokio::test]
async fn a_created_note_without_an_id_fails_naming_the_endpoint() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(NOTES))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(NOTES))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"body": "summary"})))
        .mount(&server)
        .await;
    let error = upsert_note(&client(&server.uri()), &target(), "<!-- m -->", "summary")
        .await
        .expect_err("no id in the reply");
    assert!(matches!(error, ApiError::Reply { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("POST /projects/1/merge_requests/2/notes") && text.contains("`id`"),
        "{text}"
    );
    assert_eq!(
        sent(&server).await,
        [format!("GET {NOTES}"), format!("POST {NOTES}")]
    );
}

#[tokio::test]
async fn a_listed_note_without_an_id_is_never_edited_as_note_0() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(NOTES))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"body": "old <!-- m -->", "system": false, "author": {"username": BOT, "id": 9}}
        ])))
        .mount(&server)
        .await;
    let error = upsert_note(
        &client(&server.uri()),
        &target(),
        "<!-- m -->",
        "new <!-- m -->",
    )
    .await
    .expect_err("a note without an id");
    assert!(matches!(error, ApiError::Reply { .. }), "{error:?}");
    assert_eq!(sent(&server).await, [format!("GET {NOTES}")]);
}

#[tokio::test]
async fn a_listed_note_with_its_id_is_edited_in_place() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(NOTES))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 31, "body": "old <!-- m -->", "system": false, "author": {"username": BOT, "id": 9}}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{NOTES}/31")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 31})))
        .mount(&server)
        .await;
    let id = upsert_note(
        &client(&server.uri()),
        &target(),
        "<!-- m -->",
        "new <!-- m -->",
    )
    .await
    .expect("edited");
    assert_eq!(id, 31);
    assert_eq!(
        sent(&server).await,
        [format!("GET {NOTES}"), format!("PUT {NOTES}/31")]
    );
}

/// The fake's replies are held to GitLab's documented shapes (tests/data/gitlab): a changed or
/// mistyped field is a violation in every bot test.
#[test]
fn fake_replies_are_checked_against_gitlabs_documented_fields() {
    use crate::support::gitlab_replies::validate_reply;
    let note = serde_json::json!({"id": 1, "body": "x", "system": false,
        "author": {"id": 9, "username": "kubeward-bot"}});
    validate_reply(
        "POST",
        "/api/v4/projects/1/merge_requests/2/notes",
        201,
        &note,
    )
    .expect("a note");
    validate_reply(
        "GET",
        "/api/v4/projects/1/merge_requests/2/notes",
        200,
        &serde_json::json!([note]),
    )
    .expect("a list of notes");
    let no_author = serde_json::json!({"id": 1, "body": "x", "system": false});
    assert!(
        validate_reply(
            "POST",
            "/api/v4/projects/1/merge_requests/2/notes",
            201,
            &no_author
        )
        .is_err()
    );
    let string_level = serde_json::json!({"id": 3, "username": "dana", "access_level": "30"});
    assert!(
        validate_reply(
            "GET",
            "/api/v4/projects/1/members/all/3",
            200,
            &string_level
        )
        .is_err()
    );
    let status = serde_json::json!({"id": 5, "status": "neutral", "name": "kubeward"});
    assert!(validate_reply("POST", "/api/v4/projects/1/statuses/abc", 201, &status).is_err());
    // Errors are GitLab's business.
    validate_reply("GET", "/api/v4/projects/1", 404, &serde_json::json!({})).expect("not 2xx");
}
