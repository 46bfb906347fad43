//! End to end: the real server on 127.0.0.1, real workers, a real git server with real
//! repositories, and a mock GitHub (wiremock, backed by the in-memory fake) that records every
//! request. Every request the bot sends is checked against GitHub's published OpenAPI
//! description and the documented limits.

use crate::support;
use crate::support::git_http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kubeward::bot::github::{BotSettings, GitHubWorker};
use kubeward::bot::serve::HttpsGit;
use kubeward::forge::Secret;
use kubeward::forge::github::api::GitHubApi;
use kubeward::forge::github::client::{
    GitHubAuth, GitHubClient, GitHubClientConfig, RetryPolicy, WriteLimits,
};
use kubeward::forge::github::fake::{FakeGitHub, Snapshot};
use kubeward::git::build;
use kubeward::git::cache::GitCache;
use kubeward::queue::Queue;
use kubeward::server::github::github_signature;
use kubeward::server::{AppState, GitHubHooks, router};
use serde_json::{Value, json};
use tokio::sync::watch;

const SECRET: &str = "webhook-secret-for-tests";
const TOKEN: &str = "ghs_stateless.token.that.is.long.and.has.dots.0123456789abcdef";
const BOT: &str = "kubeward[bot]";

struct Bot {
    url: String,
    fake: Arc<FakeGitHub>,
    mock: support::mock_github::MockGitHub,
    queue: Queue,
    stop: watch::Sender<bool>,
    _git: git_http::GitHttpServer,
    _dirs: Vec<tempfile::TempDir>,
}

pub(crate) struct Upstream {
    repo: git2::Repository,
    _dir: tempfile::TempDir,
    pub(crate) served: std::path::PathBuf,
}

impl Upstream {
    pub(crate) fn new() -> Upstream {
        let dir = tempfile::tempdir().expect("temp");
        let repo = git2::Repository::init_bare(dir.path().join("octo/shop.git")).expect("init");
        Upstream {
            served: dir.path().to_path_buf(),
            repo,
            _dir: dir,
        }
    }

    pub(crate) fn commit(
        &self,
        reference: &str,
        parents: &[git2::Oid],
        files: &[(&str, &str)],
    ) -> git2::Oid {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
        build::commit(&self.repo, Some(reference), parents, &files, "commit").expect("commit")
    }
}

async fn start(upstream: &Upstream) -> Bot {
    start_with_workers(upstream, 2).await
}

/// The bot with `workers` workers (none: deliveries are queued and stay so).
async fn start_with_workers(upstream: &Upstream, workers: usize) -> Bot {
    let mock = support::mock_github::MockGitHub::start(BOT, TOKEN).await;
    let fake = mock.fake.clone();
    let git = git_http::serve(upstream.served.clone(), Some(TOKEN)).await;
    let data = tempfile::tempdir().expect("temp");
    let queue = Queue::connect(&format!(
        "sqlite://{}",
        data.path().join("queue.db").display()
    ))
    .await
    .expect("queue");
    let client = Arc::new(
        GitHubClient::new(GitHubClientConfig {
            api_base_url: mock.uri(),
            auth: GitHubAuth::Token(Secret::new(TOKEN)),
            user_agent: "kubeward-tests".into(),
            retry: RetryPolicy {
                base_delay: Duration::from_millis(5),
                ..RetryPolicy::default()
            },
            limits: WriteLimits {
                min_spacing: Duration::from_millis(1),
                ..WriteLimits::default()
            },
        })
        .expect("client"),
    );
    let worker = Arc::new(GitHubWorker {
        api: client.clone() as Arc<dyn GitHubApi>,
        git: Arc::new(HttpsGit {
            base_url: git.base_url.clone(),
            client,
        }),
        cache: Arc::new(GitCache::new(data.path().join("cache"), 1 << 30)),
        settings: BotSettings {
            bot_login: BOT.into(),
            review_drafts: false,
            host: "github.test".into(),
            details_url: None,
            review: crate::support::review_limits(100, Duration::from_secs(60)),
            max_annotations: kubeward::forge::github::publish::DEFAULT_MAX_ANNOTATIONS,
        },
    });
    let runners: kubeward::bot::worker::Runners =
        std::sync::Arc::new(std::collections::HashMap::from([(
            "github".to_owned(),
            worker.clone() as std::sync::Arc<dyn kubeward::bot::runner::JobRunner>,
        )]));
    let (stop, stop_rx) = watch::channel(false);
    crate::support::spawn_workers(&queue, &runners, workers, &stop_rx);
    let state = AppState {
        queue: queue.clone(),
        github: Some(GitHubHooks {
            secrets: vec![Secret::new(SECRET)],
            app_id: None,
            bot_login: BOT.into(),
        }),
        metrics: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let mut server_stop = stop_rx.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(state, 64 * 1024, Duration::from_secs(5)))
            .with_graceful_shutdown(async move {
                let _ = server_stop.changed().await;
            })
            .await;
    });
    Bot {
        url,
        fake,
        mock,
        queue,
        stop,
        _git: git,
        _dirs: vec![data],
    }
}

impl Bot {
    async fn deliver(&self, event: &str, delivery: &str, payload: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(payload).expect("json");
        let response = reqwest::Client::new()
            .post(format!("{}/webhooks/github", self.url))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", github_signature(SECRET, &body))
            .body(body)
            .send()
            .await
            .expect("delivered");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until every queued job is finished.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stats = self
                .queue
                .stats(kubeward::queue::now_ms())
                .await
                .expect("stats");
            if stats.queued == 0 && stats.running == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "jobs did not finish: {stats:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn assert_requests_valid(&self) {
        self.mock.assert_requests_valid();
    }
}

/// GitHub's own example payload for `event`/`action`, pointed at our repository and PR.
pub(crate) fn pull_request_payload(
    action: &str,
    number: u64,
    base: git2::Oid,
    head: git2::Oid,
) -> Value {
    let example = support::npm::webhook_example("pull_request", Some(action));
    let mut payload = example.payload.clone();
    payload["number"] = json!(number);
    payload["installation"] = json!({"id": 77});
    payload["repository"]["id"] = json!(4242);
    payload["repository"]["name"] = json!("shop");
    payload["repository"]["full_name"] = json!("octo/shop");
    payload["repository"]["owner"]["login"] = json!("octo");
    let pr = &mut payload["pull_request"];
    pr["number"] = json!(number);
    pr["draft"] = json!(false);
    pr["state"] = json!("open");
    pr["head"]["sha"] = json!(head.to_string());
    pr["head"]["repo"]["id"] = json!(4242);
    pr["base"]["sha"] = json!(base.to_string());
    pr["base"]["ref"] = json!("main");
    payload
}

pub(crate) fn pull(number: u64, base: git2::Oid, head: git2::Oid) -> Value {
    json!({
        "number": number, "state": "open", "draft": false,
        "head": {"sha": head.to_string(), "ref": "feature", "repo": {"id": 4242}},
        "base": {"sha": base.to_string(), "ref": "main", "repo": {"id": 4242}},
    })
}

fn comment_payload(number: u64, body: &str, login: &str, kind: &str) -> Value {
    let example = support::npm::webhook_example("issue_comment", Some("created"));
    let mut payload = example.payload.clone();
    payload["installation"] = json!({"id": 77});
    payload["repository"]["id"] = json!(4242);
    payload["repository"]["name"] = json!("shop");
    payload["repository"]["owner"]["login"] = json!("octo");
    payload["issue"]["number"] = json!(number);
    payload["issue"]["pull_request"] =
        json!({"url": "https://api.github.com/repos/octo/shop/pulls/7"});
    payload["comment"]["id"] = json!(555);
    payload["comment"]["body"] = json!(body);
    payload["comment"]["user"]["login"] = json!(login);
    payload["comment"]["user"]["type"] = json!(kind);
    payload["comment"]["performed_via_github_app"] = Value::Null;
    payload
}

const OWNERS: &str = "*.yaml @octo/platform\n/apps/ @octo/shop-team\n";

fn deployment(extra_container_lines: &str, replicas: u32) -> String {
    deployment_named("shop", extra_container_lines, replicas)
}

pub(crate) fn deployment_named(name: &str, extra_container_lines: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: shop
  labels: {{app.kubernetes.io/instance: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      securityContext:
        runAsNonRoot: true
      containers:
        - name: web
          image: shop:1.0
          resources:
            limits: {{cpu: 100m, memory: 128Mi}}
          readinessProbe:
            httpGet: {{path: /, port: 8080}}
          securityContext:
            allowPrivilegeEscalation: false
{extra_container_lines}"
    )
}

pub(crate) const POLICY: &str = "rules:\n  priorityClassNotSet: ignore\n  topologySpreadConstraint: ignore\n  missingNetworkPolicy: ignore\n  missingPodDisruptionBudget: ignore\n  automountServiceAccountToken: ignore\n  linuxHardening: ignore\n  pullPolicyNotAlways: ignore\n  insecureCapabilities: ignore\n  notReadOnlyRootFilesystem: ignore\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_request_is_reviewed_once_rescans_add_nothing_and_fixes_are_marked() {
    let upstream = Upstream::new();
    let commit = |reference: &str, parents: &[git2::Oid], shop: &str, cart: &str| {
        upstream.commit(
            reference,
            parents,
            &[
                (".kubeward.yaml", POLICY),
                (".github/CODEOWNERS", OWNERS),
                ("apps/shop.yaml", shop),
                ("apps/cart.yaml", cart),
            ],
        )
    };
    let privileged = "            privileged: true\n";
    // main already lacks a liveness probe (pre-existing) and runs shop with hostNetwork.
    let base = commit(
        "refs/heads/main",
        &[],
        &deployment("", 2).replace(
            "      securityContext:\n        runAsNonRoot",
            "      hostNetwork: true\n      securityContext:\n        runAsNonRoot",
        ),
        &deployment_named("cart", "", 2),
    );
    // The PR removes hostNetwork (a fix) and makes both containers privileged (two new
    // findings).
    let head_shop = deployment(privileged, 2);
    let head_cart = deployment_named("cart", privileged, 2);
    let head = commit("refs/pull/7/head", &[base], &head_shop, &head_cart);
    let bot = start(&upstream).await;
    bot.fake.add_pull(7, pull(7, base, head));
    bot.fake
        .set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());
    bot.fake.set_permission("maintainer", "maintain");
    bot.fake.set_permission("reader", "read");

    // Unsigned and forged deliveries are refused and queue nothing.
    let forged = reqwest::Client::new()
        .post(format!("{}/webhooks/github", bot.url))
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "forged")
        .header(
            "x-hub-signature-256",
            github_signature("wrong secret", b"{}"),
        )
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status().as_u16(), 401);
    let too_big = reqwest::Client::new()
        .post(format!("{}/webhooks/github", bot.url))
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "big")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .expect("sent");
    assert_eq!(too_big.status().as_u16(), 413);

    let opened = pull_request_payload("opened", 7, base, head);
    let (status, answer) = bot.deliver("pull_request", "d-1", &opened).await;
    assert_eq!(status, 202, "{answer}");
    bot.settle().await;

    // One review comment on each privileged line, with a suggestion; owners in the summary.
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).expect("line") + 1;
    let comment_on = |path: &str| {
        let found: Vec<Value> = bot
            .fake
            .review_comments()
            .into_iter()
            .filter(|c| c["path"] == path)
            .collect();
        found
    };
    assert_eq!(bot.fake.review_comments().len(), 2);
    for (path, text) in [
        ("apps/shop.yaml", &head_shop),
        ("apps/cart.yaml", &head_cart),
    ] {
        let comments = comment_on(path);
        assert_eq!(comments.len(), 1, "{path}: {comments:#?}");
        assert_eq!(comments[0]["line"], line_of(text, "privileged: true"));
        assert_eq!(comments[0]["side"], "RIGHT");
        let body = comments[0]["body"].as_str().expect("body");
        assert!(
            body.contains("runAsPrivileged") && body.contains("```suggestion"),
            "{body}"
        );
    }
    let shop_comment = comment_on("apps/shop.yaml")[0]["id"].as_u64().expect("id");
    let cart_comment = comment_on("apps/cart.yaml")[0].clone();
    let runs = bot.fake.check_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["conclusion"], "failure");
    assert_eq!(runs[0]["name"], "kubeward");
    let summary = runs[0]["output"]["summary"].as_str().expect("summary");
    assert!(summary.contains("shop-team"), "{summary}");
    assert!(
        summary.contains("| Fixed | 1 |"),
        "hostNetworkSet was fixed: {summary}"
    );
    assert_eq!(bot.fake.issue_comments().len(), 1, "one summary comment");
    let once: Snapshot = bot.fake.snapshot();

    // The same delivery again: deduplicated, nothing queued.
    let (status, answer) = bot.deliver("pull_request", "d-1", &opened).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    // A rescan by a maintainer: the PR ends exactly as after one run.
    let (status, _) = bot
        .deliver(
            "issue_comment",
            "d-2",
            &comment_payload(7, "/kubeward rescan", "maintainer", "User"),
        )
        .await;
    assert_eq!(status, 202);
    bot.settle().await;
    assert_eq!(
        bot.fake.snapshot(),
        once,
        "a rescan changes nothing on the PR"
    );
    // A rescan by a reader, or by a bot, does nothing.
    let seen = bot.fake.request_log().len();
    bot.deliver(
        "issue_comment",
        "d-3",
        &comment_payload(7, "/kubeward rescan", "reader", "User"),
    )
    .await;
    bot.settle().await;
    let after_reader = bot.fake.request_log()[seen..].to_vec();
    assert!(
        after_reader
            .iter()
            .any(|r| r.ends_with("/collaborators/reader/permission")),
        "the reader's permission is asked: {after_reader:#?}"
    );
    assert!(
        after_reader
            .iter()
            .all(|r| !r.contains("/pulls") && !r.contains("/check-runs")),
        "and nothing is reviewed: {after_reader:#?}"
    );
    let (status, answer) = bot
        .deliver(
            "issue_comment",
            "d-4",
            &comment_payload(7, "/kubeward rescan", "other[bot]", "Bot"),
        )
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    bot.settle().await;
    assert_eq!(bot.fake.snapshot(), once);

    // A push fixes shop, keeps cart privileged and adds hostPID to cart: the fixed comment
    // says so and its thread is resolved, the kept one is not posted again, the new one is.
    let pushed_cart = deployment_named("cart", privileged, 2).replace(
        "      securityContext:\n        runAsNonRoot",
        "      hostPID: true\n      securityContext:\n        runAsNonRoot",
    );
    let pushed = commit(
        "refs/pull/7/head",
        &[head],
        &deployment("", 3),
        &pushed_cart,
    );
    bot.fake.add_pull(7, pull(7, base, pushed));
    bot.fake
        .set_merge_base(&base.to_string(), &pushed.to_string(), &base.to_string());
    let synchronize = pull_request_payload("synchronize", 7, base, pushed);
    let (status, _) = bot.deliver("pull_request", "d-5", &synchronize).await;
    assert_eq!(status, 202);
    bot.settle().await;
    let shop = comment_on("apps/shop.yaml");
    assert_eq!(shop.len(), 1, "{shop:#?}");
    assert!(
        shop[0]["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("✅ **Fixed**")),
        "{shop:#?}"
    );
    assert!(
        bot.fake.thread_resolved(shop_comment),
        "the fixed finding's thread is resolved"
    );
    let cart = comment_on("apps/cart.yaml");
    assert_eq!(cart.len(), 2, "kept once, new once: {cart:#?}");
    assert!(
        cart.contains(&cart_comment),
        "the kept finding's comment is untouched"
    );
    let host_pid = cart
        .iter()
        .find(|c| c["body"].as_str().is_some_and(|b| b.contains("hostPIDSet")))
        .expect("a comment for the new finding");
    assert_eq!(host_pid["line"], line_of(&pushed_cart, "hostPID: true"));
    assert!(
        !bot.fake
            .thread_resolved(cart_comment["id"].as_u64().expect("id"))
    );
    let runs = bot.fake.check_runs();
    assert_eq!(runs.len(), 2, "one check run per head");
    assert_eq!(runs[1]["conclusion"], "failure");
    assert_eq!(
        bot.fake.issue_comments().len(),
        1,
        "the summary is edited in place"
    );

    // After the push, a redelivery and a rescan leave the PR as it is.
    let after_push = bot.fake.snapshot();
    assert_eq!(
        after_push
            .review_comments
            .iter()
            .filter(|c| c.resolved)
            .count(),
        1
    );
    let (status, answer) = bot.deliver("pull_request", "d-5", &synchronize).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    bot.deliver(
        "issue_comment",
        "d-6",
        &comment_payload(7, "/kubeward rescan", "maintainer", "User"),
    )
    .await;
    bot.settle().await;
    assert_eq!(bot.fake.snapshot(), after_push);

    // shop becomes privileged again: the comment we marked fixed is restored and its thread
    // reopened, not posted a second time.
    let original_shop = bot
        .fake
        .review_comments()
        .into_iter()
        .find(|c| c["id"].as_u64() == Some(shop_comment))
        .expect("shop's comment");
    let again = commit(
        "refs/pull/7/head",
        &[pushed],
        &deployment(privileged, 3),
        &pushed_cart,
    );
    bot.fake.add_pull(7, pull(7, base, again));
    bot.fake
        .set_merge_base(&base.to_string(), &again.to_string(), &base.to_string());
    bot.deliver(
        "pull_request",
        "d-7",
        &pull_request_payload("synchronize", 7, base, again),
    )
    .await;
    bot.settle().await;
    let shop = comment_on("apps/shop.yaml");
    assert_eq!(shop.len(), 1, "not posted twice: {shop:#?}");
    let body = shop[0]["body"].as_str().unwrap_or_default();
    assert!(
        !body.starts_with("✅ **Fixed**") && body.contains("runAsPrivileged"),
        "restored: {body}"
    );
    assert!(
        kubeward::review::render::parse_marker(body).is_some(),
        "it keeps its marker: {body}"
    );
    assert!(
        !bot.fake.thread_resolved(shop_comment),
        "the thread is open again"
    );
    assert_ne!(shop[0]["body"], original_shop["body"]);

    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn threads_people_replied_to_or_resolved_are_left_alone_and_rerequests_get_a_new_run() {
    let upstream = Upstream::new();
    let commit = |reference: &str, parents: &[git2::Oid], extra: &str| {
        upstream.commit(
            reference,
            parents,
            &[
                (".kubeward.yaml", POLICY),
                ("apps/shop.yaml", &deployment(extra, 2)),
                ("apps/cart.yaml", &deployment_named("cart", extra, 2)),
            ],
        )
    };
    let base = commit("refs/heads/main", &[], "");
    let head = commit(
        "refs/pull/7/head",
        &[base],
        "            privileged: true\n",
    );
    let bot = start(&upstream).await;
    bot.fake.add_pull(7, pull(7, base, head));
    bot.fake
        .set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());
    bot.deliver(
        "pull_request",
        "a-1",
        &pull_request_payload("opened", 7, base, head),
    )
    .await;
    bot.settle().await;
    let ours = |path: &str| {
        bot.fake
            .review_comments()
            .into_iter()
            .find(|c| c["path"] == path)
            .expect("our comment")
    };
    // A person replies in the shop thread and resolves the cart thread without a word.
    let replied = ours("apps/shop.yaml");
    let resolved = ours("apps/cart.yaml");
    let replied_id = replied["id"].as_u64().expect("id");
    let resolved_id = resolved["id"].as_u64().expect("id");
    bot.fake.add_review_comment_by(
        "developer",
        Some(replied_id),
        "We need privileged for the GPU driver.",
    );
    bot.fake.resolve_thread(resolved_id);
    // The fix lands: both threads belong to people now, so neither is edited, resolved or
    // unresolved.
    let fixed = commit("refs/pull/7/head", &[head], "");
    bot.fake.add_pull(7, pull(7, base, fixed));
    bot.fake
        .set_merge_base(&base.to_string(), &fixed.to_string(), &base.to_string());
    bot.deliver(
        "pull_request",
        "a-2",
        &pull_request_payload("synchronize", 7, base, fixed),
    )
    .await;
    bot.settle().await;
    assert_eq!(
        ours("apps/shop.yaml"),
        replied,
        "a thread with a reply is untouched"
    );
    assert_eq!(
        ours("apps/cart.yaml"),
        resolved,
        "a resolved thread is untouched"
    );
    assert!(bot.fake.thread_resolved(resolved_id));
    assert!(!bot.fake.thread_resolved(replied_id));
    let thread_writes: Vec<_> = bot
        .fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.body
                .as_ref()
                .and_then(|b| b["query"].as_str())
                .is_some_and(|q| q.contains("ReviewThread("))
        })
        .collect();
    assert!(thread_writes.is_empty(), "{thread_writes:#?}");
    assert!(
        bot.fake.request_log().iter().any(|r| r == "POST /graphql"),
        "resolution was looked up"
    );
    // A re-requested check run (fork PRs list no pull requests) gets a new run.
    let example = support::npm::webhook_example("check_run", Some("rerequested"));
    let mut rerun = example.payload.clone();
    rerun["installation"] = json!({"id": 77});
    rerun["repository"]["id"] = json!(4242);
    rerun["repository"]["name"] = json!("shop");
    rerun["repository"]["owner"]["login"] = json!("octo");
    rerun["check_run"]["name"] = json!("kubeward");
    rerun["check_run"]["head_sha"] = json!(fixed.to_string());
    rerun["check_run"]["pull_requests"] = json!([]);
    rerun["check_run"]["app"] = Value::Null;
    let before = bot.fake.check_runs().len();
    let (status, answer) = bot.deliver("check_run", "a-3", &rerun).await;
    assert_eq!(status, 202, "{answer}");
    bot.settle().await;
    assert_eq!(
        bot.fake.check_runs().len(),
        before + 1,
        "a rerequested check gets a new run"
    );
    // Closing the PR drops queued work.
    let mut closed = pull_request_payload("closed", 7, base, fixed);
    closed["pull_request"]["state"] = json!("closed");
    let (status, _) = bot.deliver("pull_request", "a-4", &closed).await;
    assert_eq!(status, 200);
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// A head can be the head of several pull requests (one branch proposed to two bases), and a
/// fork's head arrives with no pull request at all: a re-requested check runs once per open
/// pull request of its head, each as that PR's work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerequested_checks_run_once_per_pull_request_of_their_head() {
    let upstream = Upstream::new();
    let base = upstream.commit(
        "refs/heads/main",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            ("apps/shop.yaml", &deployment("", 2)),
        ],
    );
    let files = [
        (".kubeward.yaml", POLICY),
        (
            "apps/shop.yaml",
            &deployment("            privileged: true\n", 2) as &str,
        ),
    ];
    let head = upstream.commit("refs/pull/7/head", &[base], &files);
    upstream
        .repo
        .reference("refs/pull/8/head", head, true, "second pull request")
        .expect("ref");
    let bot = start(&upstream).await;
    bot.fake.add_pull(7, pull(7, base, head));
    // Pull request 8 comes from a fork; 9 had the same head but is closed.
    let mut fork = pull(8, base, head);
    fork["head"]["repo"]["id"] = json!(9999);
    bot.fake.add_pull(8, fork);
    let mut closed = pull(9, base, head);
    closed["state"] = json!("closed");
    bot.fake.add_pull(9, closed);
    bot.fake
        .set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());
    let with_repository = |mut payload: Value| {
        payload["installation"] = json!({"id": 77});
        payload["repository"]["id"] = json!(4242);
        payload["repository"]["name"] = json!("shop");
        payload["repository"]["owner"]["login"] = json!("octo");
        payload
    };
    let reviews_of = |number: u64| {
        bot.fake
            .requests()
            .iter()
            .filter(|r| r.path == format!("/repos/octo/shop/pulls/{number}/reviews"))
            .count()
    };
    let completed_runs = || {
        let runs = bot.fake.check_runs();
        assert!(runs.iter().all(|r| r["status"] == "completed"), "{runs:#?}");
        runs.len()
    };
    let listings = || {
        bot.fake
            .request_log()
            .iter()
            .filter(|r| r.starts_with("GET /repos/octo/shop/pulls?state=open"))
            .count()
    };
    let mut rerun = with_repository(
        support::npm::webhook_example("check_run", Some("rerequested"))
            .payload
            .clone(),
    );
    rerun["check_run"]["name"] = json!("kubeward");
    rerun["check_run"]["head_sha"] = json!(head.to_string());
    rerun["check_run"]["pull_requests"] = json!([]);
    rerun["check_run"]["app"] = Value::Null;

    // A check run naming no pull request, for a head never delivered to us: the worker finds
    // the open pull requests with that head and hands off one job each.
    let (status, answer) = bot.deliver("check_run", "r-1", &rerun).await;
    assert_eq!(status, 202, "{answer}");
    bot.settle().await;
    assert_eq!(listings(), 1, "the head was mapped to its pull requests");
    assert_eq!(completed_runs(), 2, "a new run per open pull request");
    assert_eq!((reviews_of(7), reviews_of(8), reviews_of(9)), (1, 1, 0));

    // Again: now the head is known, each pull request is queued at once.
    let (status, answer) = bot.deliver("check_run", "r-2", &rerun).await;
    assert_eq!(status, 202, "{answer}");
    bot.settle().await;
    assert_eq!(listings(), 1, "no lookup needed");
    assert_eq!(completed_runs(), 4);

    // A suite listing both pull requests: two jobs.
    let mut suite = with_repository(
        support::npm::webhook_example("check_suite", Some("rerequested"))
            .payload
            .clone(),
    );
    suite["check_suite"]["head_sha"] = json!(head.to_string());
    suite["check_suite"]["pull_requests"] = json!([{"number": 7}, {"number": 8}]);
    suite["check_suite"]["app"] = Value::Null;
    let (status, answer) = bot.deliver("check_suite", "r-3", &suite).await;
    assert_eq!(status, 202, "{answer}");
    bot.settle().await;
    assert_eq!(completed_runs(), 6);

    // Every review after the first on each pull request found its comment already posted.
    let mut commented: Vec<Option<u64>> = bot
        .fake
        .review_comments()
        .iter()
        .map(|c| c["pull"].as_u64())
        .collect();
    commented.sort();
    assert_eq!(commented, vec![Some(7), Some(8)]);
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// Closing a pull request drops its queued work; removing the App from a repository or
/// uninstalling it drops the rest. Nothing of it runs afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_pull_request_and_removing_the_app_drop_queued_work() {
    let upstream = Upstream::new();
    let base = upstream.commit("refs/heads/main", &[], &[("README", "x\n")]);
    let head = upstream.commit("refs/pull/7/head", &[base], &[("README", "y\n")]);
    let bot = start_with_workers(&upstream, 0).await;
    let queued = || async {
        bot.queue
            .stats(kubeward::queue::now_ms())
            .await
            .expect("stats")
            .queued
    };
    for number in [7, 8, 9] {
        let mut opened = pull_request_payload("opened", number, base, head);
        if number == 9 {
            // Another repository of the same installation.
            opened["repository"]["id"] = json!(5151);
            opened["repository"]["name"] = json!("cart");
        }
        let (status, _) = bot
            .deliver("pull_request", &format!("open-{number}"), &opened)
            .await;
        assert_eq!(status, 202);
    }
    assert_eq!(queued().await, 3);

    let mut closed = pull_request_payload("closed", 7, base, head);
    closed["pull_request"]["state"] = json!("closed");
    assert_eq!(bot.deliver("pull_request", "close-7", &closed).await.0, 200);
    assert_eq!(
        queued().await,
        2,
        "the closed pull request's job is dropped"
    );

    let mut removed = support::npm::webhook_example("installation_repositories", Some("removed"))
        .payload
        .clone();
    removed["installation"]["id"] = json!(77);
    removed["repositories_removed"] = json!([{"id": 4242, "name": "shop", "full_name": "octo/shop", "private": false, "node_id": "x"}]);
    bot.deliver("installation_repositories", "removed-1", &removed)
        .await;
    assert_eq!(
        queued().await,
        1,
        "the removed repository's jobs are dropped, not cart's"
    );

    let mut deleted = support::npm::webhook_example("installation", Some("deleted"))
        .payload
        .clone();
    deleted["installation"]["id"] = json!(77);
    assert_eq!(
        bot.deliver("installation", "uninstalled", &deleted).await.0,
        200
    );
    assert_eq!(
        queued().await,
        0,
        "uninstalling drops every job of the installation"
    );
    bot.assert_requests_valid();
}

/// GitHub's example `push` delivery, moved to our repository's default branch at `after`.
pub(crate) fn push_payload(branch: &str, after: git2::Oid) -> Value {
    let example = support::npm::webhook_examples()
        .iter()
        .find(|e| e.event == "push" && e.payload["ref"] == "refs/heads/master")
        .expect("a push example to a branch");
    let mut payload = example.payload.clone();
    payload["ref"] = json!(format!("refs/heads/{branch}"));
    payload["after"] = json!(after.to_string());
    payload["deleted"] = json!(false);
    payload["installation"] = json!({"id": 77});
    payload["repository"]["id"] = json!(4242);
    payload["repository"]["name"] = json!("shop");
    payload["repository"]["full_name"] = json!("octo/shop");
    payload["repository"]["owner"]["login"] = json!("octo");
    payload["repository"]["default_branch"] = json!("main");
    payload["repository"]["html_url"] = json!("https://github.com/octo/shop");
    payload
}

/// The platform team's numbers, filled by real deliveries: a reviewed pull request merged with
/// a failing finding (escaped), the push carrying its merge (a reviewed snapshot), then a
/// direct push no review covered (its findings unreviewed), a push to another branch
/// (nothing), and the repository leaving the installation (its data deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_branch_pushes_are_snapshotted_with_owners_and_what_no_review_covered() {
    let upstream = Upstream::new();
    let files = |shop: &str, extra: Option<(&'static str, String)>| {
        let mut files = vec![
            (".kubeward.yaml", POLICY.to_owned()),
            (".github/CODEOWNERS", OWNERS.to_owned()),
            ("apps/shop.yaml", shop.to_owned()),
        ];
        files.extend(extra);
        files
    };
    let commit = |reference: &str, parents: &[git2::Oid], files: Vec<(&str, String)>| {
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
        upstream.commit(reference, parents, &files)
    };
    let privileged = "            privileged: true\n";
    let base = commit("refs/heads/main", &[], files(&deployment("", 2), None));
    let head = commit(
        "refs/pull/7/head",
        &[base],
        files(&deployment(privileged, 2), None),
    );
    let bot = start(&upstream).await;
    bot.fake.add_pull(7, pull(7, base, head));
    bot.fake
        .set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());

    // The pull request is reviewed (a new danger finding), then merged as it is.
    let opened = pull_request_payload("opened", 7, base, head);
    assert_eq!(bot.deliver("pull_request", "open-7", &opened).await.0, 202);
    bot.settle().await;
    let merge = commit(
        "refs/heads/main",
        &[base, head],
        files(&deployment(privileged, 2), None),
    );
    let mut closed = pull_request_payload("closed", 7, base, head);
    closed["pull_request"]["state"] = json!("closed");
    closed["pull_request"]["merged"] = json!(true);
    closed["pull_request"]["merge_commit_sha"] = json!(merge.to_string());
    assert_eq!(bot.deliver("pull_request", "close-7", &closed).await.0, 200);
    let overview = bot
        .queue
        .ownership_overview(0, None)
        .await
        .expect("overview");
    assert_eq!(
        overview.escaped, 1,
        "merged with its failing finding: {overview:?}"
    );

    // The push carrying the merge: snapshotted, and covered by the review.
    let (status, _) = bot
        .deliver("push", "push-merge", &push_payload("main", merge))
        .await;
    assert_eq!(status, 202);
    bot.settle().await;
    let snapshots = bot
        .queue
        .snapshots("github", 4242)
        .await
        .expect("snapshots");
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(snapshots[0].commit, merge.to_string());
    assert!(snapshots[0].checkpoint && snapshots[0].reviewed);
    assert!(snapshots[0].open_danger > 0, "{snapshots:?}");
    let shop_team = bot
        .queue
        .team_findings("@octo/shop-team")
        .await
        .expect("team");
    assert!(!shop_team.is_empty());
    assert!(shop_team.iter().all(|f| f.finding.path == "apps/shop.yaml"
        && f.repository == "octo/shop"
        && f.commit == merge.to_string()
        && f.web_url.as_deref() == Some("https://github.com/octo/shop")
        && !f.unreviewed));
    assert!(
        shop_team
            .iter()
            .any(|f| f.finding.rule == "runAsPrivileged"),
        "{shop_team:?}"
    );

    // A direct push nobody reviewed adds a privileged cart: unreviewed, and only it is stored.
    let direct = commit(
        "refs/heads/main",
        &[merge],
        files(
            &deployment(privileged, 2),
            Some(("apps/cart.yaml", deployment_named("cart", privileged, 2))),
        ),
    );
    assert_eq!(
        bot.deliver("push", "push-direct", &push_payload("main", direct))
            .await
            .0,
        202
    );
    // A push to another branch is not the platform's business.
    let (_, answer) = bot
        .deliver("push", "push-feature", &push_payload("feature", direct))
        .await;
    assert!(
        answer
            .to_string()
            .contains("not a push to the default branch"),
        "{answer}"
    );
    bot.settle().await;
    let snapshots = bot
        .queue
        .snapshots("github", 4242)
        .await
        .expect("snapshots");
    assert_eq!(snapshots.len(), 2);
    let second = &snapshots[1];
    assert!(!second.checkpoint && !second.reviewed);
    assert!(second.added > 0 && second.removed == 0, "{second:?}");
    let overview = bot
        .queue
        .ownership_overview(0, None)
        .await
        .expect("overview");
    assert_eq!(overview.unreviewed, second.added, "{overview:?}");
    let cart: Vec<_> = bot
        .queue
        .team_findings("@octo/shop-team")
        .await
        .expect("team")
        .into_iter()
        .filter(|f| f.finding.path == "apps/cart.yaml")
        .collect();
    assert!(!cart.is_empty() && cart.iter().all(|f| f.unreviewed));

    // The repository leaves the installation: what was kept of it goes too.
    let example = support::npm::webhook_example("installation_repositories", Some("removed"));
    let mut removed = example.payload.clone();
    removed["installation"]["id"] = json!(77);
    removed["repositories_removed"] = json!([{"id": 4242, "node_id": "R_1", "name": "shop", "full_name": "octo/shop", "private": true}]);
    assert_eq!(
        bot.deliver("installation_repositories", "removed", &removed)
            .await
            .0,
        200
    );
    assert!(
        bot.queue
            .snapshots("github", 4242)
            .await
            .expect("snapshots")
            .is_empty()
    );
    assert!(
        bot.queue
            .team_findings("@octo/shop-team")
            .await
            .expect("team")
            .is_empty()
    );
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}
