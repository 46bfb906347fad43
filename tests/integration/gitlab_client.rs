//! The GitLab client against a mock server: the token header, retries of reads and updates,
//! no blind re-POSTs, and rate-limit waits.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kubeward::forge::Secret;
use kubeward::forge::gitlab::client::{GitLabClient, GitLabClientConfig, RetryPolicy};
use kubeward::forge::gitlab::{ApiError, GitLabApi, Request};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "glpat-client-tests-secret";

fn client(url: &str, max_rate_limit_wait: Duration) -> GitLabClient {
    spaced_client(url, max_rate_limit_wait, Duration::from_millis(1))
}

fn spaced_client(url: &str, max_rate_limit_wait: Duration, post_spacing: Duration) -> GitLabClient {
    kubeward::bot::serve::install_crypto();
    GitLabClient::new(GitLabClientConfig {
        instance_url: url.to_owned(),
        token: Secret::new(TOKEN),
        user_agent: "kubeward-tests".into(),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            rate_limit_default_wait: Duration::from_millis(10),
            max_rate_limit_wait,
            post_spacing,
            ..RetryPolicy::default()
        },
    })
    .expect("client")
}

async fn received(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

#[tokio::test]
async fn reads_and_updates_are_retried_with_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/1"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/1"))
        .and(header("PRIVATE-TOKEN", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v4/projects/1/merge_requests/2/discussions/abc"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v4/projects/1/merge_requests/2/discussions/abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "abc"})))
        .mount(&server)
        .await;
    let client = client(&server.uri(), Duration::from_secs(5));
    let reply = client
        .call(Request::get("/projects/1"))
        .await
        .expect("retried until it worked");
    assert_eq!(reply.body["id"], 1);
    client
        .call(Request::put(
            "/projects/1/merge_requests/2/discussions/abc?resolved=true",
            None,
        ))
        .await
        .expect("PUT is idempotent: retried");
    assert_eq!(received(&server).await, 5);
    assert_eq!(client.retries(), 3);
    let requests = server.received_requests().await.unwrap_or_default();
    assert!(requests.iter().all(|r| {
        r.headers.get("private-token").and_then(|v| v.to_str().ok()) == Some(TOKEN)
            && r.headers.get("authorization").is_none()
    }));
}

#[tokio::test]
async fn a_post_that_may_have_landed_is_not_sent_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"message": "500 Internal Server Error"})),
        )
        .mount(&server)
        .await;
    let client = client(&server.uri(), Duration::from_secs(5));
    let error = client
        .call(Request::post(
            "/projects/1/merge_requests/2/notes?private_token=should-not-show",
            json!({"body": "x"}),
        ))
        .await
        .expect_err("a 500");
    assert!(matches!(error, ApiError::Unconfirmed { .. }), "{error:?}");
    assert_eq!(received(&server).await, 1, "never re-sent blindly");
    let text = error.to_string();
    assert!(
        text.contains("POST /projects/1/merge_requests/2/notes"),
        "{text}"
    );
    assert!(
        !text.contains("should-not-show") && !text.contains(TOKEN),
        "{text}"
    );
}

#[tokio::test]
async fn a_post_that_never_left_is_retried_and_then_reported_as_a_network_error() {
    // Nothing listens on this port: connect errors, so nothing was sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let client = client(&url, Duration::from_secs(5));
    let error = client
        .call(Request::post(
            "/projects/1/statuses/abc",
            json!({"state": "pending"}),
        ))
        .await
        .expect_err("nobody listens");
    assert!(matches!(error, ApiError::Network { .. }), "{error:?}");
    assert_eq!(client.retries(), 3);
}

#[tokio::test]
async fn rate_limits_are_waited_out_even_for_posts() {
    let server = MockServer::start().await;
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 1;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("RateLimit-Reset", reset.to_string().as_str())
                .set_body_json(json!({"message": "Retry later"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 5})))
        .mount(&server)
        .await;
    let client = client(&server.uri(), Duration::from_secs(30));
    let started = Instant::now();
    let reply = client
        .call(Request::post(
            "/projects/1/merge_requests/2/notes",
            json!({"body": "x"}),
        ))
        .await
        .expect("a rate-limited request was not processed: sent again");
    assert_eq!(reply.body["id"], 5);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(client.rate_limit_waits(), 1);
    assert_eq!(received(&server).await, 2);
}

#[tokio::test]
async fn a_rate_limit_beyond_the_allowed_wait_fails_for_the_queue_to_retry() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .mount(&server)
        .await;
    let client = client(&server.uri(), Duration::from_secs(60));
    let started = Instant::now();
    let error = client
        .call(Request::get("/projects/1"))
        .await
        .expect_err("rate limited");
    assert!(matches!(error, ApiError::RateLimited { .. }), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3600)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait an hour"
    );
    assert_eq!(received(&server).await, 1);
}

#[tokio::test]
async fn errors_carry_gitlabs_message_and_redirects_stay_in_the_api() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/404"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "404 Project Not Found"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/301"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("Location", "https://elsewhere.example/steal"),
        )
        .mount(&server)
        .await;
    let client = client(&server.uri(), Duration::from_secs(5));
    let error = client
        .call(Request::get("/projects/404"))
        .await
        .expect_err("404");
    assert_eq!(error.status(), Some(404));
    assert_eq!(error.message(), Some("404 Project Not Found"));
    let error = client
        .call(Request::get("/projects/301"))
        .await
        .expect_err("the redirect is not followed");
    assert_eq!(error.status(), Some(302));
    let refused = client
        .call(Request::get("/projects/../users"))
        .await
        .expect_err("a dot segment");
    assert!(matches!(refused, ApiError::Invalid(_)));
    assert_eq!(
        received(&server).await,
        2,
        "the refused path was never sent"
    );
}

#[tokio::test]
async fn posts_are_spaced_under_gitlabs_note_limit() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let client = std::sync::Arc::new(spaced_client(
        &server.uri(),
        Duration::from_secs(5),
        Duration::from_millis(100),
    ));
    let started = Instant::now();
    let posts: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call(Request::post(
                        "/projects/1/merge_requests/2/notes",
                        json!({"body": "x"}),
                    ))
                    .await
            })
        })
        .collect();
    for post in posts {
        post.await.expect("task").expect("posted");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "four POSTs, 100 ms apart: {:?}",
        started.elapsed()
    );
    // Reads are not paced.
    let started = Instant::now();
    for _ in 0..4 {
        client
            .call(Request::get("/projects/1"))
            .await
            .expect("read");
    }
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn a_long_rate_limit_is_handed_to_the_queue_with_its_wait() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "120")
                .set_body_json(json!({"message": "Retry later"})),
        )
        .mount(&server)
        .await;
    // The default policy: a wait longer than a request may wait is not slept through.
    kubeward::bot::serve::install_crypto();
    let client = GitLabClient::new(GitLabClientConfig::new(server.uri(), Secret::new(TOKEN)))
        .expect("client");
    let started = Instant::now();
    let error = client
        .call(Request::post(
            "/projects/1/merge_requests/2/notes",
            json!({"body": "x"}),
        ))
        .await
        .expect_err("rate limited");
    assert_eq!(
        error.retry_after(),
        Some(Duration::from_secs(120)),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("/projects/1/merge_requests/2/notes")
    );
    assert!(!error.to_string().contains(TOKEN));
    assert!(started.elapsed() < Duration::from_secs(5), "did not wait");
    // The token is paused: the next request is not sent, and says how long is left.
    let again = client
        .call(Request::get("/projects/1"))
        .await
        .expect_err("still paused");
    let left = again.retry_after().expect("a rate limit");
    assert!(
        left > Duration::from_secs(100) && left <= Duration::from_secs(120),
        "{left:?}"
    );
    assert_eq!(received(&server).await, 1);
}
