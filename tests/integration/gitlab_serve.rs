//! `kubeward serve` with only a `gitlab:` section: secrets from the environment, the GitLab
//! route wired, GitHub's absent, and no secret in any output.

use crate::support::free_port;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "glpat-serve-test-token-value";
const HOOK_SECRET: &str = "serve-test-hook-secret";

fn settings(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("serve.yaml");
    let text = format!(
        "listen: 127.0.0.1:{port}
database: sqlite://{db}
cacheDir: {cache}
workers: 1
gitlab:
  instanceUrl: http://127.0.0.1:9
  botUsername: kubeward-bot
  projects:
    - id: 4242
      secretEnv: SHOP_HOOK_SECRET
",
        db = dir.join("queue.db").display(),
        cache = dir.join("cache").display(),
    );
    std::fs::write(&path, text).expect("settings");
    path
}

fn serve(config: &std::path::Path, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubeward"));
    command
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("KUBEWARD_GITLAB_TOKEN")
        .env_remove("SHOP_HOOK_SECRET")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("kubeward serve")
}

fn output(mut child: Child) -> String {
    let _ = child.kill();
    let _ = child.wait();
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    text
}

#[tokio::test]
async fn serve_runs_with_gitlab_alone() {
    let dir = tempfile::tempdir().expect("temp");
    let port = free_port();
    let config = settings(dir.path(), port);
    let child = serve(
        &config,
        &[
            ("KUBEWARD_GITLAB_TOKEN", TOKEN),
            ("SHOP_HOOK_SECRET", HOOK_SECRET),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |token: &str| {
        http.post(format!("{base}/webhooks/gitlab"))
            .header("x-gitlab-event", "Pipeline Hook")
            .header("x-gitlab-token", token)
            .header("idempotency-key", "serve-1")
            .body(r#"{"object_kind":"pipeline","project":{"id":4242}}"#)
            .send()
    };
    let refused = post("wrong").await.expect("answered");
    assert_eq!(refused.status().as_u16(), 401);
    let ignored = post(HOOK_SECRET).await.expect("answered");
    assert_eq!(
        ignored.status().as_u16(),
        200,
        "ignored events are acknowledged"
    );
    let github = http
        .post(format!("{base}/webhooks/github"))
        .body("{}")
        .send()
        .await
        .expect("answered");
    assert_eq!(github.status().as_u16(), 404, "GitHub is not configured");
    let logs = output(child);
    assert!(logs.contains("kubeward is serving"), "{logs}");
    assert!(
        !logs.contains(TOKEN) && !logs.contains(HOOK_SECRET),
        "a secret reached the logs:\n{logs}"
    );
}

/// Waits for a process that should stop by itself, then its output.
fn exited(mut child: Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    output(child)
}

#[test]
fn missing_gitlab_secrets_stop_start_up_naming_what_is_missing() {
    let dir = tempfile::tempdir().expect("temp");
    let config = settings(dir.path(), free_port());
    let no_token = exited(serve(&config, &[("SHOP_HOOK_SECRET", HOOK_SECRET)]));
    assert!(no_token.contains("KUBEWARD_GITLAB_TOKEN"), "{no_token}");
    let no_secret = exited(serve(&config, &[("KUBEWARD_GITLAB_TOKEN", TOKEN)]));
    assert!(no_secret.contains("SHOP_HOOK_SECRET"), "{no_secret}");
    assert!(!no_secret.contains(TOKEN), "{no_secret}");
}
