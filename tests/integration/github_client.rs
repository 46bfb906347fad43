//! The GitHub REST client against a wiremock "GitHub" on 127.0.0.1: App JWT and installation
//! tokens, retries, rate limits, write pacing, pagination, and that no secret is ever printed.
//!
//! The RSA key is generated per test run with `openssl genrsa` into a temporary directory;
//! it is a throwaway key and never leaves the machine.

use crate::support::{free_port, unix_now};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use kubeward::forge::Secret;
use kubeward::forge::github::client::{
    ApiRequest, GitHubAuth, GitHubClient, GitHubClientConfig, GitHubError, Method, RetryPolicy,
    WriteKind, WriteLimits, repo_path,
};
use serde_json::{Value, json};
use wiremock::matchers::{bearer_token, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const APP_ID: &str = "12345";

struct TestKey {
    private_pem: String,
    public_pem: String,
}

/// A throwaway 2048-bit RSA key, made once per test binary.
fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("app.pem");
        let public = dir.path().join("app.pub.pem");
        let status = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&private)
            .arg("2048")
            .output()
            .expect("run openssl genrsa");
        assert!(status.status.success(), "openssl genrsa failed: {status:?}");
        let status = Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .output()
            .expect("run openssl rsa");
        assert!(
            status.status.success(),
            "openssl rsa -pubout failed: {status:?}"
        );
        TestKey {
            private_pem: std::fs::read_to_string(private).unwrap(),
            public_pem: std::fs::read_to_string(public).unwrap(),
        }
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: ms(1),
        max_delay: ms(10),
        request_timeout: Duration::from_secs(5),
    }
}

fn fast_limits() -> WriteLimits {
    WriteLimits {
        per_minute: 80,
        per_hour: 500,
        min_spacing: Duration::ZERO,
        secondary_min_wait: ms(20),
        max_wait: Duration::from_secs(10),
        // One pool, as these tests count it; sharing it is tested with the bot.
        review_share_percent: 100,
        check_reserve_percent: 0,
        ..WriteLimits::default()
    }
}

fn config(base: &str, auth: GitHubAuth) -> GitHubClientConfig {
    GitHubClientConfig {
        api_base_url: base.to_owned(),
        auth,
        user_agent: "kubeward-test".to_owned(),
        retry: fast_retry(),
        limits: fast_limits(),
    }
}

fn app_auth() -> GitHubAuth {
    GitHubAuth::App {
        app_id: APP_ID.to_owned(),
        private_key_pem: Secret::new(test_key().private_pem.clone()),
    }
}

fn app_client(base: &str) -> GitHubClient {
    GitHubClient::new(config(base, app_auth())).expect("app client")
}

fn token_client(base: &str, token: &str) -> GitHubClient {
    GitHubClient::new(config(base, GitHubAuth::Token(Secret::new(token)))).expect("token client")
}

fn token_client_with(
    base: &str,
    token: &str,
    f: impl FnOnce(&mut GitHubClientConfig),
) -> GitHubClient {
    let mut c = config(base, GitHubAuth::Token(Secret::new(token)));
    f(&mut c);
    GitHubClient::new(c).expect("token client")
}

fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix seconds.
fn rfc3339(unix: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(unix as i64).expect("a time");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn mint_response(token: &str, valid_for_secs: u64) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "token": token,
        "expires_at": rfc3339(unix_now() + valid_for_secs),
        "permissions": {"checks": "write", "pull_requests": "write", "contents": "read", "metadata": "read"},
        "repository_selection": "selected"
    }))
}

async fn mount_mint(
    server: &MockServer,
    installation: u64,
    token: &str,
    valid_for_secs: u64,
    times: u64,
) {
    Mock::given(method("POST"))
        .and(path(format!(
            "/app/installations/{installation}/access_tokens"
        )))
        .respond_with(mint_response(token, valid_for_secs))
        .expect(times)
        .mount(server)
        .await;
}

async fn requests_to(server: &MockServer, http_method: &str, url_path: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == http_method && r.url.path() == url_path)
        .collect()
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iat: u64,
    exp: u64,
    iss: String,
}

/// Checks the JWT of a request made as the App; returns its claims.
fn check_app_jwt(request: &Request, signed_before: u64) -> Claims {
    let auth = request
        .headers
        .get("authorization")
        .expect("authorization")
        .to_str()
        .unwrap();
    let jwt = auth.strip_prefix("Bearer ").expect("Bearer scheme");
    assert_eq!(decode_header(jwt).unwrap().alg, Algorithm::RS256);
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[APP_ID]);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    validation.validate_aud = false;
    let key = DecodingKey::from_rsa_pem(test_key().public_pem.as_bytes()).unwrap();
    let claims = decode::<Claims>(jwt, &key, &validation)
        .expect("JWT verifies with the App's public key")
        .claims;
    let now = unix_now();
    assert!(
        claims.iat <= now - 59,
        "iat {} not backdated (now {now})",
        claims.iat
    );
    assert!(
        claims.iat + 61 >= signed_before,
        "iat {} too old (signed after {signed_before})",
        claims.iat
    );
    assert!(
        claims.exp - claims.iat <= 600,
        "exp - iat = {}",
        claims.exp - claims.iat
    );
    assert!(claims.exp > now, "JWT already expired");
    assert_eq!(claims.iss, APP_ID);
    claims
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[tokio::test]
async fn app_jwt_claims_and_installation_token() {
    let server = MockServer::start().await;
    mount_mint(&server, 42, "ghs_first", 3600, 1).await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/hello"))
        .and(bearer_token("ghs_first"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("user-agent", "kubeward-test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7})))
        .expect(1)
        .mount(&server)
        .await;

    let client = app_client(&server.uri());
    let before = unix_now();
    let body = client
        .get_json(Some(42), "/repos/octo/hello")
        .await
        .unwrap();
    assert_eq!(body, json!({"id": 7}));

    let mints = requests_to(&server, "POST", "/app/installations/42/access_tokens").await;
    assert_eq!(mints.len(), 1);
    check_app_jwt(&mints[0], before);
    assert_eq!(client.stats().token_mints, 1);
}

#[tokio::test]
async fn installation_token_minted_once_for_concurrent_callers_and_reused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/app/installations/7/access_tokens"))
        .respond_with(mint_response("ghs_shared", 3600).set_delay(ms(200)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/hello"))
        .and(bearer_token("ghs_shared"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(13)
        .mount(&server)
        .await;

    let client = app_client(&server.uri());
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.get_json(Some(7), "/repos/octo/hello").await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for _ in 0..3 {
        client.get_json(Some(7), "/repos/octo/hello").await.unwrap();
    }
    assert_eq!(
        client.installation_token(7).await.unwrap().expose(),
        "ghs_shared"
    );
    assert_eq!(client.stats().token_mints, 1);
}

#[tokio::test]
async fn installation_token_refreshed_near_expiry() {
    let server = MockServer::start().await;
    // Expires in 2 minutes: inside the 5-minute refresh margin, so every use mints anew.
    mount_mint(&server, 9, "ghs_short", 120, 2).await;
    // A second installation has its own token.
    mount_mint(&server, 10, "ghs_other", 3600, 1).await;
    Mock::given(method("GET"))
        .and(path("/rate_limit"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;

    let client = app_client(&server.uri());
    client.get_json(Some(9), "/rate_limit").await.unwrap();
    client.get_json(Some(9), "/rate_limit").await.unwrap();
    client.get_json(Some(10), "/rate_limit").await.unwrap();
    client.get_json(Some(10), "/rate_limit").await.unwrap();
    assert_eq!(client.stats().token_mints, 3);
}

#[tokio::test]
async fn stateless_520_char_token_with_dots_is_opaque() {
    let mut token = String::from("ghs_12345_");
    while token.len() < 520 {
        token.push_str("eyJhbGciOiJSUzI1NiJ9.abc-DEF_");
    }
    token.truncate(520);
    assert_eq!(token.len(), 520);
    assert!(token.contains('.'));

    let server = MockServer::start().await;
    mount_mint(&server, 1, &token, 3600, 1).await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/hello/pulls/1"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"number": 1})))
        .expect(1)
        .mount(&server)
        .await;

    let client = app_client(&server.uri());
    let body = client
        .get_json(Some(1), &repo_path("octo", "hello", "/pulls/1"))
        .await
        .unwrap();
    assert_eq!(body["number"], 1);
    assert_eq!(client.installation_token(1).await.unwrap().expose(), token);
}

#[tokio::test]
async fn revoked_token_is_reminted_once_after_401() {
    let server = MockServer::start().await;
    mount_mint(&server, 5, "ghs_tok", 3600, 2).await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/hello"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/hello"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;

    let client = app_client(&server.uri());
    client.get_json(Some(5), "/repos/octo/hello").await.unwrap();
    assert_eq!(client.stats().token_mints, 2);
}

#[tokio::test]
async fn app_requests_use_the_jwt() {
    let server = MockServer::start().await;
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(query_param_is_missing("cursor"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 1, "status_code": 502}]))
                .insert_header(
                    "link",
                    format!("<{base}/app/hook/deliveries?per_page=100&cursor=v1_2>; rel=\"next\"")
                        .as_str(),
                ),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(query_param("cursor", "v1_2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([{"id": 2, "status_code": 200}])),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/app/hook/deliveries/1/attempts"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;

    let client = app_client(&base);
    let before = unix_now();
    let deliveries = client.app_paginate("/app/hook/deliveries").await.unwrap();
    assert_eq!(deliveries.len(), 2);
    let r = client
        .app_request(
            Method::POST,
            "/app/hook/deliveries/1/attempts",
            None,
            WriteKind::Idempotent,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    for request in server.received_requests().await.unwrap() {
        check_app_jwt(&request, before);
    }
    assert_eq!(client.stats().token_mints, 0);

    // Token mode has no JWT; App mode needs an installation for ordinary requests.
    let token_only = token_client(&base, "ghp_x");
    assert!(matches!(
        token_only
            .app_request(Method::GET, "/app", None, WriteKind::Read)
            .await,
        Err(GitHubError::Config(_))
    ));
    assert!(matches!(
        client.get_json(None, "/app").await,
        Err(GitHubError::Config(_))
    ));
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let bad_key = GitHubAuth::App {
        app_id: APP_ID.into(),
        private_key_pem: Secret::new("not a key"),
    };
    assert!(matches!(
        GitHubClient::new(config("https://api.github.com", bad_key)),
        Err(GitHubError::Config(_))
    ));
    let auth = || GitHubAuth::Token(Secret::new("t"));
    for base in [
        "ftp://x",
        "https://user:pw@api.github.com",
        "https://api.github.com?x=1",
        "not a url",
    ] {
        assert!(
            matches!(
                GitHubClient::new(config(base, auth())),
                Err(GitHubError::Config(_))
            ),
            "{base}"
        );
    }
    let ghes = GitHubClient::new(config("https://ghe.example.com/api/v3/", auth())).unwrap();
    assert_eq!(ghes.api_base_url(), "https://ghe.example.com/api/v3");
}

// ---------------------------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn get_is_retried_on_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;

    let client = token_client(&server.uri(), "ghp_t");
    assert_eq!(
        client.get_json(None, "/repos/o/r").await.unwrap(),
        json!({"ok": true})
    );
    assert_eq!(requests_to(&server, "GET", "/repos/o/r").await.len(), 3);
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn get_gives_up_after_max_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"message": "Service unavailable"})),
        )
        .expect(4)
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let err = client.get_json(None, "/repos/o/r").await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.to_string().contains("Service unavailable"), "{err}");
}

#[tokio::test]
async fn get_is_retried_after_a_network_error() {
    let server = MockServer::start().await;
    // The first answer comes too late: the attempt times out, which is a network error.
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"late": true}))
                .set_delay(Duration::from_secs(3)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"late": false})))
        .mount(&server)
        .await;
    let client = token_client_with(&server.uri(), "ghp_t", |c| {
        c.retry.request_timeout = ms(300)
    });
    assert_eq!(
        client.get_json(None, "/repos/o/r").await.unwrap(),
        json!({"late": false})
    );
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn connection_refused_is_retried_and_reported_as_not_sent() {
    let port = free_port();
    let client = token_client(&format!("http://127.0.0.1:{port}"), "ghp_t");
    let err = client.get_json(None, "/repos/o/r").await.unwrap_err();
    assert!(
        matches!(
            err,
            GitHubError::Network {
                attempts: 4,
                sent: false,
                ..
            }
        ),
        "{err:?}"
    );

    // Nothing reached a server, so even a content-creating POST is not "unconfirmed".
    let body = json!({"body": "hi"});
    let err = client
        .send(
            None,
            Method::POST,
            "/repos/o/r/issues/1/comments",
            Some(&body),
            WriteKind::CreatesContent,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitHubError::Network { sent: false, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn content_creating_post_is_not_retried_on_500() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/1/comments"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": "Server Error"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let body = json!({"body": "finding"});
    let err = client
        .send(
            None,
            Method::POST,
            "/repos/o/r/issues/1/comments",
            Some(&body),
            WriteKind::CreatesContent,
        )
        .await
        .unwrap_err();
    assert!(err.is_unconfirmed(), "{err:?}");
    assert!(matches!(
        err,
        GitHubError::Unconfirmed {
            status: Some(500),
            ..
        }
    ));
    assert_eq!(
        requests_to(&server, "POST", "/repos/o/r/issues/1/comments")
            .await
            .len(),
        1
    );
    assert_eq!(client.stats().unconfirmed, 1);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn content_creating_post_timeout_is_unconfirmed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/check-runs"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": 1}))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = token_client_with(&server.uri(), "ghp_t", |c| {
        c.retry.request_timeout = ms(300)
    });
    let body = json!({"name": "kubeward", "head_sha": "abc"});
    let err = client
        .send(
            None,
            Method::POST,
            "/repos/o/r/check-runs",
            Some(&body),
            WriteKind::CreatesContent,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitHubError::Unconfirmed { status: None, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn idempotent_patch_is_retried_on_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/repos/o/r/check-runs/4"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/o/r/check-runs/4"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 4})))
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let body = json!({"conclusion": "success"});
    let r = client
        .send(
            None,
            Method::PATCH,
            "/repos/o/r/check-runs/4",
            Some(&body),
            WriteKind::Idempotent,
        )
        .await
        .unwrap();
    assert_eq!(r.body["id"], 4);
    let patches = requests_to(&server, "PATCH", "/repos/o/r/check-runs/4").await;
    assert_eq!(patches.len(), 2);
    assert_eq!(
        serde_json::from_slice::<Value>(&patches[1].body).unwrap(),
        body
    );
}

/// Check-run annotations append on every update, so a PATCH that carries them is sent once: a
/// 5xx leaves its outcome unknown for the publisher to read back, never a second copy.
#[tokio::test]
async fn annotation_patch_through_the_api_is_not_retried_on_5xx() {
    use kubeward::forge::github::api::{self, ApiError, GitHubApi};
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/repos/o/r/check-runs/4"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let api: &dyn GitHubApi = &client;
    let body = json!({"output": {"title": "t", "summary": "s", "annotations": [
        {"path": "a.yaml", "start_line": 1, "end_line": 1, "annotation_level": "warning", "message": "m"}
    ]}});
    let err = api
        .call(
            1,
            api::ApiRequest::patch_appending("/repos/o/r/check-runs/4", body.clone()),
        )
        .await
        .expect_err("a 502");
    assert!(matches!(err, ApiError::Unconfirmed(_)), "{err:?}");
    assert_eq!(
        requests_to(&server, "PATCH", "/repos/o/r/check-runs/4")
            .await
            .len(),
        1
    );
    // The same update without annotations is idempotent: retried.
    let err = api
        .call(
            1,
            api::ApiRequest::patch("/repos/o/r/check-runs/4", json!({"status": "completed"})),
        )
        .await
        .expect_err("still a 502");
    assert!(!matches!(err, ApiError::Unconfirmed(_)), "{err:?}");
    assert!(
        requests_to(&server, "PATCH", "/repos/o/r/check-runs/4")
            .await
            .len()
            > 2
    );
}

#[tokio::test]
async fn unprocessable_carries_message_and_errors_and_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/pulls/3/reviews"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Unprocessable Entity",
            "errors": ["Pull request review thread line must be part of the diff"],
            "documentation_url": "https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let body = json!({"event": "COMMENT", "body": "x", "comments": []});
    let err = client
        .send(
            None,
            Method::POST,
            "/repos/o/r/pulls/3/reviews",
            Some(&body),
            WriteKind::CreatesContent,
        )
        .await
        .unwrap_err();
    assert!(err.is_unprocessable());
    assert_eq!(
        err.error_messages(),
        vec![
            "Unprocessable Entity",
            "Pull request review thread line must be part of the diff"
        ]
    );
    let text = err.to_string();
    assert!(text.contains("POST /repos/o/r/pulls/3/reviews"), "{text}");
    assert!(text.contains("HTTP 422"), "{text}");
    assert!(text.contains("must be part of the diff"), "{text}");
    match err {
        GitHubError::Api(e) => {
            assert!(e.documentation_url.unwrap().contains("create-a-review"));
            assert_eq!(e.errors.len(), 1);
            assert_eq!(
                (e.method.as_str(), e.path.as_str(), e.status),
                ("POST", "/repos/o/r/pulls/3/reviews", 422)
            );
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let start = Instant::now();
    client.get_json(None, "/repos/o/r").await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(client.rate_limit_waits(), 1);
}

#[tokio::test]
async fn rate_limited_post_is_retried_after_the_wait() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/1/comments"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/1/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 99})))
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let start = Instant::now();
    let body = json!({"body": "x"});
    let r = client
        .send(
            None,
            Method::POST,
            "/repos/o/r/issues/1/comments",
            Some(&body),
            WriteKind::CreatesContent,
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.body["id"].as_u64()), (201, Some(99)));
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        requests_to(&server, "POST", "/repos/o/r/issues/1/comments")
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn ratelimit_reset_is_honoured() {
    let server = MockServer::start().await;
    // A reset 2 to 3 s away, so that setting the mocks up (tens of milliseconds, more on a
    // busy machine) leaves a wait of over a second to measure.
    let reset = unix_now_f64().floor() as u64 + 3;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .insert_header("x-ratelimit-resource", "core")
                .set_body_json(
                    json!({"message": "API rate limit exceeded for installation ID 1."}),
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    // The clock read with the request's start, not before the mocks were mounted.
    let start_unix = unix_now_f64();
    client.get_json(None, "/repos/o/r").await.unwrap();
    // The retry went out no earlier than the reset, on the wall clock (measured from the start,
    // the wait would also have to cover the first request's latency, which a loaded machine
    // makes longer than any tolerance).
    let done_unix = unix_now_f64();
    assert!(
        done_unix >= reset as f64 - 0.05,
        "answered at {done_unix}, before the reset at {reset}"
    );
    assert!(reset as f64 - start_unix >= 1.0);
    assert_eq!(client.rate_limit_waits(), 1);
}

#[tokio::test]
async fn secondary_limit_without_headers_backs_off_exponentially() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/search/issues"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        })))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/search/issues"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(&server)
        .await;
    let client = token_client_with(&server.uri(), "ghp_t", |c| {
        c.limits.secondary_min_wait = ms(100)
    });
    let start = Instant::now();
    client.get_json(None, "/search/issues?q=x").await.unwrap();
    // 100 ms, then 200 ms.
    assert!(start.elapsed() >= ms(300), "{:?}", start.elapsed());
    assert_eq!(client.rate_limit_waits(), 2);
}

#[tokio::test]
async fn forbidden_without_rate_limit_is_an_error_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/collaborators/u/permission"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "4999")
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let err = client
        .get_json(None, "/repos/o/r/collaborators/u/permission")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(client.rate_limit_waits(), 0);
}

#[tokio::test]
async fn waits_beyond_max_wait_fail_fast_with_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .expect(1)
        .mount(&server)
        .await;
    let client = token_client_with(&server.uri(), "ghp_t", |c| {
        c.limits.max_wait = Duration::from_secs(1)
    });
    let start = Instant::now();
    let err = client.get_json(None, "/repos/o/r").await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    match err {
        GitHubError::RateLimited {
            retry_after,
            waited,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(30)));
            assert_eq!(waited, Duration::ZERO);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_rate_limit_pauses_the_whole_installation() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/a"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let start = Instant::now();
    let first = {
        let c = client.clone();
        tokio::spawn(async move { c.get_json(None, "/a").await })
    };
    tokio::time::sleep(ms(200)).await;
    client.get_json(None, "/b").await.unwrap();
    assert!(
        start.elapsed() >= ms(950),
        "/b went out during the pause: {:?}",
        start.elapsed()
    );
    first.await.unwrap().unwrap();
    assert_eq!(requests_to(&server, "GET", "/b").await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Write pacing

#[tokio::test]
async fn content_creation_is_spaced() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/1/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(4)
        .mount(&server)
        .await;
    let client = token_client_with(&server.uri(), "ghp_t", |c| c.limits.min_spacing = ms(150));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"body": format!("comment {i}")});
            c.send(
                None,
                Method::POST,
                "/repos/o/r/issues/1/comments",
                Some(&body),
                WriteKind::CreatesContent,
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(start.elapsed() >= ms(450), "{:?}", start.elapsed());
    assert_eq!(client.stats().pacing_waits, 3);

    // Reads are not paced.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let before_reads = client.stats().pacing_waits;
    for _ in 0..3 {
        client.get_json(None, "/repos/o/r").await.unwrap();
    }
    assert_eq!(client.stats().pacing_waits, before_reads);
}

#[tokio::test]
async fn per_minute_limit_refuses_beyond_max_wait_without_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/1/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(2)
        .mount(&server)
        .await;
    let client = token_client_with(&server.uri(), "ghp_t", |c| {
        c.limits.per_minute = 2;
        c.limits.max_wait = Duration::from_secs(5);
    });
    let body = json!({"body": "x"});
    let post = || {
        client.send(
            None,
            Method::POST,
            "/repos/o/r/issues/1/comments",
            Some(&body),
            WriteKind::CreatesContent,
        )
    };
    post().await.unwrap();
    post().await.unwrap();
    let err = post().await.unwrap_err();
    assert!(err.is_rate_limited(), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Pagination and paths

#[tokio::test]
async fn paginate_follows_link_next() {
    let server = MockServer::start().await;
    let base = server.uri();
    let page = |n: u32| format!("<{base}/repos/o/r/pulls/1/comments?per_page=100&page={n}>");
    Mock::given(method("GET"))
        .and(path("/repos/o/r/pulls/1/comments"))
        .and(query_param("per_page", "100"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 1}, {"id": 2}]))
                .insert_header(
                    "link",
                    format!("{}; rel=\"next\", {}; rel=\"last\"", page(2), page(3)).as_str(),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/pulls/1/comments"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 3}]))
                .insert_header(
                    "link",
                    format!("{}; rel=\"prev\", {}; rel=\"next\"", page(1), page(3)).as_str(),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/pulls/1/comments"))
        .and(query_param("page", "3"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 4}]))
                .insert_header("link", format!("{}; rel=\"first\"", page(1)).as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = token_client(&base, "ghp_t");
    let items = client
        .paginate(None, "/repos/o/r/pulls/1/comments")
        .await
        .unwrap();
    let ids: Vec<u64> = items.iter().map(|i| i["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4]);

    // Object pages contribute their one array.
    Mock::given(method("GET"))
        .and(path("/repos/o/r/commits/abc/check-runs"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total_count": 2, "check_runs": [{"id": 5}, {"id": 6}]})),
        )
        .mount(&server)
        .await;
    let runs = client
        .paginate(None, "/repos/o/r/commits/abc/check-runs")
        .await
        .unwrap();
    assert_eq!(runs.len(), 2);
}

#[tokio::test]
async fn paginate_refuses_links_to_other_hosts() {
    let server = MockServer::start().await;
    let base = server.uri();
    for (p, next) in [
        (
            "/one",
            "http://evil.example.com/one?page=2&token=leak".to_owned(),
        ),
        ("/two", format!("{base}.evil.example.com/two?page=2")),
        ("/three", format!("{base}@evil.example.com/three?page=2")),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!([1]))
                    .insert_header("link", format!("<{next}>; rel=\"next\"").as_str()),
            )
            .mount(&server)
            .await;
    }
    let client = token_client(&base, "ghp_t");
    for p in ["/one", "/two", "/three"] {
        let err = client.paginate(None, p).await.unwrap_err();
        assert!(
            matches!(err, GitHubError::ForeignLink { .. }),
            "{p}: {err:?}"
        );
        assert!(!format!("{err:?}").contains("leak"), "{err:?}");
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3, "only the first pages were fetched");
}

#[tokio::test]
async fn paths_are_built_and_checked() {
    assert_eq!(
        repo_path("octo cat", "my.repo", "/pulls"),
        "/repos/octo%20cat/my.repo/pulls"
    );
    assert_eq!(repo_path("a/b", "c", "/pulls"), "/repos/a%2Fb/c/pulls");

    let server = MockServer::start().await;
    let client = token_client(&server.uri(), "ghp_t");
    for bad in [
        repo_path("..", "x", "/pulls"),
        repo_path("", "x", "/pulls"),
        "https://evil.example.com/x".to_owned(),
        "//evil.example.com/x".to_owned(),
        "/repos/o/r/../../app".to_owned(),
    ] {
        let err = client.get_json(None, &bad).await.unwrap_err();
        assert!(
            matches!(err, GitHubError::InvalidPath { .. }),
            "{bad}: {err:?}"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn conditional_requests_return_304() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r"))
        .and(header("if-none-match", "\"abc\""))
        .respond_with(ResponseTemplate::new(304).insert_header("etag", "\"abc\""))
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let request = ApiRequest {
        if_none_match: Some("\"abc\""),
        ..ApiRequest::get("/repos/o/r")
    };
    let r = client.send_request(None, &request).await.unwrap();
    assert_eq!(r.status, 304);
    assert_eq!(r.body, Value::Null);
    assert_eq!(r.headers.etag.as_deref(), Some("\"abc\""));
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn secrets_never_appear_in_debug_or_errors() {
    const TOKEN: &str = "ghp_SECRET.TOKEN.value_that_must_not_leak";
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/unauthorized"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/boom"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/limited"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/app/installations/1/access_tokens"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"message": "A JSON web token could not be decoded"})),
        )
        .mount(&server)
        .await;

    let client = token_client(&server.uri(), TOKEN);
    let mut errors = vec![
        client
            .get_json(None, "/unauthorized?access_token=QUERYSECRET")
            .await
            .unwrap_err(),
        client
            .send(
                None,
                Method::POST,
                "/boom",
                Some(&json!({})),
                WriteKind::CreatesContent,
            )
            .await
            .unwrap_err(),
        client.get_json(None, "/limited").await.unwrap_err(),
        client
            .get_json(None, "/a b?access_token=QUERYSECRET")
            .await
            .unwrap_err(),
    ];
    let refused = token_client(&format!("http://127.0.0.1:{}", free_port()), TOKEN);
    errors.push(
        refused
            .get_json(None, "/x?access_token=QUERYSECRET")
            .await
            .unwrap_err(),
    );

    // App mode: a failed mint must not show the JWT or the key.
    let app = app_client(&server.uri());
    let mint_error = app.get_json(Some(1), "/repos/o/r").await.unwrap_err();
    assert_eq!(mint_error.status(), Some(401));
    errors.push(mint_error);

    let key = &test_key().private_pem;
    let key_body = key.lines().nth(1).unwrap();
    for err in &errors {
        for text in [format!("{err:?}"), format!("{err}")] {
            assert!(!text.contains(TOKEN), "{text}");
            assert!(!text.contains("QUERYSECRET"), "{text}");
            assert!(!text.contains("eyJ"), "a JWT leaked: {text}");
            assert!(!text.contains(key_body), "{text}");
        }
    }
    for text in [
        format!("{client:?}"),
        format!("{app:?}"),
        format!("{:?}", config(&server.uri(), app_auth())),
        format!(
            "{:?}",
            config(&server.uri(), GitHubAuth::Token(Secret::new(TOKEN)))
        ),
        format!("{:?}", app.installation_token(1).await),
    ] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains(key_body), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }
    assert_eq!(format!("{}", Secret::new(TOKEN)), "[redacted]");
}

#[tokio::test]
async fn graphql_goes_beside_the_rest_root_on_ghes_and_its_errors_are_errors() {
    use kubeward::forge::github::api::{self, GitHubApi};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/graphql"))
        .and(bearer_token("ghp_t"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/graphql"))
        .respond_with(|request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            if body["variables"]["ok"] == json!(true) {
                ResponseTemplate::new(200)
                    .set_body_json(json!({"data": {"viewer": {"login": "me"}}}))
            } else {
                ResponseTemplate::new(200).set_body_json(
                    json!({"data": null, "errors": [{"message": "Field 'x' doesn't exist"}]}),
                )
            }
        })
        .mount(&server)
        .await;
    let client = token_client(&format!("{}/api/v3", server.uri()), "ghp_t");
    let api: &dyn GitHubApi = &client;
    let query = "query { viewer { login } }";
    // A query is a read: retried after the 502.
    let data = api::graphql(
        api,
        1,
        api::ApiRequest::graphql_query(query, json!({"ok": true})),
    )
    .await
    .expect("data");
    assert_eq!(data, json!({"viewer": {"login": "me"}}));
    let err = api::graphql(
        api,
        1,
        api::ApiRequest::graphql_query(query, json!({"ok": false})),
    )
    .await
    .expect_err("GraphQL errors fail the call");
    assert!(err.to_string().contains("doesn't exist"), "{err}");
    assert_eq!(requests_to(&server, "POST", "/api/graphql").await.len(), 3);
    assert!(
        requests_to(&server, "POST", "/api/v3/graphql")
            .await
            .is_empty()
    );
}

/// A list that links a next page past [`MAX_PAGES`]: the same typed error as the publishers'
/// lists, not a truncated list.
#[tokio::test]
async fn paginate_fails_typed_at_its_page_limit() {
    use kubeward::forge::github::client::MAX_PAGES;

    /// Every page links the one after it.
    struct Endless(String);
    impl wiremock::Respond for Endless {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let page: u64 = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "page")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(1);
            let next = format!(
                "<{}/endless?per_page=100&page={}>; rel=\"next\"",
                self.0,
                page + 1
            );
            ResponseTemplate::new(200)
                .set_body_json(json!([page]))
                .insert_header("link", next.as_str())
        }
    }
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/endless"))
        .respond_with(Endless(server.uri()))
        .mount(&server)
        .await;
    let client = token_client(&server.uri(), "ghp_t");
    let err = client.paginate(None, "/endless").await.unwrap_err();
    assert!(
        matches!(
            &err,
            GitHubError::TooManyPages { path, pages, per_page: 100 }
                if path == "/endless" && *pages == MAX_PAGES
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("GET /endless: more than {MAX_PAGES} pages of 100")
    );
}
