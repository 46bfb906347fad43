//! Scale-out and crash safety with real processes: two `kubeward serve` replicas on one real
//! PostgreSQL (started by `scripts/test.sh`, named by `KUBEWARD_TEST_DATABASE_URL`), a real git
//! server, and a recording mock GitHub.
//!
//! - A replica killed with SIGKILL in the middle of a review: the other finishes it, with no
//!   duplicate comments and no lost delivery.
//! - Several hundred signed deliveries at once, spread over both replicas: every one answered 2xx
//!   and processed exactly once (newer pushes may coalesce older ones).

use crate::support;
use crate::support::free_port;
use crate::support::git_http;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::mock_github::MockGitHub;
use kubeward::git::build;
use kubeward::server::github::github_signature;
use serde_json::{Value, json};
use sqlx::{Connection, Row};

const SECRET: &str = "scale-out-secret";
const TOKEN: &str = "ghs_scale.out.token";
const BOT: &str = "kubeward[bot]";

async fn fresh_database() -> String {
    let Ok(server) = std::env::var("KUBEWARD_TEST_DATABASE_URL") else {
        panic!(
            "KUBEWARD_TEST_DATABASE_URL is not set: run scripts/test.sh, which starts PostgreSQL"
        );
    };
    let name = format!("kw_scale_{}_{}", std::process::id(), rand_suffix());
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("unexpected database URL shape"),
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

struct Replica {
    child: Child,
    url: String,
    pid: u32,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kubeward serve` replica; `lease_seconds` is how soon another replica takes over a job
/// whose worker stopped heart-beating.
fn spawn_replica(
    dir: &std::path::Path,
    name: &str,
    database: &str,
    api: &str,
    git: &str,
    lease_seconds: u64,
) -> Replica {
    let port = free_port();
    let settings = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &settings,
        format!(
            "listen: 127.0.0.1:{port}\ndatabase: {database}\ncacheDir: {}\nworkers: 2\nleaseSeconds: {lease_seconds}\njobTimeoutSeconds: 120\ngithub:\n  apiUrl: {api}\n  gitUrl: {git}\n  botLogin: '{BOT}'\n",
            dir.join(format!("{name}-cache")).display()
        ),
    )
    .expect("settings");
    let child = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .args(["serve", "--config"])
        .arg(&settings)
        .env("KUBEWARD_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("KUBEWARD_GITHUB_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubeward serve starts");
    let pid = child.id();
    Replica {
        child,
        url: format!("http://127.0.0.1:{port}"),
        pid,
    }
}

async fn wait_ready(replica: &Replica) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/readyz", replica.url)).await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never became ready",
            replica.url
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliver(
    client: &reqwest::Client,
    url: &str,
    event: &str,
    delivery: &str,
    payload: &Value,
) -> u16 {
    let body = serde_json::to_vec(payload).expect("json");
    client
        .post(format!("{url}/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", github_signature(SECRET, &body))
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn pull(number: u64, base: git2::Oid, head: git2::Oid) -> Value {
    json!({
        "number": number, "state": "open", "draft": false,
        "head": {"sha": head.to_string(), "ref": format!("feature-{number}"), "repo": {"id": 4242}},
        "base": {"sha": base.to_string(), "ref": "main", "repo": {"id": 4242}},
    })
}

fn pull_request_event(action: &str, number: u64, base: git2::Oid, head: git2::Oid) -> Value {
    let mut payload = support::npm::webhook_example("pull_request", Some(action))
        .payload
        .clone();
    payload["number"] = json!(number);
    payload["installation"] = json!({"id": 77});
    payload["repository"]["id"] = json!(4242);
    payload["repository"]["name"] = json!("shop");
    payload["repository"]["owner"]["login"] = json!("octo");
    payload["pull_request"] = pull(number, base, head);
    payload
}

fn manifest(i: u64) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  namespace: shop\nspec:\n  hostNetwork: true\n  containers:\n    - name: app\n      image: app:{i}\n"
    )
}

struct World {
    dir: tempfile::TempDir,
    _served: tempfile::TempDir,
    repo: git2::Repository,
    git: git_http::GitHttpServer,
    mock: MockGitHub,
    base: git2::Oid,
}

async fn world() -> World {
    let served = tempfile::tempdir().expect("temp");
    let repo = git2::Repository::init_bare(served.path().join("octo/shop.git")).expect("init");
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[("README.md", b"shop\n")],
        "base",
    )
    .expect("base");
    let git = git_http::serve(served.path().to_path_buf(), Some(TOKEN)).await;
    let mock = MockGitHub::start(BOT, TOKEN).await;
    World {
        dir: tempfile::tempdir().expect("temp"),
        _served: served,
        repo,
        git,
        mock,
        base,
    }
}

impl World {
    /// Pull request `number` at a new head adding one manifest.
    fn push(&self, number: u64, version: u64) -> git2::Oid {
        let text = manifest(number * 1000 + version);
        // A new push goes on top of the previous one, as git requires for a ref update.
        let parent = self
            .repo
            .refname_to_id(&format!("refs/pull/{number}/head"))
            .unwrap_or(self.base);
        let head = build::commit(
            &self.repo,
            Some(&format!("refs/pull/{number}/head")),
            &[parent],
            &[
                ("README.md", b"shop\n"),
                (&format!("apps/p{number}.yaml"), text.as_bytes()),
            ],
            "change",
        )
        .expect("head");
        self.mock
            .fake
            .add_pull(number, pull(number, self.base, head));
        self.mock.fake.set_merge_base(
            &self.base.to_string(),
            &head.to_string(),
            &self.base.to_string(),
        );
        head
    }

    async fn settle(&self, database: &str, expected_jobs: i64) {
        let mut db = sqlx::PgConnection::connect(database)
            .await
            .expect("connect");
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let row = sqlx::query(
                "SELECT count(*) FILTER (WHERE state IN ('queued', 'running')) AS open, count(*) AS total FROM jobs",
            )
            .fetch_one(&mut db)
            .await
            .expect("count");
            let (open, total): (i64, i64) = (row.get("open"), row.get("total"));
            if open == 0 && total >= expected_jobs {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "jobs still open: {open} of {total}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_review_is_taken_over_without_duplicates() {
    let database = fresh_database().await;
    let world = world().await;
    let head = world.push(7, 1);
    // Hold GitHub's answer to the comment listing: the review is then mid-publish.
    *world.mock.slow.lock().expect("lock") =
        Some(("/pulls/7/comments".into(), Duration::from_secs(4)));
    let a = spawn_replica(
        world.dir.path(),
        "a",
        &database,
        &world.mock.uri(),
        &world.git.base_url,
        // Short: the killed replica's job is taken over quickly.
        2,
    );
    let mut b = Some(spawn_replica(
        world.dir.path(),
        "b",
        &database,
        &world.mock.uri(),
        &world.git.base_url,
        // Short: the killed replica's job is taken over quickly.
        2,
    ));
    wait_ready(&a).await;
    wait_ready(b.as_ref().expect("b")).await;
    let client = reqwest::Client::new();
    let status = deliver(
        &client,
        &a.url,
        "pull_request",
        "crash-1",
        &pull_request_event("opened", 7, world.base, head),
    )
    .await;
    assert_eq!(status, 202);
    // Find the replica holding the job, and kill it while it waits for GitHub.
    let mut db = sqlx::PgConnection::connect(&database)
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = loop {
        let row = sqlx::query("SELECT locked_by FROM jobs WHERE state = 'running' LIMIT 1")
            .fetch_optional(&mut db)
            .await
            .expect("query");
        if let Some(row) = row {
            let locked: Option<String> = row.get("locked_by");
            if let Some(locked) = locked {
                break locked;
            }
        }
        assert!(Instant::now() < deadline, "no replica claimed the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Give the worker time to reach the held request.
    let mid_review = Instant::now() + Duration::from_secs(60);
    while !world
        .mock
        .fake
        .request_log()
        .iter()
        .any(|r| r.contains("/pulls/7/comments"))
    {
        assert!(
            Instant::now() < mid_review,
            "the review never reached publishing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let holder_pid: u32 = holder
        .split('-')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("worker ids start with the pid");
    let survivor_url = if holder_pid == a.pid {
        drop(a); // SIGKILL
        b.as_ref().expect("b").url.clone()
    } else {
        assert_eq!(Some(holder_pid), b.as_ref().map(|r| r.pid));
        drop(b.take()); // SIGKILL
        a.url.clone()
    };
    *world.mock.slow.lock().expect("lock") = None;
    world.settle(&database, 1).await;
    let runs = world.mock.fake.check_runs();
    assert_eq!(runs.len(), 1, "one check run for the scan: {runs:#?}");
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[0]["conclusion"], "failure");
    let comments = world.mock.fake.review_comments();
    let mut lines: Vec<u64> = comments.iter().filter_map(|c| c["line"].as_u64()).collect();
    let posted = lines.len();
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), posted, "no line commented twice: {lines:?}");
    assert_eq!(lines, [3, 6, 7, 9, 10], "the review's comments, once each");
    assert_eq!(world.mock.fake.issue_comments().len(), 1, "one summary");
    let row = sqlx::query("SELECT state, attempts FROM jobs")
        .fetch_one(&mut db)
        .await
        .expect("job");
    let (state, attempts): (String, i64) = (row.get("state"), row.get("attempts"));
    assert_eq!(state, "done");
    assert_eq!(attempts, 2, "taken over once");
    assert!(
        reqwest::get(format!("{survivor_url}/healthz"))
            .await
            .is_ok()
    );
    world.mock.assert_requests_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_concurrent_deliveries_are_each_answered_and_processed_once() {
    let database = fresh_database().await;
    let world = world().await;
    let a = spawn_replica(
        world.dir.path(),
        "a",
        &database,
        &world.mock.uri(),
        &world.git.base_url,
        // Nobody dies here: a lease a loaded machine cannot miss, so "processed once" is
        // about the queue, not about heartbeats arriving in time.
        15,
    );
    let b = spawn_replica(
        world.dir.path(),
        "b",
        &database,
        &world.mock.uri(),
        &world.git.base_url,
        // Nobody dies here: a lease a loaded machine cannot miss, so "processed once" is
        // about the queue, not about heartbeats arriving in time.
        15,
    );
    wait_ready(&a).await;
    wait_ready(&b).await;
    // 40 pull requests, 3 pushes each, plus comments that are not commands: 300 deliveries.
    let mut deliveries = Vec::new();
    let mut latest: HashMap<u64, git2::Oid> = HashMap::new();
    for n in 1..=40u64 {
        for v in 1..=3u64 {
            let head = world.push(n, v);
            latest.insert(n, head);
            let action = if v == 1 { "opened" } else { "synchronize" };
            deliveries.push((
                "pull_request",
                format!("pr-{n}-{v}"),
                pull_request_event(action, n, world.base, head),
            ));
        }
        for c in 0..4u64 {
            let mut comment = support::npm::webhook_example("issue_comment", Some("created"))
                .payload
                .clone();
            comment["installation"] = json!({"id": 77});
            comment["comment"]["body"] = json!(format!("Looks good {c}"));
            deliveries.push(("issue_comment", format!("c-{n}-{c}"), comment));
        }
    }
    assert_eq!(deliveries.len(), 280);
    // And 20 redeliveries of ids already sent.
    let repeats: Vec<_> = deliveries.iter().take(20).cloned().collect();
    deliveries.extend(repeats);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (event, id, payload)) in deliveries.into_iter().enumerate() {
        let client = client.clone();
        let url = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        tasks.push(tokio::spawn(async move {
            deliver(&client, &url, event, &id, &payload).await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    let elapsed = started.elapsed();
    assert!(
        statuses.iter().all(|s| (200..300).contains(s)),
        "every delivery answered 2xx: {statuses:?}"
    );
    let mut db = sqlx::PgConnection::connect(&database)
        .await
        .expect("connect");
    let recorded: i64 = sqlx::query("SELECT count(*) AS n FROM deliveries")
        .fetch_one(&mut db)
        .await
        .expect("count")
        .get("n");
    // Comments that are not commands are ignored before being recorded; each pull_request
    // delivery is recorded once, redeliveries included.
    assert_eq!(recorded, 120, "each distinct delivery recorded once");
    world.settle(&database, 120).await;
    // Each pull request's latest head is reviewed, exactly once; older heads may be coalesced.
    let runs = world.mock.fake.check_runs();
    let mut per_head: HashMap<String, usize> = HashMap::new();
    for r in &runs {
        *per_head
            .entry(r["head_sha"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    for (n, head) in &latest {
        assert_eq!(
            per_head.get(&head.to_string()),
            Some(&1),
            "PR {n}: its latest head has one check run"
        );
    }
    assert!(
        per_head.values().all(|c| *c == 1),
        "no head reviewed twice: {per_head:?}"
    );
    assert!(runs.iter().all(|r| r["status"] == "completed"));
    let comments = world.mock.fake.review_comments();
    let mut per_line: HashMap<(String, String, u64), usize> = HashMap::new();
    for c in &comments {
        let key = (
            c["commit_id"].as_str().unwrap_or("").to_owned(),
            c["path"].as_str().unwrap_or("").to_owned(),
            c["line"].as_u64().unwrap_or(0),
        );
        *per_line.entry(key).or_default() += 1;
    }
    assert!(per_line.values().all(|c| *c == 1), "no duplicate comments");
    eprintln!("300 deliveries answered in {} ms", elapsed.as_millis());
    world.mock.assert_requests_valid();
}
