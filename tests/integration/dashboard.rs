//! The dashboard's JSON API on a real listener on 127.0.0.1, over a store filled with
//! snapshots: trusted headers believed only from the proxy's address, nothing shown unless
//! granted, CSV cells that cannot run, and every answer checked against the API's schema
//! (tests/data/dashboard/api-v1.schema.json).

use kubeward::audit::Severity;
use kubeward::ownership::OwnedFinding;
use kubeward::queue::Queue;
use kubeward::queue::ownership::{NewSnapshot, SnapshotCause};
use serde_json::{Value, json};

fn finding(key: &str, path: &str, message: &str, owners: &[&str]) -> OwnedFinding {
    OwnedFinding {
        key: key.into(),
        fingerprint: key.into(),
        rule: "runAsPrivileged".into(),
        severity: Severity::Danger,
        path: path.into(),
        line: 12,
        object: "Deployment shop/web".into(),
        message: message.into(),
        owners: owners.iter().map(|o| (*o).to_owned()).collect(),
        environments: vec!["prod".into()],
    }
}

/// A pushed snapshot of GitHub repository `id` at `commit` (40 hex digits).
fn snapshot(
    id: i64,
    name: &str,
    commit: String,
    taken_at_ms: i64,
    reviewed: bool,
    findings: Vec<OwnedFinding>,
) -> NewSnapshot {
    NewSnapshot {
        forge: "github".into(),
        repo_id: id,
        repo_name: name.into(),
        installation_id: Some(7),
        web_url: Some(format!("https://github.com/{name}")),
        commit,
        taken_at_ms,
        cause: SnapshotCause::Push,
        reviewed,
        findings,
    }
}

async fn store() -> Queue {
    let queue = Queue::connect("sqlite::memory:").await.expect("queue");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    for (id, name, findings) in [
        (
            1,
            "org/shop",
            vec![
                finding(
                    "a",
                    "apps/web.yaml",
                    "=HYPERLINK(\"https://evil.example\")",
                    &["@org/web"],
                ),
                finding(
                    "b",
                    "apps/api.yaml",
                    "Should not be privileged",
                    &["@org/api"],
                ),
                finding("c", "legacy/old.yaml", "Should not be privileged", &[]),
            ],
        ),
        (
            2,
            "org/cart",
            vec![finding(
                "d",
                "apps/web.yaml",
                "Should not be privileged",
                &["@org/web"],
            )],
        ),
    ] {
        queue
            .record_snapshot(&snapshot(id, name, commit.into(), 1_000, id == 1, findings))
            .await
            .expect("snapshot");
    }
    queue
}

/// The API behind a listener on 127.0.0.1; `proxies` are the addresses believed.
async fn serve(queue: Queue, proxies: &[&str]) -> String {
    crate::dashboard_pages::serve_dashboard(
        queue,
        json!({
            "trustedHeaders": {"fromCidrs": proxies},
            "access": [
                {"groups": ["platform"], "teams": ["*"]},
                {"users": ["wes"], "teams": ["@org/web"], "repositories": ["org/shop"]},
                {"users": ["duo"], "teams": ["@org/web", "@org/api", "unowned"]}
            ]
        }),
    )
    .await
}

async fn get(url: &str, user: Option<(&str, &str)>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some((user, groups)) = user {
        request = request
            .header("x-forwarded-user", user)
            .header("x-forwarded-groups", groups);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

fn valid(kind: &str, body: &str) -> Value {
    let schema: Value =
        serde_json::from_str(include_str!("../data/dashboard/api-v1.schema.json")).expect("schema");
    let mut wanted = schema.clone();
    wanted["$ref"] = json!(format!("#/$defs/{kind}"));
    let validator = jsonschema::validator_for(&wanted).expect("compiles");
    let value: Value = serde_json::from_str(body).expect("JSON");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{kind}: {errors:?}\n{body}");
    value
}

#[tokio::test]
async fn the_api_shows_each_user_what_they_are_granted_and_nothing_else() {
    let url = serve(store().await, &["127.0.0.1/32"]).await;

    let (status, headers, body) = get(&format!("{url}/api/v1/overview"), None).await;
    assert_eq!(status, 401, "{body}");
    valid("error", &body);
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok());
    assert_eq!(
        csp,
        Some(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    );

    // The platform team sees everything.
    let (status, _, body) = get(
        &format!("{url}/api/v1/overview"),
        Some(("pat", "eng,platform")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let all = valid("overview", &body);
    let team = |v: &Value, name: &str| {
        v["teams"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == name))
            .map(|t| t["danger"].clone())
    };
    assert_eq!(team(&all, "@org/web"), Some(json!(2)));
    assert_eq!(team(&all, "unowned"), Some(json!(1)));
    assert_eq!(all["unowned"]["danger"], 1);
    assert_eq!(all["unreviewed"], 1, "org/cart's push was not reviewed");
    assert_eq!(all["escaped"], 0);
    assert_eq!(
        all["environments"],
        json!([{"name": "prod", "danger": 4, "warning": 0}])
    );
    // Both repositories' only snapshots carry forward to every day of the trend.
    let trend = all["trend"].as_array().expect("trend");
    assert_eq!(trend.len(), 30);
    assert_eq!(trend[29]["danger"], 4, "every open finding once");

    // Wes sees @org/web in org/shop only: its counts, no other team, no merges.
    let (status, _, body) = get(&format!("{url}/api/v1/overview"), Some(("wes", ""))).await;
    assert_eq!(status, 200, "{body}");
    let wes = valid("overview", &body);
    assert_eq!(
        wes["teams"],
        json!([{"name": "@org/web", "danger": 1, "warning": 0}])
    );
    assert_eq!(
        wes["repositories"],
        json!([{"forge": "github", "repoId": 1, "name": "org/shop", "danger": 1, "warning": 0}])
    );
    assert_eq!(
        wes["environments"],
        json!([{"name": "prod", "danger": 1, "warning": 0}]),
        "only what wes sees"
    );
    assert_eq!(wes["escaped"], Value::Null);
    assert_eq!(
        wes["trend"],
        Value::Null,
        "a sum of teams would count shared findings twice"
    );
    let (status, _, body) = get(
        &format!("{url}/api/v1/teams/%40org%2Fweb"),
        Some(("wes", "")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let web = valid("team", &body);
    let trend = web["trend"].as_array().expect("trend");
    assert_eq!(trend.len(), 30);
    assert_eq!(
        trend[29]["danger"], 1,
        "org/web's finding in org/cart is not wes's to see, in the trend either"
    );
    let repos: Vec<&str> = web["findings"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["repository"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(repos, ["org/shop"]);
    // Another team, or a signed-in user with no grant: as if it did not exist.
    let (status, _, body) = get(
        &format!("{url}/api/v1/teams/%40org%2Fapi"),
        Some(("wes", "")),
    )
    .await;
    assert_eq!(status, 404);
    valid("error", &body);
    let (status, _, body) = get(&format!("{url}/api/v1/overview"), Some(("nina", "sales"))).await;
    assert_eq!(status, 200);
    let nothing = valid("overview", &body);
    assert_eq!(nothing["teams"], json!([]));
    assert_eq!(nothing["repositories"], json!([]));

    // A rule: where it fails and for which teams, cut to what the user sees.
    let (status, _, body) = get(
        &format!("{url}/api/v1/rules/runAsPrivileged"),
        Some(("pat", "platform")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rule = valid("rule", &body);
    assert_eq!(rule["findings"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        rule["repositories"][0],
        json!({"name": "org/shop", "danger": 3, "warning": 0})
    );
    let (_, _, body) = get(
        &format!("{url}/api/v1/rules/runAsPrivileged"),
        Some(("wes", "")),
    )
    .await;
    let rule = valid("rule", &body);
    assert_eq!(
        rule["teams"],
        json!([{"name": "@org/web", "danger": 1, "warning": 0}])
    );
    // A repository: its findings by team, and its snapshots for those who see all of it.
    let (status, _, body) = get(
        &format!("{url}/api/v1/repositories/github/1"),
        Some(("pat", "platform")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let shop = valid("repository", &body);
    assert_eq!(shop["snapshots"].as_array().map(Vec::len), Some(1));
    let (status, _, body) = get(
        &format!("{url}/api/v1/repositories/github/1"),
        Some(("wes", "")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let shop = valid("repository", &body);
    assert_eq!(shop["findings"].as_array().map(Vec::len), Some(1));
    assert_eq!(shop["snapshots"], Value::Null, "only part of it is wes's");
    let (status, _, _) = get(
        &format!("{url}/api/v1/repositories/github/2"),
        Some(("wes", "")),
    )
    .await;
    assert_eq!(status, 404, "nothing of org/cart is wes's");

    // CSV: a message or owner a spreadsheet would run is text.
    let (status, headers, csv) = get(
        &format!("{url}/api/v1/teams/%40org%2Fweb/findings.csv"),
        Some(("pat", "platform")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/csv"))
    );
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"https://evil.example\"\")\""),
        "{csv}"
    );
    assert!(csv.contains("\"'@org/web\""), "{csv}");
    assert!(!csv.contains(",\"=") && !csv.contains(",\"@"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "a header and two findings: {csv}");
}

#[tokio::test]
async fn headers_from_anyone_but_the_proxy_are_not_believed() {
    // The proxy is elsewhere: this client's headers, X-Forwarded-For included, mean nothing.
    let url = serve(store().await, &["10.0.0.0/8"]).await;
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/overview"))
        .header("x-forwarded-user", "pat")
        .header("x-forwarded-groups", "platform")
        .header("x-forwarded-for", "10.0.0.1")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 403);
    let body = response.text().await.expect("body");
    assert!(!body.contains("org/shop"), "{body}");
    valid("error", &body);
}

/// A team's trend sums every repository's daily totals only for those who see the team
/// everywhere: wes, granted @org/web in org/shop alone, sees every repository the team has
/// open findings in today, but not org/old, where it had one yesterday.
#[tokio::test]
async fn a_team_s_trend_never_counts_a_repository_the_user_may_not_see() {
    let queue = Queue::connect("sqlite::memory:").await.expect("queue");
    let now = kubeward::queue::now_ms();
    let day = 86_400_000;
    let web = finding(
        "a",
        "apps/web.yaml",
        "Should not be privileged",
        &["@org/web"],
    );
    let mut old = web.clone();
    old.key = "o".into();
    for (id, name, commit, at, findings) in [
        (1, "org/shop", "1", now - day, vec![web.clone()]),
        (2, "org/old", "2", now - day, vec![old]),
        (2, "org/old", "3", now, Vec::new()),
    ] {
        queue
            .record_snapshot(&snapshot(id, name, commit.repeat(40), at, true, findings))
            .await
            .expect("snapshot");
    }
    let url = serve(queue, &["127.0.0.1/32"]).await;
    let yesterday = |user: (&'static str, &'static str)| {
        let url = url.clone();
        async move {
            let (status, _, body) =
                get(&format!("{url}/api/v1/teams/%40org%2Fweb"), Some(user)).await;
            assert_eq!(status, 200, "{body}");
            let team = valid("team", &body);
            assert_eq!(team["danger"], 1, "only org/shop holds one today");
            team["trend"][28]["danger"].clone()
        }
    };
    assert_eq!(
        yesterday(("pat", "platform")).await,
        2,
        "org/shop and org/old"
    );
    assert_eq!(
        yesterday(("wes", "")).await,
        1,
        "org/old is not wes's to see"
    );
}

/// A user granted several teams counts a finding owned by two of them once, in every count
/// the overview gives them; unreviewed and unowned ones are counted as such.
#[tokio::test]
async fn a_user_granted_two_teams_counts_a_finding_of_both_once() {
    let queue = Queue::connect("sqlite::memory:").await.expect("queue");
    let now = kubeward::queue::now_ms();
    let shared = finding("x", "apps/web.yaml", "shared", &["@org/web", "@org/api"]);
    let api = finding("y", "apps/api.yaml", "api", &["@org/api"]);
    let mut unowned = finding("z", "legacy/old.yaml", "nobody's", &[]);
    unowned.environments = vec!["prod".into(), "staging".into()];
    for (commit, reviewed, findings) in [
        ("1", true, vec![shared.clone(), api.clone()]),
        ("2", false, vec![shared, api, unowned]),
    ] {
        queue
            .record_snapshot(&snapshot(
                1,
                "org/shop",
                commit.repeat(40),
                now,
                reviewed,
                findings,
            ))
            .await
            .expect("snapshot");
    }
    let url = serve(queue, &["127.0.0.1/32"]).await;
    let (status, _, body) = get(&format!("{url}/api/v1/overview"), Some(("duo", ""))).await;
    assert_eq!(status, 200, "{body}");
    let duo = valid("overview", &body);
    assert_eq!(
        duo["teams"],
        json!([
            {"name": "@org/api", "danger": 2, "warning": 0},
            {"name": "@org/web", "danger": 1, "warning": 0},
            {"name": "unowned", "danger": 1, "warning": 0}
        ])
    );
    assert_eq!(
        duo["rules"],
        json!([{"name": "runAsPrivileged", "danger": 3, "warning": 0}]),
        "x once, though both of its teams are duo's"
    );
    assert_eq!(duo["repositories"][0]["danger"], 3);
    assert_eq!(
        duo["environments"],
        json!([
            {"name": "prod", "danger": 3, "warning": 0},
            {"name": "staging", "danger": 1, "warning": 0}
        ])
    );
    assert_eq!(duo["unowned"], json!({"danger": 1, "warning": 0}));
    assert_eq!(duo["unreviewed"], 1, "z came with the unreviewed push");
}
