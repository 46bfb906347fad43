//! The dashboard's pages in headless Chromium behind a stand-in authenticating proxy:
//! every page kind loads with its texts and no console message (no CSP violation, no failed
//! load), every link on them answers, each page passes the W3C validator, and a screenshot of
//! each is left in target/test-output/dashboard/ (with KUBEWARD_UPDATE_SCREENSHOTS=1 also in
//! docs/images/, which docs/dashboard.md shows). The pages are those of a real `kubeward serve`
//! filled by its own workers from signed pushes and pull requests
//! (`serve_process::the_dashboard_of_a_real_serve…` calls [`browse_every_page`] and
//! [`browse_as_team_lead`]); the sign-in with credentials and the console check's own control
//! run here.

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

/// Saves a screenshot of `url` as `name`.png with the test output (and in docs/images when
/// KUBEWARD_UPDATE_SCREENSHOTS is set); the page logs nothing to the console meanwhile.
async fn screenshot(chromium: &std::path::Path, url: &str, name: &str) {
    let file = browser::output_dir("dashboard").join(format!("{name}.png"));
    let console = browser::screenshot(chromium, url, &file).await;
    assert!(console.is_empty(), "{url}: {console:#?}");
    eprintln!("screenshot of {url}: {}", file.display());
    if std::env::var_os("KUBEWARD_UPDATE_SCREENSHOTS").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("docs/images/dashboard-{name}.png"));
        std::fs::copy(&file, &docs).expect("copy the screenshot into docs/images");
    }
}

/// Validates `pages` (HTML bodies) with the W3C validator.
fn validate(pages: &[&str]) {
    let dir = tempfile::tempdir().expect("temp");
    let files: Vec<PathBuf> = pages
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let file = dir.path().join(format!("page-{i}.html"));
            std::fs::write(&file, body).expect("write");
            file
        })
        .collect();
    if let Some(errors) = browser::validate_html(&files) {
        assert!(errors.is_empty(), "the validator: {errors:#?}");
    }
}

/// Loads the overview and one page of each kind of the dashboard at `dashboard` in Chromium
/// as a platform user (group `platform`, granted every team), follows every link they carry,
/// validates each HTML page and saves screenshots (`team`'s page for a team). `texts` are what
/// the overview must show.
pub async fn browse_every_page(dashboard: &str, team: &str, texts: &[&str]) {
    let site = behind_proxy(dashboard, "pat", "platform").await;
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
    // What the overview must show, in the page as served (the browser checks it again below).
    for text in texts {
        assert!(
            pages["/dashboard"].contains(text),
            "the overview lacks {text:?}"
        );
    }
    // Links to the forge: a file's line at the snapshot's commit, its path segments encoded.
    assert!(!external.is_empty(), "no link to a file on the forge");
    let blob = regex::Regex::new(r"^https://github\.com/octo/shop/(blob/[0-9a-f]{40}/[A-Za-z0-9%._~/-]+#L[0-9]+|tree/[0-9a-f]{40})$")
            .expect("regex");
    for href in &external {
        assert!(blob.is_match(href), "an unexpected outside link: {href}");
    }

    // The W3C validator on every HTML page.
    validate(
        &pages
            .values()
            .filter(|body| !body.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );

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
            format!("/dashboard/teams/{}", encoded(team)),
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
        screenshot(&chromium, &url, name).await;
    }
}

/// The same dashboard for `lead`, granted only `team`: the overview shows that team and
/// none of `hidden`, its page loads, another team's page is not found, in the browser too.
pub async fn browse_as_team_lead(dashboard: &str, team: &str, hidden: &[&str]) {
    let site = behind_proxy(dashboard, "lead", "").await;
    let client = reqwest::Client::new();
    let team_page = format!("/dashboard/teams/{}", encoded(team));
    let mut bodies = Vec::new();
    for page in ["/dashboard".to_owned(), team_page.clone()] {
        let answer = client
            .get(format!("{site}{page}"))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), StatusCode::OK, "{page}");
        let body = answer.text().await.expect("body");
        assert!(body.contains(team), "{page} lacks {team}");
        for other in hidden {
            assert!(!body.contains(other), "{page} shows {other} to the lead");
        }
        bodies.push(body);
    }
    validate(&bodies.iter().map(String::as_str).collect::<Vec<_>>());
    for other in hidden {
        let answer = client
            .get(format!("{site}/dashboard/teams/{}", encoded(other)))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{other}");
    }
    let Some(chromium) = browser::chromium() else {
        return;
    };
    for (name, page) in [
        ("overview-team-lead", "/dashboard".to_owned()),
        ("team-team-lead", team_page),
    ] {
        let url = format!("{site}{page}");
        let loaded = browser::load(&chromium, &url).await;
        assert!(loaded.console.is_empty(), "{page}: {:#?}", loaded.console);
        assert!(loaded.dom.contains(team), "{page} lacks {team}");
        for other in hidden {
            assert!(!loaded.dom.contains(other), "{page} shows {other}");
        }
        screenshot(&chromium, &url, name).await;
    }
}

/// The console check's control: a page that breaks our CSP (inline script and style) and
/// loads a missing image is seen doing so, and one of ours with the same headers is not.
#[tokio::test]
async fn the_console_check_sees_what_a_broken_page_logs() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let csp = "default-src 'none'; style-src 'self'; img-src 'self'";
    let page = |body: &'static str| {
        move || async move {
            Response::builder()
                .header("content-type", "text/html; charset=utf-8")
                .header("content-security-policy", csp)
                .body(Body::from(body))
                .expect("response")
        }
    };
    let site = listen(
        axum::Router::new()
            .route(
                "/broken",
                axum::routing::get(page(
                    "<!doctype html><html lang=en><title>t</title><style>p{color:red}</style>\
                     <script>console.log('x')</script><img src=/missing.png alt=m></html>",
                )),
            )
            .route(
                "/clean",
                axum::routing::get(page(
                    "<!doctype html><html lang=en><title>t</title><p>fine</p></html>",
                )),
            ),
    )
    .await;
    let broken = browser::load(&chromium, &format!("{site}/broken")).await;
    assert!(
        broken.console.len() >= 2,
        "the blocked inline script and style, the missing image: {:#?}",
        broken.console
    );
    let clean = browser::load(&chromium, &format!("{site}/clean")).await;
    assert!(clean.console.is_empty(), "{:#?}", clean.console);
    assert!(clean.dom.contains("fine"));
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
