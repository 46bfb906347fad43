//! What a delivery's headers and ids may be, through the real router and listener on
//! loopback: delivery ids bounded and de-duplicated on their whole value, ids that would wrap
//! when stored refused with a 400 that says so, and signatures of exactly 64 hex digits.

use std::time::Duration;

use kubeward::forge::Secret;
use kubeward::queue::Queue;
use kubeward::server::delivery::delivery_key;
use kubeward::server::github::github_signature;
use kubeward::server::gitlab::{DEFAULT_TIMESTAMP_TOLERANCE, GitLabHooks, HookBinding, HookScope};
use kubeward::server::{AppState, GitHubHooks, listen, router_with_gitlab};
use serde_json::{Value, json};
use tokio::sync::watch;

const SECRET: &str = "webhook-ids-secret";
const GITLAB_TOKEN: &str = "webhook-ids-gitlab-token";
const PROJECT: u64 = 42;

struct Server {
    url: String,
    queue: Queue,
    _stop: watch::Sender<bool>,
}

/// Both forges' routes on the real listener, with an in-memory queue and no workers: a `202`
/// means the delivery was recorded and its job queued.
async fn start() -> Server {
    let queue = Queue::connect("sqlite::memory:").await.expect("queue");
    let state = AppState {
        queue: queue.clone(),
        github: Some(GitHubHooks {
            secrets: vec![Secret::new(SECRET)],
            app_id: None,
            bot_login: "kubeward[bot]".into(),
        }),
        metrics: None,
    };
    let gitlab = GitLabHooks {
        bindings: vec![HookBinding {
            scope: HookScope::Project(PROJECT),
            token: Some(Secret::new(GITLAB_TOKEN)),
            signing_key: None,
        }],
        bot_username: "kubeward-bot".into(),
        timestamp_tolerance: DEFAULT_TIMESTAMP_TOLERANCE,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, mut stopped) = watch::channel(false);
    let app = router_with_gitlab(state, Some(gitlab), 1 << 20, Duration::from_secs(5));
    tokio::spawn(listen::serve(
        listener,
        app,
        Duration::from_secs(5),
        Duration::from_secs(5),
        async move {
            let _ = stopped.changed().await;
        },
    ));
    Server {
        url,
        queue,
        _stop: stop,
    }
}

/// A `pull_request.opened` delivery for pull request `number` of repository 4242.
fn pull_request(number: u64) -> Value {
    let sha = "1111111111111111111111111111111111111111";
    json!({
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number, "state": "open", "draft": false,
            "head": {"sha": sha, "ref": "feature", "repo": {"id": 4242}},
            "base": {"sha": sha, "ref": "main", "repo": {"id": 4242}},
        },
        "repository": {"id": 4242, "name": "shop", "full_name": "octo/shop", "private": false,
                       "owner": {"login": "octo", "id": 1, "type": "Organization"}},
        "installation": {"id": 77},
        "sender": {"login": "dev", "id": 2, "type": "User"},
    })
}

/// A `/kubeward rescan` comment on pull request 7.
fn command_comment() -> Value {
    json!({
        "action": "created",
        "issue": {"number": 7, "pull_request": {"url": "https://api.github.com/x"}},
        "comment": {"id": 99, "body": "/kubeward rescan",
                    "user": {"login": "dev", "id": 2, "type": "User"}},
        "repository": {"id": 4242, "name": "shop", "full_name": "octo/shop", "private": false,
                       "owner": {"login": "octo", "id": 1, "type": "Organization"}},
        "installation": {"id": 77},
        "sender": {"login": "dev", "id": 2, "type": "User"},
    })
}

fn merge_request(iid: u64) -> Value {
    json!({
        "object_kind": "merge_request",
        "user": {"id": 5, "username": "dev"},
        "project": {"id": PROJECT, "path_with_namespace": "platform/shop"},
        "object_attributes": {"iid": iid, "action": "open",
                              "last_commit": {"id": "2222222222222222222222222222222222222222"}},
    })
}

async fn github_raw(
    server: &Server,
    event: &str,
    delivery: &str,
    body: Vec<u8>,
    signature: &str,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/github", server.url))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn github(server: &Server, event: &str, delivery: &str, payload: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(payload).expect("json");
    let signature = github_signature(SECRET, &body);
    github_raw(server, event, delivery, body, &signature).await
}

async fn gitlab(server: &Server, key: &str, payload: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/gitlab", server.url))
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Merge Request Hook")
        .header("x-gitlab-token", GITLAB_TOKEN)
        .header("idempotency-key", key)
        .body(serde_json::to_vec(payload).expect("json"))
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The delivery id the first job of a 202 carries into the worker's log lines.
async fn logged_delivery(server: &Server, answer: &Value) -> String {
    let id = answer["jobs"][0].as_i64().expect("a job id");
    let job = server.queue.get(id).await.expect("read").expect("the job");
    job.payload["delivery"]
        .as_str()
        .expect("delivery in the payload")
        .to_owned()
}

#[tokio::test]
async fn github_delivery_ids_are_bounded_and_told_apart_by_their_whole_value() {
    let server = start().await;
    // A real GUID is stored and logged as sent.
    let guid = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let (status, answer) = github(&server, "pull_request", guid, &pull_request(1)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(logged_delivery(&server, &answer).await, guid);
    assert!(
        server
            .queue
            .delivery_seen("github", guid)
            .await
            .expect("read")
    );

    // Two long ids that differ only in their last character are two deliveries, each known
    // (and logged) by a bounded hash of all of it.
    let long = |last: char| format!("{}{last}", "d".repeat(199));
    let (status, first) = github(&server, "pull_request", &long('a'), &pull_request(2)).await;
    assert_eq!(status, 202, "{first}");
    let (status, second) = github(&server, "pull_request", &long('b'), &pull_request(3)).await;
    assert_eq!(
        status, 202,
        "the second is not taken for a redelivery: {second}"
    );
    let logged = logged_delivery(&server, &first).await;
    assert_eq!(logged, delivery_key(&long('a')));
    assert!(
        logged.starts_with("sha256:") && logged.len() == 71,
        "{logged}"
    );
    assert_ne!(logged, logged_delivery(&server, &second).await);
    let (status, again) = github(&server, "pull_request", &long('a'), &pull_request(2)).await;
    assert_eq!((status, &again["status"]), (200, &json!("duplicate")));

    // An absurd id is refused, and nothing of it is recorded.
    let huge = "h".repeat(200_000);
    let (status, answer) = github(&server, "pull_request", &huge, &pull_request(4)).await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("X-GitHub-Delivery") && error.contains("256"),
        "{error}"
    );
    assert!(
        !server
            .queue
            .delivery_seen("github", &huge)
            .await
            .expect("read")
    );
    assert!(
        !server
            .queue
            .delivery_seen("github", &delivery_key(&huge))
            .await
            .expect("read")
    );
    let stats = server
        .queue
        .stats(kubeward::queue::now_ms())
        .await
        .expect("stats");
    assert_eq!(
        stats.queued, 3,
        "only the three accepted deliveries queued work"
    );
}

#[tokio::test]
async fn gitlab_keys_that_differ_after_200_characters_are_two_deliveries() {
    let server = start().await;
    let key = |last: char| format!("{}{last}", "k".repeat(240));
    let (status, first) = gitlab(&server, &key('1'), &merge_request(1)).await;
    assert_eq!(status, 202, "{first}");
    // Cut to 200 characters, this one used to be dropped as a duplicate of the first.
    let (status, second) = gitlab(&server, &key('2'), &merge_request(2)).await;
    assert_eq!(status, 202, "{second}");
    assert_eq!(
        logged_delivery(&server, &second).await,
        delivery_key(&key('2'))
    );
    let (status, again) = gitlab(&server, &key('2'), &merge_request(2)).await;
    assert_eq!((status, &again["status"]), (200, &json!("duplicate")));
    let (status, refused) = gitlab(&server, &"k".repeat(300), &merge_request(3)).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("idempotency-key")),
        "{refused}"
    );
}

#[tokio::test]
async fn ids_that_would_wrap_when_stored_are_refused_at_intake() {
    let server = start().await;
    let max = json!(u64::MAX);
    let github_cases: [(&str, Value, &str); 6] = [
        ("pull_request", pull_request(1), "/repository/id"),
        ("pull_request", pull_request(1), "/installation/id"),
        ("pull_request", pull_request(1), "/number"),
        (
            "pull_request",
            pull_request(1),
            "/pull_request/head/repo/id",
        ),
        ("issue_comment", command_comment(), "/comment/id"),
        ("issue_comment", command_comment(), "/issue/number"),
    ];
    for (i, (event, mut payload, pointer)) in github_cases.into_iter().enumerate() {
        *payload.pointer_mut(pointer).expect(pointer) = max.clone();
        let delivery = format!("wrap-{i}");
        let (status, answer) = github(&server, event, &delivery, &payload).await;
        assert_eq!(status, 400, "{pointer}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("9223372036854775807")),
            "{pointer}: the error names the limit: {answer}"
        );
        assert!(
            !server
                .queue
                .delivery_seen("github", &delivery)
                .await
                .expect("read")
        );
    }
    // The largest id that fits is taken as it is.
    let mut payload = pull_request(1);
    payload["repository"]["id"] = json!(i64::MAX);
    let (status, answer) = github(&server, "pull_request", "fits", &payload).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["jobs"][0].as_i64().expect("job id");
    let job = server.queue.get(id).await.expect("read").expect("job");
    assert_eq!(job.repo_id, i64::MAX);

    for (i, pointer) in ["/project/id", "/object_attributes/iid"]
        .into_iter()
        .enumerate()
    {
        let mut payload = merge_request(1);
        *payload.pointer_mut(pointer).expect(pointer) = max.clone();
        let key = format!("gitlab-wrap-{i}");
        let (status, answer) = gitlab(&server, &key, &payload).await;
        assert_eq!(status, 400, "{pointer}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("9223372036854775807")),
            "{pointer}: {answer}"
        );
        assert!(
            !server
                .queue
                .delivery_seen("gitlab", &key)
                .await
                .expect("read")
        );
    }
}

#[tokio::test]
async fn a_signature_is_exactly_64_hex_digits() {
    let server = start().await;
    // A body whose HMAC has a byte below 0x10 at an even offset: "0c" and "+c" are the same
    // number to a lenient parser.
    let (body, digest, at) = (0..)
        .find_map(|nonce| {
            let mut payload = pull_request(5);
            payload["nonce"] = json!(nonce);
            let body = serde_json::to_vec(&payload).expect("json");
            let digest = github_signature(SECRET, &body)["sha256=".len()..].to_owned();
            let at = (0..32).map(|i| i * 2).find(|&i| &digest[i..=i] == "0")?;
            Some((body, digest, at))
        })
        .expect("some nonce");
    let signed = format!("sha256={}+{}", &digest[..at], &digest[at + 1..]);
    let (status, _) = github_raw(&server, "pull_request", "sign-1", body.clone(), &signed).await;
    assert_eq!(status, 401, "a sign is not a hex digit");
    let upper = format!("sha256={}", digest.to_uppercase());
    let (status, answer) = github_raw(&server, "pull_request", "sign-2", body, &upper).await;
    assert_eq!(status, 202, "either case is hex: {answer}");
}
