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

/// Runs `kubeward testdrive args` in a temporary folder of its own; `path` replaces PATH. Checks
/// that it succeeds, leaves nothing behind but the ownership report it was asked to write
/// (checked, then removed), and returns what it printed.
fn testdrive(args: &[&std::ffi::OsStr], path: Option<&std::path::Path>) -> String {
    let tmp = tempfile::tempdir().expect("temp");
    let kept = tempfile::tempdir().expect("temp");
    let report = kept.path().join("ownership.html");
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubeward"));
    command
        .arg("testdrive")
        .args(args)
        .arg("--report")
        .arg(&report)
        .env("TMPDIR", tmp.path());
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let out = command.output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("readable")
        .flatten()
        .collect();
    assert!(left.is_empty(), "testdrive left files behind: {left:?}");
    let html = std::fs::read_to_string(&report).expect("the ownership report is written");
    assert!(
        html.contains("Ownership report: example/shop") && html.contains("@example/shop-team"),
        "{html}"
    );
    assert!(
        stdout.contains(&format!("Written to {}", report.display())),
        "says where: {stdout}"
    );
    stdout
}

/// The part of testdrive's report about pull request `number`.
fn pull_section(report: &str, number: u64) -> &str {
    let start = report
        .find(&format!("Pull request #{number}: "))
        .unwrap_or_else(|| panic!("no pull request #{number}: {report}"));
    let rest = &report[start..];
    let end = rest
        .find("\n══ Pull request #")
        .or_else(|| rest.find("Requests the bot made"))
        .unwrap_or(rest.len());
    &rest[..end]
}

const HELM_LEFT_OUT: &str =
    "Left out: the Helm chart example (no helm found). Put helm on PATH or pass `--helm PATH`";

#[test]
fn testdrive_reviews_a_pull_request_and_leaves_nothing_behind() {
    let stdout = testdrive(&[], None);
    assert!(stdout.contains("202 Accepted"), "{stdout}");
    let shop = pull_section(&stdout, 1);
    assert!(shop.contains("Check run \"kubeward\""), "{stdout}");
    assert!(
        shop.contains(": failure"),
        "the example PR makes the check fail: {stdout}"
    );
    assert!(
        shop.contains("runAsPrivileged") && shop.contains("```suggestion"),
        "{stdout}"
    );
    assert!(shop.contains("Owned by"), "{stdout}");
    assert!(
        !stdout.contains("not-a-real-token"),
        "a secret value leaked: {stdout}"
    );
}

/// With helm, the chart example's values change is reviewed by rendering the chart: the
/// finding, which the template's line holds, is said on the values line that caused it, with
/// that line set back as the fix.
#[test]
fn testdrive_reviews_the_chart_example_on_its_values_line_when_helm_is_there() {
    let Some(helm) = crate::render::helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    let values = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/testdrive/web/values-pull-request.yaml"),
    )
    .expect("the example's values");
    let line = values
        .lines()
        .position(|l| l.trim() == "privileged: true")
        .expect("the example sets privileged")
        + 1;
    // An empty PATH: the chart example must come from --helm.
    let empty = tempfile::tempdir().expect("temp");
    let stdout = testdrive(&["--helm".as_ref(), helm.as_os_str()], Some(empty.path()));
    assert!(!stdout.contains("Left out"), "{stdout}");
    assert!(
        stdout.starts_with("kubeward testdrive: pull requests #1 and #2 of example/shop"),
        "{stdout}"
    );
    let chart = pull_section(&stdout, 2);
    assert!(chart.contains(": failure"), "{chart}");
    assert!(
        chart.contains("Owned by `@\u{200b}example/web-team`"),
        "{chart}"
    );
    let comments = chart
        .split_once("── Review comments (1) ")
        .unwrap_or_else(|| panic!("one review comment: {chart}"))
        .1;
    let header = format!("charts/web/values.yaml line {line}:");
    assert!(comments.contains(&header), "said on {header}: {chart}");
    assert!(comments.contains("runAsPrivileged"), "{chart}");
    assert!(
        comments.contains("```suggestion\n  privileged: false\n```"),
        "{chart}"
    );
    // The manifest example is there too, unchanged.
    assert!(
        pull_section(&stdout, 1).contains("runAsPrivileged"),
        "{stdout}"
    );
    assert!(
        stdout.contains("POST /repos/example/shop/pulls/2/reviews"),
        "{stdout}"
    );
}

/// Without helm the chart example is left out, one line says how to get it, and the other
/// example is reviewed as ever. A --helm that names no file is refused.
#[test]
fn testdrive_without_helm_says_how_to_get_it_and_reviews_the_rest() {
    let empty = tempfile::tempdir().expect("temp");
    let stdout = testdrive(&[], Some(empty.path()));
    assert_eq!(
        stdout.lines().filter(|l| l.contains(HELM_LEFT_OUT)).count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout.starts_with("kubeward testdrive: pull request #1 of example/shop"),
        "{stdout}"
    );
    assert!(!stdout.contains("Pull request #2"), "{stdout}");
    assert!(!stdout.contains("charts/web"), "{stdout}");
    assert!(!stdout.contains("/pulls/2"), "{stdout}");
    let shop = pull_section(&stdout, 1);
    assert!(
        shop.contains(": failure") && shop.contains("runAsPrivileged"),
        "{stdout}"
    );
    assert!(
        stdout.contains("POST /repos/example/shop/pulls/1/reviews"),
        "{stdout}"
    );

    let missing = empty.path().join("helm");
    let out = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .arg("testdrive")
        .arg("--helm")
        .arg(&missing)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("--helm {}: no such file", missing.display())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
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
