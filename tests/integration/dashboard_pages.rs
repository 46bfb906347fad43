//! The dashboard's pages in headless Chromium behind a stand-in authenticating proxy:
//! every page kind loads with its texts and no console message (no CSP violation, no failed
//! load), every link on them answers, each page passes the W3C validator, and a screenshot of
//! each is left in target/test-output/dashboard/ (docs/dashboard.md shows them). The store is
//! filled by the bot itself from pushes and pull requests (`github_bot::default_branch_pushes…`
//! calls [`browse_every_page`]); the sign-in with credentials runs here over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use kubeward::dashboard::{Access, DashboardSettings, DashboardState, router};
use kubeward::queue::Queue;
use serde_json::json;

use crate::support::browser;

async fn listen(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(kubeward::server::listen::serve(
        listener,
        app,
        Duration::from_secs(10),
        Duration::from_secs(1),
        std::future::pending(),
    ));
    url
}

/// The dashboard on 127.0.0.1 with `settings`.
pub async fn serve_dashboard(queue: Queue, settings: serde_json::Value) -> String {
    let settings: DashboardSettings = serde_json::from_value(settings).expect("settings");
    let access = Access::new(&settings).expect("valid");
    listen(router(Arc::new(DashboardState { queue, access }))).await
}

/// What oauth2-proxy does in front of the dashboard: forwards every request with the headers
/// naming who signed in (and drops any the client sent).
async fn proxy(
    State((upstream, user, groups)): State<(String, String, String)>,
    request: Request,
) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).expect("method");
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .expect("body");
    let answer = client
        .request(method, format!("{upstream}{path}"))
        .header("x-forwarded-user", user)
        .header("x-forwarded-groups", groups)
        .body(body)
        .send()
        .await
        .expect("dashboard answered");
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        response = response.header(name.as_str(), value.as_bytes());
    }
    response
        .body(Body::from(answer.bytes().await.expect("body")))
        .expect("response")
}

async fn behind_proxy(dashboard: &str, user: &str, groups: &str) -> String {
    listen(axum::Router::new().fallback(proxy).with_state((
        dashboard.to_owned(),
        user.to_owned(),
        groups.to_owned(),
    )))
    .await
}

/// Loads the overview and one page of each kind in Chromium, follows every link they carry,
/// validates each HTML page and saves screenshots. `texts` are what the overview must show.
pub async fn browse_every_page(queue: Queue, texts: &[&str]) {
    let dashboard = serve_dashboard(
        queue,
        json!({
            "trustedHeaders": {"fromCidrs": ["127.0.0.1/32"]},
            "access": [{"groups": ["platform"], "teams": ["*"]}]
        }),
    )
    .await;
    let site = behind_proxy(&dashboard, "pat", "platform").await;
    let client = reqwest::Client::new();
    // Every page reachable from the overview by its links, fetched over HTTP.
    let mut pages: BTreeMap<String, String> = BTreeMap::new();
    let mut queue_of_links = vec!["/dashboard".to_owned()];
    let mut external = BTreeSet::new();
    while let Some(link) = queue_of_links.pop() {
        if pages.contains_key(&link) || pages.len() > 60 {
            continue;
        }
        let answer = client
            .get(format!("{site}{link}"))
            .send()
            .await
            .expect("answered");
        assert_eq!(
            answer.status(),
            StatusCode::OK,
            "a link that does not work: {link}"
        );
        let html_page = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/html"));
        let body = answer.text().await.expect("body");
        if html_page {
            for href in browser::hrefs(&body) {
                if href.starts_with('/') {
                    queue_of_links.push(href.split('#').next().unwrap_or("").to_owned());
                } else {
                    external.insert(href);
                }
            }
        }
        pages.insert(link, if html_page { body } else { String::new() });
    }
    let kinds = [
        "/dashboard/teams/",
        "/dashboard/rules/",
        "/dashboard/repositories/",
    ];
    for kind in kinds {
        assert!(
            pages.keys().any(|p| p.starts_with(kind)),
            "no {kind} page linked: {:?}",
            pages.keys()
        );
    }
    assert!(pages.contains_key("/dashboard/static/dashboard.css"));
    // Links to the forge: a file's line at the snapshot's commit, its path segments encoded.
    assert!(!external.is_empty(), "no link to a file on the forge");
    let blob = regex::Regex::new(r"^https://github\.com/octo/shop/(blob/[0-9a-f]{40}/[A-Za-z0-9%._~/-]+#L[0-9]+|tree/[0-9a-f]{40})$")
            .expect("regex");
    for href in &external {
        assert!(blob.is_match(href), "an unexpected outside link: {href}");
    }

    // The W3C validator on every HTML page.
    let dir = tempfile::tempdir().expect("temp");
    let files: Vec<PathBuf> = pages
        .iter()
        .filter(|(_, body)| !body.is_empty())
        .enumerate()
        .map(|(i, (_, body))| {
            let file = dir.path().join(format!("page-{i}.html"));
            std::fs::write(&file, body).expect("write");
            file
        })
        .collect();
    if let Some(errors) = browser::validate_html(&files) {
        assert!(errors.is_empty(), "the validator: {errors:#?}");
    }

    let Some(chromium) = browser::chromium() else {
        return;
    };
    let first = |kind: &str| {
        pages
            .keys()
            .find(|p| p.starts_with(kind) && !p.contains('?'))
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} page"))
    };
    let shots = browser::output_dir("dashboard");
    let overview = browser::load(&chromium, &format!("{site}/dashboard")).await;
    assert!(overview.console.is_empty(), "{:#?}", overview.console);
    for text in texts {
        assert!(overview.dom.contains(text), "the overview lacks {text:?}");
    }
    for (name, page, must) in [
        (
            "overview",
            "/dashboard".to_owned(),
            "Open findings by owning team",
        ),
        (
            "team",
            first("/dashboard/teams/"),
            "What its reviews caught",
        ),
        ("rule", first("/dashboard/rules/"), "Where this rule fails"),
        (
            "repository",
            first("/dashboard/repositories/"),
            "Latest snapshots",
        ),
    ] {
        let url = format!("{site}{page}");
        let loaded = browser::load(&chromium, &url).await;
        assert!(loaded.console.is_empty(), "{page}: {:#?}", loaded.console);
        assert!(loaded.dom.contains(must), "{page} lacks {must:?}");
        // The stylesheet applied: the header bar is dark, which only the file makes it.
        let file = shots.join(format!("{name}.png"));
        let console = browser::screenshot(&chromium, &url, &file).await;
        assert!(console.is_empty(), "{page}: {console:#?}");
        eprintln!("screenshot of {page}: {}", file.display());
    }
}

fn encoded(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Accounts from a file: the form signs in, the cookie carries the session, the grants of the
/// file's groups apply, failures are throttled, and signing out ends it.
#[tokio::test]
async fn credentials_from_a_file_sign_in_with_throttled_failures() {
    let queue = Queue::connect("sqlite::memory:").await.expect("queue");
    let dir = tempfile::tempdir().expect("temp");
    let users = dir.path().join("users");
    let hash = kubeward::dashboard::signin::hash_password("correct horse battery").expect("hash");
    std::fs::write(
        &users,
        format!("# the platform team\npat:{hash}:platform\nnina:{hash}\n"),
    )
    .expect("write");
    let url = serve_dashboard(
        queue,
        json!({
            "credentials": {"file": users},
            "access": [{"groups": ["platform"], "teams": ["*"]}]
        }),
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // Not signed in: pages send to the form, the API says 401; proxy headers mean nothing.
    let page = client
        .get(format!("{url}/dashboard"))
        .header("x-forwarded-user", "pat")
        .send()
        .await
        .expect("answered");
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/dashboard/sign-in");
    let api = client
        .get(format!("{url}/api/v1/overview"))
        .send()
        .await
        .expect("answered");
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let form = client
        .get(format!("{url}/dashboard/sign-in"))
        .send()
        .await
        .expect("form");
    assert_eq!(form.status(), StatusCode::OK);
    let form_html = form.text().await.expect("body");
    assert!(form_html.contains("name=\"password\""));

    let sign_in = |user: &'static str, password: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(format!("{url}/dashboard/sign-in"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "user={}&password={}",
                    encoded(user),
                    encoded(password)
                ))
                .send()
                .await
                .expect("answered")
        }
    };
    let wrong = sign_in("pat", "guess").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right = sign_in("pat", "correct horse battery").await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    let cookie = right.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = cookie.split(';').next().expect("pair").to_owned();
    let overview = client
        .get(format!("{url}/api/v1/overview"))
        .header("cookie", &session)
        .send()
        .await
        .expect("answered");
    assert_eq!(overview.status(), StatusCode::OK);
    let overview: serde_json::Value = overview.json().await.expect("json");
    assert_eq!(overview["user"], "pat");
    assert!(
        overview["trend"].is_array(),
        "the file's group grants every team"
    );
    let page = client
        .get(format!("{url}/dashboard"))
        .header("cookie", &session)
        .send()
        .await
        .expect("answered");
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("body");
    assert!(page.contains("Signed in as pat") && page.contains("Sign out"));
    // A forged session is nobody.
    let forged = client
        .get(format!("{url}/api/v1/overview"))
        .header(
            "cookie",
            "kubeward_dashboard=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // Guessing is throttled: five failures from one address (pat's above and four here), and
    // even the right password waits.
    for _ in 0..4 {
        assert_eq!(
            sign_in("nina", "guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let throttled = sign_in("nina", "correct horse battery").await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));

    let out = client
        .post(format!("{url}/dashboard/sign-out"))
        .header("cookie", &session)
        .send()
        .await
        .expect("answered");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = client
        .get(format!("{url}/api/v1/overview"))
        .header("cookie", &session)
        .send()
        .await
        .expect("answered");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "signed out");

    // The form itself is valid HTML and loads in the browser without a console message.
    let file = dir.path().join("sign-in.html");
    std::fs::write(&file, &form_html).expect("write");
    if let Some(errors) = browser::validate_html(&[file]) {
        assert!(errors.is_empty(), "{errors:#?}");
    }
    if let Some(chromium) = browser::chromium() {
        let shot = browser::output_dir("dashboard").join("sign-in.png");
        let console =
            browser::screenshot(&chromium, &format!("{url}/dashboard/sign-in"), &shot).await;
        assert!(console.is_empty(), "{console:#?}");
    }
}
