//! Operating the bot: `kubeward testdrive` end to end, and asking GitHub to redeliver what an
//! outage made us miss.

use std::process::Command;
use std::time::Duration;

use kubeward::bot::serve::redeliver_failed;
use kubeward::forge::Secret;
use kubeward::forge::github::client::{GitHubAuth, GitHubClient, GitHubClientConfig};
use kubeward::queue::Queue;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[test]
fn testdrive_reviews_a_pull_request_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("temp");
    let out = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .arg("testdrive")
        .env("TMPDIR", tmp.path())
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("202 Accepted"), "{stdout}");
    assert!(stdout.contains("Check run \"kubeward\""), "{stdout}");
    assert!(
        stdout.contains(": failure"),
        "the example PR makes the check fail: {stdout}"
    );
    assert!(
        stdout.contains("runAsPrivileged") && stdout.contains("```suggestion"),
        "{stdout}"
    );
    assert!(stdout.contains("Owned by"), "{stdout}");
    assert!(
        !stdout.contains("not-a-real-token"),
        "a secret value leaked: {stdout}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("readable")
        .flatten()
        .collect();
    assert!(left.is_empty(), "testdrive left files behind: {left:?}");
}

fn app_key() -> Secret {
    let dir = tempfile::tempdir().expect("temp");
    let key = dir.path().join("app.pem");
    let status = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl runs");
    assert!(status.status.success(), "{status:?}");
    Secret::new(std::fs::read_to_string(key).expect("key"))
}

#[tokio::test]
async fn failed_deliveries_we_never_processed_are_redelivered_a_few_times_at_most() {
    kubeward::bot::serve::install_crypto();
    let github = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1, "guid": "missed", "status_code": 502, "event": "pull_request"},
            {"id": 2, "guid": "handled", "status_code": 504, "event": "pull_request"},
            {"id": 3, "guid": "fine", "status_code": 202, "event": "pull_request"},
            {"id": 5, "guid": "retried-ok", "status_code": 500, "event": "pull_request"},
            {"id": 4, "guid": "retried-ok", "status_code": 202, "event": "pull_request"},
            // Failed first and on each of three redeliveries asked for already: given up.
            {"id": 6, "guid": "hopeless", "status_code": 401, "event": "pull_request", "redelivery": false},
            {"id": 7, "guid": "hopeless", "status_code": 401, "event": "pull_request", "redelivery": true},
            {"id": 8, "guid": "hopeless", "status_code": 401, "event": "pull_request", "redelivery": true},
            {"id": 9, "guid": "hopeless", "status_code": 401, "event": "pull_request", "redelivery": true},
            // Failed once and once again on redelivery: asked for once more.
            {"id": 10, "guid": "flaky", "status_code": 502, "event": "pull_request", "redelivery": false},
            {"id": 11, "guid": "flaky", "status_code": 502, "event": "pull_request", "redelivery": true},
        ])))
        .mount(&github)
        .await;
    for id in [1, 10] {
        Mock::given(method("POST"))
            .and(path(format!("/app/hook/deliveries/{id}/attempts")))
            .respond_with(ResponseTemplate::new(202).set_body_json(json!({})))
            .expect(1)
            .mount(&github)
            .await;
    }
    let queue = Queue::connect("sqlite::memory:").await.expect("queue");
    // "handled" reached us before (the failure was GitHub's timeout, not our loss).
    queue
        .record_delivery("github", "handled")
        .await
        .expect("record");
    let client = GitHubClient::new(GitHubClientConfig::new(
        github.uri(),
        GitHubAuth::App {
            app_id: "12345".into(),
            private_key_pem: app_key(),
        },
        "kubeward-tests",
    ))
    .expect("client");
    let asked = tokio::time::timeout(Duration::from_secs(30), redeliver_failed(&client, &queue))
        .await
        .expect("in time")
        .expect("listed");
    assert_eq!(asked, 2);
    let posts: Vec<_> = github
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(
        posts,
        [
            "/app/hook/deliveries/1/attempts",
            "/app/hook/deliveries/10/attempts"
        ]
    );
}
