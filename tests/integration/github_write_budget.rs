//! The installation's write budget, end to end: the real server on 127.0.0.1, real workers and
//! the real GitHub client (its pacing is what is tested), a real git server, and the recording
//! GitHub stand-in, every request checked against GitHub's OpenAPI description.
//!
//! - A review with many findings puts at most `maxAnnotations` annotations on its check and
//!   counts the rest in the summary.
//! - Two pull requests of one installation on a small budget: the heavy one uses its share,
//!   is deferred (back in the queue with a not-before time, no worker held) and resumes after
//!   the window; the light one is reviewed meanwhile; both checks are opened and concluded.
//! - A review deferred past the bound is given up, its check concluded `failure` saying why.
//! - GitHub's secondary rate limit with `retry-after` defers the job instead of failing it.
//! - A job whose attempts keep crashing has its check concluded as a failure saying so.
//!
//! Budgets and windows are small (10 writes in 5 s) and the inputs scaled to match.

use crate::support;
use crate::support::git_http;
use crate::support::mock_github::{MockGitHub, Refusal};

use std::sync::Arc;
use std::time::{Duration, Instant};

use kubeward::bot::github::{BotSettings, GitHubWorker};
use kubeward::bot::serve::HttpsGit;
use kubeward::forge::Secret;
use kubeward::forge::github::api::{GitHubApi, Method};
use kubeward::forge::github::client::{
    GitHubAuth, GitHubClient, GitHubClientConfig, RetryPolicy, WriteLimits,
};
use kubeward::forge::github::fake::FakeGitHub;
use kubeward::git::build;
use kubeward::git::cache::GitCache;
use kubeward::queue::{Job, JobState, Queue, QueueConfig, now_ms};
use kubeward::server::github::github_signature;
use kubeward::server::{AppState, GitHubHooks, router};
use serde_json::{Value, json};
use tokio::sync::watch;

const SECRET: &str = "webhook-secret-for-budget-tests";
const TOKEN: &str = "ghs_budget.tests.token.0123456789abcdef";
const BOT: &str = "kubeward[bot]";
const REPO_ID: u64 = 4242;

/// `n` Pods of 18 findings each (3 danger) on 4 lines, one document each. The first 30 lines
/// with findings get the inline comments, so past 8 Pods the rest are annotations.
fn risky_pods(n: usize) -> String {
    (0..n)
        .map(|i| support::manifests::RISKY_POD.replace("name: risky", &format!("name: risky-{i}")))
        .collect::<Vec<_>>()
        .join("---\n")
}

struct Options {
    limits: WriteLimits,
    max_annotations: usize,
    queue: QueueConfig,
    workers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: WriteLimits {
                min_spacing: Duration::from_millis(1),
                ..WriteLimits::default()
            },
            max_annotations: 200,
            queue: QueueConfig::default(),
            workers: 2,
        }
    }
}

struct Bot {
    url: String,
    fake: Arc<FakeGitHub>,
    mock: MockGitHub,
    queue: Queue,
    runners: kubeward::bot::worker::Runners,
    stop: watch::Sender<bool>,
    upstream: git2::Repository,
    _git: git_http::GitHttpServer,
    _dirs: Vec<tempfile::TempDir>,
}

async fn start(options: Options) -> Bot {
    let mock = MockGitHub::start(BOT, TOKEN).await;
    let fake = mock.fake.clone();
    let served = tempfile::tempdir().expect("temp");
    let upstream = git2::Repository::init_bare(served.path().join("octo/shop.git")).expect("init");
    let git = git_http::serve(served.path().to_path_buf(), Some(TOKEN)).await;
    let data = tempfile::tempdir().expect("temp");
    let queue = Queue::connect_with(
        &format!("sqlite://{}", data.path().join("queue.db").display()),
        options.queue,
    )
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
            limits: options.limits,
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
            max_annotations: options.max_annotations,
        },
    });
    let runners: kubeward::bot::worker::Runners = Arc::new(std::collections::HashMap::from([(
        "github".to_owned(),
        worker as Arc<dyn kubeward::bot::runner::JobRunner>,
    )]));
    let (stop, stop_rx) = watch::channel(false);
    support::spawn_workers(&queue, &runners, options.workers, &stop_rx);
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
        runners,
        stop,
        upstream,
        _git: git,
        _dirs: vec![served, data],
    }
}

impl Bot {
    /// Pull request `number` adding `files` to a base with a README; its base and head.
    fn open_pull(&self, number: u64, files: &[(&str, &str)]) -> (git2::Oid, git2::Oid) {
        let base = match self.upstream.refname_to_id("refs/heads/main") {
            Ok(base) => base,
            Err(_) => build::commit(
                &self.upstream,
                Some("refs/heads/main"),
                &[],
                &[("README", b"shop\n")],
                "base",
            )
            .expect("commit"),
        };
        let mut head_files: Vec<(&str, &[u8])> = vec![("README", b"shop\n")];
        head_files.extend(files.iter().map(|(p, c)| (*p, c.as_bytes())));
        let head = build::commit(
            &self.upstream,
            Some(&format!("refs/pull/{number}/head")),
            &[base],
            &head_files,
            "head",
        )
        .expect("commit");
        self.fake.add_pull(
            number,
            json!({
                "number": number, "state": "open", "draft": false,
                "head": {"sha": head.to_string(), "ref": format!("f{number}"), "repo": {"id": REPO_ID}},
                "base": {"sha": base.to_string(), "ref": "main", "repo": {"id": REPO_ID}},
            }),
        );
        self.fake
            .set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());
        (base, head)
    }

    /// Delivers `pull_request opened` for pull request `number`; the job's id.
    async fn deliver_opened(&self, number: u64, base: git2::Oid, head: git2::Oid) -> i64 {
        let example = support::npm::webhook_example("pull_request", Some("opened"));
        let mut payload = example.payload.clone();
        payload["number"] = json!(number);
        payload["installation"] = json!({"id": 77});
        payload["repository"]["id"] = json!(REPO_ID);
        payload["repository"]["name"] = json!("shop");
        payload["repository"]["full_name"] = json!("octo/shop");
        payload["repository"]["owner"]["login"] = json!("octo");
        let pr = &mut payload["pull_request"];
        pr["number"] = json!(number);
        pr["draft"] = json!(false);
        pr["state"] = json!("open");
        pr["head"]["sha"] = json!(head.to_string());
        pr["head"]["repo"]["id"] = json!(REPO_ID);
        pr["base"]["sha"] = json!(base.to_string());
        pr["base"]["ref"] = json!("main");
        let body = serde_json::to_vec(&payload).expect("json");
        let response = reqwest::Client::new()
            .post(format!("{}/webhooks/github", self.url))
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", format!("opened-{number}-{head}"))
            .header("x-hub-signature-256", github_signature(SECRET, &body))
            .body(body)
            .send()
            .await
            .expect("delivered");
        assert_eq!(response.status().as_u16(), 202);
        let answer: Value = response.json().await.expect("json");
        answer["jobs"][0].as_i64().expect("a job id")
    }

    /// Waits until every queued job is finished (deferred ones included).
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let stats = self.queue.stats(now_ms()).await.expect("stats");
            if stats.queued == 0 && stats.running == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "jobs did not finish: {stats:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn job(&self, id: i64) -> Job {
        self.queue.get(id).await.expect("read").expect("job")
    }

    /// The check runs on `head`.
    fn checks_on(&self, head: git2::Oid) -> Vec<Value> {
        self.fake
            .check_runs()
            .into_iter()
            .filter(|r| r["head_sha"] == head.to_string())
            .collect()
    }

    fn only_check_on(&self, head: git2::Oid) -> Value {
        let runs = self.checks_on(head);
        assert_eq!(runs.len(), 1, "{runs:#?}");
        runs[0].clone()
    }

    /// The annotations sent to check run `id`, in order.
    fn annotations_sent(&self, id: &Value) -> Vec<Value> {
        let path = format!("/check-runs/{id}");
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == Method::Patch && r.path.ends_with(&path))
            .flat_map(|r| {
                r.body.expect("a body")["output"]["annotations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// The number in "N more findings are not shown as annotations", if the summary says it.
fn hidden_count(summary: &str) -> Option<usize> {
    let at = summary.find(" more findings are not shown as annotations")?;
    summary[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
}

/// The new findings the "| New | danger | warning |" row of a check's summary counts.
fn new_findings(summary: &str) -> usize {
    let row = summary
        .lines()
        .find_map(|l| l.strip_prefix("| New | "))
        .unwrap_or_else(|| panic!("no New row in {summary}"));
    row.split('|')
        .filter_map(|n| n.trim().parse::<usize>().ok())
        .sum()
}

/// Fingerprints the inline review comments on the pull request carry.
fn inline_fingerprints(fake: &FakeGitHub) -> usize {
    fake.review_comments()
        .iter()
        .filter(|c| c["subject_type"] != "file")
        .filter_map(|c| c["body"].as_str())
        .filter_map(kubeward::review::render::parse_marker)
        .map(|fingerprints| fingerprints.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_review_with_many_findings_puts_at_most_the_cap_on_its_check_and_counts_the_rest() {
    let bot = start(Options {
        max_annotations: 60,
        ..Options::default()
    })
    .await;
    let (base, head) = bot.open_pull(7, &[("pods.yaml", &risky_pods(15))]);
    let id = bot.deliver_opened(7, base, head).await;
    bot.settle().await;
    assert_eq!(bot.job(id).await.state, JobState::Done);
    let check = bot.only_check_on(head);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    assert_eq!(check["output"]["annotations_count"], 60, "{check:#}");
    let summary = check["output"]["summary"].as_str().expect("summary");
    let hidden = hidden_count(summary).expect("the summary counts the rest");
    assert!(
        summary.contains("(kubeward shows at most 60 per check run)"),
        "{summary}"
    );
    // Every new finding is an inline comment, an annotation, or counted as not shown.
    assert_eq!(
        inline_fingerprints(&bot.fake) + 60 + hidden,
        new_findings(summary),
        "{summary}"
    );
    // The most severe first: no danger finding is left out for a warning.
    let sent = bot.annotations_sent(&check["id"]);
    assert_eq!(sent.len(), 60);
    let levels: Vec<&str> = sent
        .iter()
        .map(|a| a["annotation_level"].as_str().expect("level"))
        .collect();
    let first_warning = levels.iter().position(|l| *l == "warning").unwrap_or(60);
    assert!(
        levels[first_warning..].iter().all(|l| *l == "warning"),
        "{levels:?}"
    );
    // Two updates carry them (50 + 10), not one per 50 of all the findings.
    let updates = bot
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::Patch && r.path.contains("/check-runs/"))
        .count();
    assert_eq!(updates, 2);
    bot.mock.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// The budget of these tests: 10 content writes in any 5 s, a pull request's reviews 30 % of
/// them (3), 20 % (2) kept for checks; a wait over 200 ms defers the job.
fn small_budget() -> WriteLimits {
    WriteLimits {
        per_minute: 10,
        per_hour: 0,
        minute: Duration::from_secs(5),
        review_share_percent: 30,
        check_reserve_percent: 20,
        min_spacing: Duration::from_millis(1),
        max_wait: Duration::from_millis(200),
        ..WriteLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_heavy_review_waits_for_the_window_and_every_pull_request_gets_its_check() {
    let bot = start(Options {
        limits: small_budget(),
        ..Options::default()
    })
    .await;
    // The heavy one writes a review, the summary, and 200 annotations (the concluding update
    // and three more): five writes on the shared budget, over its share of three.
    let (heavy_base, heavy_head) = bot.open_pull(7, &[("pods.yaml", &risky_pods(25))]);
    let (light_base, light_head) = bot.open_pull(8, &[("pod.yaml", support::manifests::RISKY_POD)]);
    let heavy = bot.deliver_opened(7, heavy_base, heavy_head).await;
    let light = bot.deliver_opened(8, light_base, light_head).await;

    // The heavy job goes back to the queue, not before the window has room; meanwhile no
    // worker holds it, and its check already says its conclusion.
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = loop {
        let job = bot.job(heavy).await;
        if job.state == JobState::Queued && job.deferrals > 0 {
            break job;
        }
        assert!(job.state != JobState::Done, "never deferred: {job:?}");
        assert!(Instant::now() < deadline, "never deferred: {job:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(waiting.run_at_ms > now_ms() - 1_000, "{waiting:?}");
    assert_eq!(
        waiting.attempts, 0,
        "the deferral does not count an attempt"
    );
    let reason = waiting.last_error.clone().unwrap_or_default();
    assert!(reason.contains("this pull request's share"), "{reason}");
    let interim = bot.only_check_on(heavy_head);
    assert_eq!(interim["status"], "completed", "{interim:#}");
    assert_eq!(interim["conclusion"], "failure", "{interim:#}");

    bot.settle().await;
    for (id, head, annotations) in [(heavy, heavy_head, 200), (light, light_head, 0)] {
        let job = bot.job(id).await;
        assert_eq!((job.state, job.attempts), (JobState::Done, 1), "{job:?}");
        let check = bot.only_check_on(head);
        assert_eq!(check["status"], "completed", "{check:#}");
        assert_eq!(check["conclusion"], "failure", "{check:#}");
        let summary = check["output"]["summary"].as_str().expect("summary");
        assert!(!summary.contains("has more to post"), "{summary}");
        if annotations > 0 {
            assert_eq!(
                check["output"]["annotations_count"], annotations,
                "{check:#}"
            );
        }
    }
    assert!(bot.job(heavy).await.deferrals >= 1);
    assert_eq!(
        bot.job(light).await.deferrals,
        0,
        "the light review had room"
    );
    // Each pull request got one review and one summary comment: resuming posted nothing twice.
    let reviews = bot
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::Post && r.path.ends_with("/reviews"))
        .count();
    assert_eq!(reviews, 2);
    assert_eq!(bot.fake.issue_comments().len(), 2);
    bot.mock.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// A review that keeps running out of its share is deferred only so often: past the bound its
/// check, concluded early while the rest waited, is concluded `failure` saying why, and the
/// job dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_review_deferred_past_the_bound_is_given_up_with_its_check_failed_saying_why() {
    let bot = start(Options {
        // One write of the shared budget per 5 s for a review; one deferral allowed.
        limits: WriteLimits {
            review_share_percent: 10,
            ..small_budget()
        },
        queue: QueueConfig::default().with_deferral_limits(1, 60 * 60 * 1_000),
        ..Options::default()
    })
    .await;
    // A review, the summary, and two more annotation updates: four writes on the shared budget.
    let (base, head) = bot.open_pull(7, &[("pods.yaml", &risky_pods(20))]);
    let id = bot.deliver_opened(7, base, head).await;
    bot.settle().await;
    let job = bot.job(id).await;
    assert_eq!((job.state, job.deferrals), (JobState::Dead, 1), "{job:?}");
    let error = job.last_error.unwrap_or_default();
    assert!(
        error.contains("the write budget stayed spent")
            && error.contains("once")
            && error.contains("its check was concluded as a failure"),
        "{error}"
    );
    let check = bot.only_check_on(head);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    let summary = check["output"]["summary"].as_str().expect("summary");
    assert!(
        summary.contains("kubeward gave this review up: the write budget stayed spent"),
        "{summary}"
    );
    assert!(
        !summary.contains(kubeward::forge::github::publish::PUBLISHING_MARKER),
        "{summary}"
    );
    bot.mock.assert_requests_valid();
    let _ = bot.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secondary_rate_limit_with_retry_after_defers_the_job_instead_of_failing_it() {
    let bot = start(Options {
        limits: WriteLimits {
            max_wait: Duration::from_millis(200),
            min_spacing: Duration::from_millis(1),
            ..WriteLimits::default()
        },
        queue: QueueConfig::default().with_max_attempts(1),
        ..Options::default()
    })
    .await;
    let (base, head) = bot.open_pull(7, &[("pod.yaml", support::manifests::RISKY_POD)]);
    bot.mock.refuse_once(Refusal {
        method: "POST",
        needle: "/pulls/7/reviews".into(),
        status: 403,
        headers: vec![("retry-after", "2".into())],
        body: json!({
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        }),
    });
    let started = Instant::now();
    let id = bot.deliver_opened(7, base, head).await;
    bot.settle().await;
    // On its only attempt: deferred, not dead-lettered, and done after the wait.
    let job = bot.job(id).await;
    assert_eq!(
        (job.state, job.attempts, job.deferrals),
        (JobState::Done, 1, 1),
        "{job:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    let reason = job.last_error.unwrap_or_default();
    assert!(
        reason.contains("rate limited") && reason.contains("HTTP 403"),
        "{reason}"
    );
    let check = bot.only_check_on(head);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    assert!(
        !bot.fake.review_comments().is_empty(),
        "the review went out"
    );
    bot.mock.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// The queue sees a crash as a lease that runs out. After the last attempt's, the job is not
/// reviewed again (it would likely crash again) but its check is concluded as a failure saying
/// so, and the job dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_attempts_keep_crashing_has_its_check_concluded_failure() {
    let bot = start(Options {
        queue: QueueConfig::default().with_max_attempts(2),
        workers: 0,
        ..Options::default()
    })
    .await;
    let (base, head) = bot.open_pull(7, &[("pod.yaml", support::manifests::RISKY_POD)]);
    let id = bot.deliver_opened(7, base, head).await;
    // What the crashed attempts left: their check, in progress.
    let (status, _) = bot.fake.handle(
        Method::Post,
        "/repos/octo/shop/check-runs",
        Some(
            &json!({"name": "kubeward", "head_sha": head.to_string(), "status": "in_progress",
            "external_id": "crashed"}),
        ),
    );
    assert_eq!(status, 201);
    // Two attempts whose workers die: their leases run out.
    for worker in ["crashes-1", "crashes-2"] {
        let claimed = bot
            .queue
            .claim(worker, Duration::from_millis(1), now_ms())
            .await
            .expect("claim")
            .expect("the job");
        assert_eq!(claimed.id, id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_stop, stop_rx) = watch::channel(false);
    support::spawn_workers(&bot.queue, &bot.runners, 1, &stop_rx);
    bot.settle().await;
    let job = bot.job(id).await;
    assert_eq!(
        (job.state, job.lease_expiries),
        (JobState::Dead, 2),
        "{job:?}"
    );
    let error = job.last_error.unwrap_or_default();
    assert!(
        error.contains("crashed or its worker died 2 times") && error.contains("concluded"),
        "{error}"
    );
    let check = bot.only_check_on(head);
    assert_eq!(check["status"], "completed", "{check:#}");
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    let summary = check["output"]["summary"].as_str().expect("summary");
    assert!(
        summary.contains("the review crashed or its worker died 2 times"),
        "{summary}"
    );
    // Not reviewed a third time.
    assert!(bot.fake.review_comments().is_empty());
    assert!(
        bot.fake
            .requests()
            .iter()
            .all(|r| !r.path.contains("/compare/")),
        "{:?}",
        bot.fake.request_log()
    );
    bot.mock.assert_requests_valid();
    let _ = bot.stop.send(true);
}
