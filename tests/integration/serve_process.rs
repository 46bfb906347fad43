//! `kubeward serve` as a process: health, readiness and metrics, JSON logs that carry the
//! delivery id and never a secret, and a graceful shutdown that finishes or re-queues the job
//! in flight.

use crate::github_bot::{
    POLICY, Upstream as Repository, deployment_named, pull, pull_request_payload, push_payload,
};
use crate::support;
use crate::support::free_port;
use crate::support::git_http;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::mock_github::MockGitHub;
use kubeward::git::build;
use kubeward::server::github::github_signature;
use serde_json::{Value, json};

const SECRET: &str = "serve-process-secret";
const TOKEN: &str = "ghs_serve.process.token.value";
const BOT: &str = "kubeward[bot]";

struct Served {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(api: &str, git: &str) -> Served {
    serve_with(api, git, "").await
}

/// `serve` with more top-level settings lines.
async fn serve_with(api: &str, git: &str, extra: &str) -> Served {
    let dir = tempfile::tempdir().expect("temp");
    let port = free_port();
    let settings = dir.path().join("serve.yaml");
    std::fs::write(
        &settings,
        format!(
            "listen: 127.0.0.1:{port}\ndatabase: sqlite://{}\ncacheDir: {}\nworkers: 1\nlogFormat: json\n{extra}github:\n  apiUrl: {api}\n  gitUrl: {git}\n  botLogin: '{BOT}'\n",
            dir.path().join("queue.db").display(),
            dir.path().join("cache").display()
        ),
    )
    .expect("settings");
    let child = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .args(["serve", "--config"])
        .arg(&settings)
        .env("KUBEWARD_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("KUBEWARD_GITHUB_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/readyz")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "serve never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Served { child, url, dir }
}

async fn deliver(url: &str, delivery: &str, secret: &str, payload: &Value) -> u16 {
    deliver_event(url, "pull_request", delivery, secret, payload).await
}

async fn deliver_event(
    url: &str,
    event: &str,
    delivery: &str,
    secret: &str,
    payload: &Value,
) -> u16 {
    let body = serde_json::to_vec(payload).expect("json");
    reqwest::Client::new()
        .post(format!("{url}/webhooks/github"))
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", github_signature(secret, &body))
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn opened(base: git2::Oid, head: git2::Oid) -> Value {
    let mut payload = support::npm::webhook_example("pull_request", Some("opened"))
        .payload
        .clone();
    payload["number"] = json!(7);
    payload["installation"] = json!({"id": 77});
    payload["repository"]["id"] = json!(4242);
    payload["repository"]["name"] = json!("shop");
    payload["repository"]["owner"]["login"] = json!("octo");
    payload["pull_request"] = json!({
        "number": 7, "state": "open", "draft": false,
        "head": {"sha": head.to_string(), "ref": "f", "repo": {"id": 4242}},
        "base": {"sha": base.to_string(), "ref": "main", "repo": {"id": 4242}},
    });
    payload
}

struct Upstream {
    _dir: tempfile::TempDir,
    git: git_http::GitHttpServer,
    base: git2::Oid,
    head: git2::Oid,
}

async fn upstream(mock: &MockGitHub) -> Upstream {
    let dir = tempfile::tempdir().expect("temp");
    let repo = git2::Repository::init_bare(dir.path().join("octo/shop.git")).expect("init");
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[("README.md", b"x\n")],
        "base",
    )
    .expect("base");
    let pod = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: 'a:1'}]\n";
    let head = build::commit(
        &repo,
        Some("refs/pull/7/head"),
        &[base],
        &[("README.md", b"x\n"), ("pod.yaml", pod)],
        "pr",
    )
    .expect("head");
    mock.fake.add_pull(
        7,
        json!({
            "number": 7, "state": "open", "draft": false,
            "head": {"sha": head.to_string(), "ref": "f", "repo": {"id": 4242}},
            "base": {"sha": base.to_string(), "ref": "main", "repo": {"id": 4242}},
        }),
    );
    mock.fake
        .set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());
    let git = git_http::serve(dir.path().to_path_buf(), Some(TOKEN)).await;
    Upstream {
        _dir: dir,
        git,
        base,
        head,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_json_logs_carry_what_operators_need_and_no_secret() {
    let mock = MockGitHub::start(BOT, TOKEN).await;
    let up = upstream(&mock).await;
    let mut served = serve(&mock.uri(), &up.git.base_url).await;
    assert_eq!(
        reqwest::get(format!("{}/healthz", served.url))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        200
    );
    // A forged delivery: refused, and not recorded as seen.
    assert_eq!(
        deliver(
            &served.url,
            "forged-1",
            "not the secret",
            &opened(up.base, up.head)
        )
        .await,
        401
    );
    assert_eq!(
        deliver(&served.url, "real-1", SECRET, &opened(up.base, up.head)).await,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !mock
        .fake
        .check_runs()
        .iter()
        .any(|r| r["status"] == "completed")
    {
        assert!(Instant::now() < deadline, "the review did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = reqwest::get(format!("{}/metrics", served.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "kubeward_signature_failures_total",
        "kubeward_deliveries_total",
        "kubeward_queue_depth",
        "kubeward_queue_oldest_age_seconds",
        "kubeward_job_duration_seconds",
        "kubeward_forge_requests_total",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("stage=\"publish\""),
        "per-stage durations: {metrics}"
    );
    assert!(
        metrics.contains("# TYPE kubeward_job_duration_seconds histogram")
            && metrics.contains("kubeward_job_duration_seconds_bucket{"),
        "durations are histograms, which add up across replicas: {metrics}"
    );
    // The forged delivery id never reached the database.
    let queue = kubeward::queue::Queue::connect(&format!(
        "sqlite://{}",
        served.dir.path().join("queue.db").display()
    ))
    .await
    .expect("queue");
    assert!(
        !queue
            .delivery_seen("github", "forged-1")
            .await
            .expect("query")
    );
    assert!(
        queue
            .delivery_seen("github", "real-1")
            .await
            .expect("query")
    );
    // Logs: JSON lines, the delivery id on the job's lines, never the token or the secret.
    let _ = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status();
    let output = served.child.wait_with_output_ref();
    let logs = String::from_utf8_lossy(&output);
    assert!(
        !logs.contains(TOKEN) && !logs.contains(SECRET),
        "a secret reached the logs"
    );
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "JSON logs: {logs}");
    assert!(
        lines
            .iter()
            .any(|l| l.to_string().contains("real-1") && l.to_string().contains("published")),
        "the job's lines carry the delivery id: {logs}"
    );
    // The intake's lines name the repository and pull request too, like the worker's.
    let queued = lines
        .iter()
        .find(|l| l["fields"]["message"] == "queued" && l.to_string().contains("real-1"))
        .unwrap_or_else(|| panic!("a queued line for real-1: {logs}"));
    let text = queued.to_string();
    assert!(
        text.contains("\"repo\":4242") && text.contains("\"pr\":7"),
        "{queued:#}"
    );
    mock.assert_requests_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_finishes_or_requeues_the_job_in_flight() {
    let mock = MockGitHub::start(BOT, TOKEN).await;
    let up = upstream(&mock).await;
    // Hold the review in publishing for longer than the process takes to shut down.
    *mock.slow.lock().expect("lock") = Some(("/pulls/7/comments".into(), Duration::from_secs(40)));
    let mut served = serve(&mock.uri(), &up.git.base_url).await;
    assert_eq!(
        deliver(&served.url, "d-1", SECRET, &opened(up.base, up.head)).await,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !mock
        .fake
        .request_log()
        .iter()
        .any(|r| r.contains("/pulls/7/comments"))
    {
        assert!(
            Instant::now() < deadline,
            "the review never reached publishing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status();
    let status = loop {
        if let Some(status) = served.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(35),
            "serve did not stop within its grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean exit: {status:?}");
    let queue = kubeward::queue::Queue::connect(&format!(
        "sqlite://{}",
        served.dir.path().join("queue.db").display()
    ))
    .await
    .expect("queue");
    let stats = queue.stats(kubeward::queue::now_ms()).await.expect("stats");
    assert_eq!(stats.running, 0, "nothing left running: {stats:?}");
    assert_eq!(
        stats.queued, 1,
        "the job went back to the queue for the next start: {stats:?}"
    );
}

trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> Vec<u8>;
}

impl WaitOutput for Child {
    /// Waits for the process and returns what it wrote to stdout and stderr.
    fn wait_with_output_ref(&mut self) -> Vec<u8> {
        use std::io::Read;
        let _ = self.wait();
        let mut out = Vec::new();
        if let Some(mut s) = self.stdout.take() {
            let _ = s.read_to_end(&mut out);
        }
        if let Some(mut s) = self.stderr.take() {
            let _ = s.read_to_end(&mut out);
        }
        out
    }
}

/// A pull request whose YAML expands past the review process's memory: the review process
/// dies, `serve` does not. Its check fails saying why, at once (no crash loop), and the next
/// pull request is reviewed as usual by the same server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_that_exhausts_memory_takes_down_its_own_process_only() {
    let mock = MockGitHub::start(BOT, TOKEN).await;
    let dir = tempfile::tempdir().expect("temp");
    let repo = git2::Repository::init_bare(dir.path().join("octo/shop.git")).expect("init");
    // The base branch's policy lets aliases expand (its writers' choice): only the memory limit
    // of the review process stands in the way.
    let policy: &[u8] = b"limits:\n  maxAliasNodes: 2000000000\n  maxFileNodes: 2000000000\n  maxFileScalarBytes: 100000000000\n";
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[("README.md", b"x\n"), (".kubeward.yaml", policy)],
        "base",
    )
    .expect("base");
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for level in 1..9 {
        let prev = level - 1;
        bomb.push_str(&format!(
            "  l{level}: &l{level} [*l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}]\n"
        ));
    }
    let pod = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: 'a:1'}]\n";
    let heads: Vec<git2::Oid> = [("bomb.yaml", bomb.as_bytes()), ("pod.yaml", &pod[..])]
        .iter()
        .enumerate()
        .map(|(i, (name, text))| {
            build::commit(
                &repo,
                Some(&format!("refs/pull/{}/head", 7 + i)),
                &[base],
                &[
                    ("README.md", b"x\n"),
                    (".kubeward.yaml", policy),
                    (name, text),
                ],
                "pr",
            )
            .expect("head")
        })
        .collect();
    for (i, head) in heads.iter().enumerate() {
        let number = 7 + i as u64;
        mock.fake.add_pull(
            number,
            json!({
                "number": number, "state": "open", "draft": false,
                "head": {"sha": head.to_string(), "ref": format!("f{number}"), "repo": {"id": 4242}},
                "base": {"sha": base.to_string(), "ref": "main", "repo": {"id": 4242}},
            }),
        );
        mock.fake
            .set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());
    }
    let git = git_http::serve(dir.path().to_path_buf(), Some(TOKEN)).await;
    let mut served = serve_with(
        &mock.uri(),
        &git.base_url,
        "review:\n  memoryLimitBytes: 268435456\n",
    )
    .await;
    let concluded = |number: u64| {
        let head = heads[(number - 7) as usize].to_string();
        mock.fake
            .check_runs()
            .into_iter()
            .find(|r| r["head_sha"] == head.as_str() && r["status"] == "completed")
    };
    for (i, head) in heads.iter().enumerate() {
        let mut payload = opened(base, *head);
        payload["number"] = json!(7 + i);
        payload["pull_request"]["number"] = json!(7 + i);
        assert_eq!(
            deliver(&served.url, &format!("oom-{i}"), SECRET, &payload).await,
            202
        );
        let deadline = Instant::now() + Duration::from_secs(90);
        while concluded(7 + i as u64).is_none() {
            assert!(
                Instant::now() < deadline,
                "pull request {} not concluded",
                7 + i
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let bomb_check = concluded(7).expect("concluded");
    assert_eq!(bomb_check["conclusion"], "failure", "{bomb_check:#}");
    assert!(
        bomb_check["output"]["title"]
            .as_str()
            .is_some_and(|t| t.contains("ran out of memory")),
        "{bomb_check:#}"
    );
    let pod_check = concluded(8).expect("concluded");
    assert_eq!(
        pod_check["conclusion"], "failure",
        "hostNetwork: {pod_check:#}"
    );
    assert!(
        pod_check["output"]["title"]
            .as_str()
            .is_some_and(|t| t.contains("new problem")),
        "{pod_check:#}"
    );
    // The same server process answered throughout, and still does.
    assert!(
        served.child.try_wait().expect("status").is_none(),
        "serve is still running"
    );
    assert_eq!(
        reqwest::get(format!("{}/healthz", served.url))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        200
    );
    assert_eq!(
        mock.fake.check_runs().len(),
        2,
        "one check run each: no crash loop"
    );
    mock.assert_requests_valid();
}

/// Waits until the queue at `file` has no job queued or running.
async fn settled(queue: &kubeward::queue::Queue) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stats = queue.stats(kubeward::queue::now_ms()).await.expect("stats");
        if stats.queued == 0 && stats.running == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "jobs did not finish: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The platform team's pages as a real `kubeward serve` serves them on its own dashboard
/// listener, filled by its own workers from signed deliveries through the stand-in GitHub: a
/// pull request reviewed and merged with its new danger finding (escaped), the push of the
/// merge (a reviewed snapshot) and a direct push nobody reviewed (unreviewed findings), with
/// two owning teams. A platform user browses every page; a team lead sees only their team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_of_a_real_serve_shows_what_its_reviews_and_pushes_stored() {
    let mock = MockGitHub::start(BOT, TOKEN).await;
    let upstream = Repository::new();
    let privileged = "            privileged: true\n";
    let owners = "/apps/shop/ @octo/shop-team\n/apps/cart/ @octo/cart-team\n";
    let policy =
        format!("{POLICY}environments:\n  prod-eu: apps/shop\n  staging: [apps/shop, apps/cart]\n");
    let commit = |reference: &str, parents: &[git2::Oid], shop: &str, cart: Option<&str>| {
        let shop = deployment_named("shop", shop, 2);
        let cart = cart.map(|extra| deployment_named("cart", extra, 2));
        let mut files = vec![
            (".kubeward.yaml", policy.as_str()),
            (".github/CODEOWNERS", owners),
            ("apps/shop/deployment.yaml", shop.as_str()),
        ];
        if let Some(cart) = &cart {
            files.push(("apps/cart/deployment.yaml", cart.as_str()));
        }
        upstream.commit(reference, parents, &files)
    };
    let base = commit("refs/heads/main", &[], "", Some(""));
    let head = commit("refs/pull/7/head", &[base], privileged, Some(""));
    mock.fake.add_pull(7, pull(7, base, head));
    mock.fake
        .set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());
    let git = git_http::serve(upstream.served.clone(), Some(TOKEN)).await;
    let dashboard = format!("http://127.0.0.1:{}", free_port());
    let served = serve_with(
        &mock.uri(),
        &git.base_url,
        &format!(
            "dashboard:
  listen: {}
  trustedHeaders:
    fromCidrs: ['127.0.0.1/32']
  access:
    - groups: [platform]
      teams: ['*']
    - users: [lead]
      teams: ['@octo/shop-team']
",
            dashboard.trim_start_matches("http://")
        ),
    )
    .await;
    let queue = kubeward::queue::Queue::connect(&format!(
        "sqlite://{}",
        served.dir.path().join("queue.db").display()
    ))
    .await
    .expect("queue");
    let send = |event: &'static str, delivery: &'static str, payload: Value| {
        let url = served.url.clone();
        async move { deliver_event(&url, event, delivery, SECRET, &payload).await }
    };

    assert_eq!(
        send(
            "pull_request",
            "open-7",
            pull_request_payload("opened", 7, base, head)
        )
        .await,
        202
    );
    settled(&queue).await;
    let merge = commit("refs/heads/main", &[base, head], privileged, Some(""));
    let mut closed = pull_request_payload("closed", 7, base, head);
    closed["pull_request"]["state"] = json!("closed");
    closed["pull_request"]["merged"] = json!(true);
    closed["pull_request"]["merge_commit_sha"] = json!(merge.to_string());
    assert_eq!(send("pull_request", "close-7", closed).await, 200);
    assert_eq!(
        send("push", "push-merge", push_payload("main", merge)).await,
        202
    );
    settled(&queue).await;
    let direct = commit("refs/heads/main", &[merge], privileged, Some(privileged));
    assert_eq!(
        send("push", "push-direct", push_payload("main", direct)).await,
        202
    );
    settled(&queue).await;
    let snapshots = queue.snapshots("github", 4242).await.expect("snapshots");
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert!(
        snapshots[0].reviewed && !snapshots[1].reviewed,
        "{snapshots:?}"
    );

    crate::dashboard_pages::browse_every_page(
        &dashboard,
        "@octo/shop-team",
        &[
            "@octo/shop-team",
            "@octo/cart-team",
            "octo/shop",
            "escaped in 30 days",
            "unreviewed",
            "prod-eu",
            "staging",
        ],
    )
    .await;
    crate::dashboard_pages::browse_as_team_lead(
        &dashboard,
        "@octo/shop-team",
        &["@octo/cart-team"],
    )
    .await;
    mock.assert_requests_valid();
}
