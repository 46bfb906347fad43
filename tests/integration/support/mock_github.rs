//! A mock GitHub over HTTP: wiremock in front of the in-memory fake (`FakeGitHub`), recording
//! every request and checking it against GitHub's OpenAPI description and documented limits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubeward::forge::github::api::Method;
use kubeward::forge::github::fake::FakeGitHub;
use serde_json::Value;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub struct MockGitHub {
    pub server: MockServer,
    pub fake: Arc<FakeGitHub>,
    pub violations: Arc<Mutex<Vec<String>>>,
    /// Answers to requests whose path contains this are held back this long (to catch a worker
    /// mid-review).
    pub slow: Arc<Mutex<Option<(String, Duration)>>>,
    /// Requests answered with an error instead of reaching the fake (a rate limit, say).
    pub refusals: Arc<Mutex<Vec<Refusal>>>,
}

/// The next request with this method whose path contains `needle` is refused: answered with
/// `status`, `headers` and `body` without reaching the fake, as GitHub refuses a rate-limited
/// request without processing it.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub method: &'static str,
    pub needle: String,
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

struct Forwarder {
    fake: Arc<FakeGitHub>,
    violations: Arc<Mutex<Vec<String>>>,
    token: String,
    slow: Arc<Mutex<Option<(String, Duration)>>>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
}

impl Respond for Forwarder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let method = match request.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "PUT" => Method::Put,
            _ => Method::Delete,
        };
        let path = match request.url.query() {
            Some(q) => format!("{}?{q}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        let body: Option<Value> = if request.body.is_empty() {
            None
        } else {
            serde_json::from_slice(&request.body).ok()
        };
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut problems = Vec::new();
        if !auth.contains(&self.token) {
            problems.push(format!(
                "{} {path}: not authenticated with the token",
                method.as_str()
            ));
        }
        // GraphQL is not part of the REST description: its requests are checked against the
        // GraphQL schema instead.
        let checked = if method == Method::Post && path == "/graphql" {
            super::github_graphql::validate_request(body.as_ref())
        } else {
            super::github_openapi::validate_request(method.as_str(), &path, body.as_ref()).and_then(
                |()| super::github_openapi::check_limits(method.as_str(), &path, body.as_ref()),
            )
        };
        if let Err(e) = checked {
            problems.push(format!("{} {path}: {e}", method.as_str()));
        }
        if let Ok(mut v) = self.violations.lock() {
            v.extend(problems);
        }
        if let Ok(mut refusals) = self.refusals.lock()
            && let Some(i) = refusals
                .iter()
                .position(|r| r.method == method.as_str() && path.contains(&r.needle))
        {
            let refusal = refusals.remove(i);
            let mut template =
                ResponseTemplate::new(refusal.status).set_body_json(refusal.body.clone());
            for (name, value) in &refusal.headers {
                template = template.insert_header(*name, value.as_str());
            }
            return template;
        }
        let (status, reply) = self.fake.handle(method, &path, body.as_ref());
        // What the fake answers, GitHub could: a documented status and documented types.
        if path != "/graphql"
            && let Err(e) =
                super::github_openapi::validate_reply(method.as_str(), &path, status, &reply)
            && let Ok(mut v) = self.violations.lock()
        {
            v.push(format!("{} {path}: {e}", method.as_str()));
        }
        let template = ResponseTemplate::new(status).set_body_json(reply);
        match self.slow.lock().ok().and_then(|s| s.clone()) {
            Some((needle, delay)) if path.contains(&needle) => template.set_delay(delay),
            _ => template,
        }
    }
}

impl MockGitHub {
    pub async fn start(bot_login: &str, token: &str) -> MockGitHub {
        let fake = Arc::new(FakeGitHub::new(bot_login));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let slow = Arc::new(Mutex::new(None));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Forwarder {
                fake: fake.clone(),
                violations: violations.clone(),
                token: token.to_owned(),
                slow: slow.clone(),
                refusals: refusals.clone(),
            })
            .mount(&server)
            .await;
        MockGitHub {
            server,
            fake,
            violations,
            slow,
            refusals,
        }
    }

    /// Refuses the next request matching `refusal` (see [`Refusal`]).
    pub fn refuse_once(&self, refusal: Refusal) {
        self.refusals.lock().expect("lock").push(refusal);
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Panics listing every request GitHub would have rejected.
    pub fn assert_requests_valid(&self) {
        let violations = self.violations.lock().expect("lock");
        assert!(
            violations.is_empty(),
            "requests GitHub would reject:\n{}",
            violations.join("\n")
        );
    }
}
